"""Control-plane load for ``bench/streams.py --stress``: 200 REST requests/s and continuous
searches, so the benchmark shows whether slow control work ever delays a frame.

The REST load cycles through cheap authenticated reads that touch the player and the service
(``GET /status``, ``GET /queue``, ``GET /options``) on absolute 5 ms deadlines. The searches
are real yt-dlp extractions, two at a time, back to back, in the node's extraction process
pool: each asks ``/searchSources`` for a fresh page of :class:`Pages`, a loopback web server
whose pages hold many ``<audio>`` tags (yt-dlp's generic extractor parses the whole page and
builds a playlist). Nothing leaves the machine; the node runs with
``sources.http.allow_private`` so that it may fetch the loopback pages.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from audionode.demo.bot import Bot

RATE = 200.0
SEARCHERS = 2


ENTRIES = 40
"""``<audio>`` tags per search page."""


class Pages:
    """The loopback web server the searches extract: ``/page/N`` is an HTML page listing
    ``ENTRIES`` tracks (``/media/N-i.mp3``, never fetched: the search only lists them)."""

    def __init__(self, runner: web.AppRunner, url: str) -> None:
        self.runner, self.url = runner, url

    @classmethod
    async def start(cls) -> Pages:
        async def page(request: web.Request) -> web.Response:
            n = request.match_info["n"]
            body = "".join(
                f'<h2>Track {n}-{i}</h2><audio src="/media/{n}-{i}.mp3"></audio>'
                for i in range(ENTRIES)
            )
            return web.Response(
                text=f"<html><head><title>bench {n}</title></head><body>{body}</body></html>",
                content_type="text/html",
            )

        app = web.Application()
        app.router.add_get("/page/{n}", page)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        return cls(runner, f"http://127.0.0.1:{port}")

    async def close(self) -> None:
        await self.runner.cleanup()


class Stress:
    """``Stress.start(...)`` inside the window, ``await stop()`` -> counters."""

    def __init__(
        self, http: aiohttp.ClientSession, url: str, bot: Bot, guild0: int, n: int, pages: str
    ):
        self.http, self.url, self.bot, self.guild0, self.n = http, url, bot, guild0, n
        self.pages = pages
        self.rest: Counter[int] = Counter()
        self.searches: Counter[int] = Counter()
        self.late = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._started = time.monotonic()

    @classmethod
    def start(
        cls, http: aiohttp.ClientSession, url: str, bot: Bot, guild0: int, n: int, pages: str
    ) -> Stress:
        """Begin the load; ``pages`` is the base URL of a running :class:`Pages`."""
        s = cls(http, url, bot, guild0, n, pages)
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
            query = quote(f"{self.pages}/page/{i}-{n}", safe="")
            await self._get(f"/searchSources?query={query}", self.guild0, self.searches)

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
