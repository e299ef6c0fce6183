"""Control-plane load for ``bench/streams.py --stress``: 200 REST requests/s and continuous
searches, so the benchmark shows whether slow control work ever delays a frame.

The REST load cycles through cheap authenticated reads that touch the player and the service
(``GET /status``, ``GET /queue``, ``GET /options``) on absolute 5 ms deadlines. The searches
are ``ytsearch:`` queries: yt-dlp runs in the node's extraction process pool (there is no
internet here, so each attempt fails after doing its CPU work: import, parse, resolve), two at a
time, back to back.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from typing import Any

import aiohttp

from bench.bot import Bot

RATE = 200.0
SEARCHERS = 2


class Stress:
    """``Stress.start(...)`` inside the window, ``await stop()`` -> counters."""

    def __init__(self, http: aiohttp.ClientSession, url: str, bot: Bot, guild0: int, n: int):
        self.http, self.url, self.bot, self.guild0, self.n = http, url, bot, guild0, n
        self.rest: Counter[int] = Counter()
        self.searches: Counter[int] = Counter()
        self.late = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._started = time.monotonic()

    @classmethod
    def start(cls, http: aiohttp.ClientSession, url: str, bot: Bot, guild0: int, n: int) -> Stress:
        s = cls(http, url, bot, guild0, n)
        s._tasks = [asyncio.create_task(s._rest_loop())]
        s._tasks += [asyncio.create_task(s._search_loop(i)) for i in range(SEARCHERS)]
        return s

    async def _get(self, path: str, guild: int, counter: Counter[int]) -> None:
        try:
            async with self.http.get(f"{self.url}{path}", headers=self.bot.headers(guild)) as r:
                await r.read()
                counter[r.status] += 1
        except aiohttp.ClientError:
            counter[0] += 1

    async def _rest_loop(self) -> None:
        paths = itertools.cycle(("/status", "/queue", "/options"))
        guilds = itertools.cycle(range(self.guild0, self.guild0 + self.n))
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            deadline += 1.0 / RATE
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                self.late += 1
            task = asyncio.create_task(self._get(next(paths), next(guilds), self.rest))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _search_loop(self, i: int) -> None:
        for n in itertools.count():
            await self._get(
                f"/searchSources?query=ytsearch:bench+song+{i}+{n}", self.guild0, self.searches
            )

    async def stop(self) -> dict[str, Any]:
        span = time.monotonic() - self._started
        for task in self._tasks + list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._inflight, return_exceptions=True)
        return {
            "rest_per_s": round(sum(self.rest.values()) / span, 1),
            "rest_status": dict(self.rest),
            "searches_done": sum(self.searches.values()),
            "search_status": dict(self.searches),
            "rest_late_slots": self.late,
        }
