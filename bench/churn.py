"""``bench/streams.py --churn R``: channel members coming and going while the node plays.

Every DAVE group change costs the node MLS work (davey, a few milliseconds with the GIL held:
a commit for each proposal batch, then the commit's own processing) on the worker's event loop,
the same thread that keeps the 20 ms clock. A production node with many guilds sees members
join and leave all the time; this load makes that happen ``R`` times a second during the
window: the second member of one channel after another (round robin) leaves, and a new member
(a new user) joins in its place, so each cycle is one remove and one add for the node to commit.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from audionode.voiceserver.lvsp_client import LvspClient
from tests.transport.listener import Listener

FIRST_USER = 7_000_000
"""User ids of the members that join during the window (the set-up's member is another)."""


class Churn:
    """``Churn.start(...)`` inside the window, ``await stop()`` -> counters."""

    def __init__(
        self, http: aiohttp.ClientSession, lvsp: LvspClient, members: list[Listener], rate: float
    ) -> None:
        self.http, self.lvsp, self.members, self.rate = http, lvsp, members, rate
        self.cycles = 0
        self.failures = 0
        self.late = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @classmethod
    def start(
        cls, http: aiohttp.ClientSession, lvsp: LvspClient, members: list[Listener], rate: float
    ) -> Churn:
        """Begin; ``members`` (one per channel) is updated in place as members are replaced."""
        churn = cls(http, lvsp, members, rate)
        churn._task = asyncio.create_task(churn._run())
        return churn

    async def _run(self) -> None:
        period = 1.0 / self.rate
        next_at = time.monotonic()
        user = FIRST_USER
        for i in range(1 << 62):
            if self._stopping:
                return
            slot = i % len(self.members)
            user += 1
            try:
                self.members[slot] = await self._replace(self.members[slot], user)
                self.cycles += 1
            except (aiohttp.ClientError, OSError, TimeoutError):
                self.failures += 1
            next_at += period
            delay = next_at - time.monotonic()
            if delay < 0:
                self.late += 1  # the set-up of a member took longer than the period
                next_at = time.monotonic()
            await asyncio.sleep(max(0.0, delay))

    async def _replace(self, old: Listener, user: int) -> Listener:
        await old.close()
        grant = await self.lvsp.grant(user, old.channel_id, int(old.server_id))
        new = Listener(
            old.base_url,
            old.server_id,
            user,
            old.channel_id,
            grant.session_id,
            grant.token,
            heartbeat=True,
        )
        await new.connect(self.http)
        return new

    async def stop(self) -> dict[str, Any]:
        assert self._task is not None
        # The flag as well as the cancel: after the members' close() stopped swallowing it
        # (audionode/tasks.py), a cancel was still lost once somewhere in a member's connect
        # (not pinned; Python 3.11's wait_for drops one that lands as its inner future
        # completes) and the loop went on for ever. The flag ends it at the next cycle.
        self._stopping = True
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return {"rate": self.rate, "cycles": self.cycles, "failures": self.failures,
                "late": self.late}
