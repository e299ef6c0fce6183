"""FairSlots: a bounded number of concurrent jobs, of which one key (a host) may hold only part.

The control process's blocking work (DNS lookups, probes, yt-dlp extractions) runs in small
pools of its own. A bound alone is not enough: one slow media server asked by many guilds at
once would hold every slot, and another guild's load would wait behind it. So a key may hold
at most ``per_key`` slots (by default all but one), and a job of another key always finds a
slot free unless many slow keys pile up at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairSlots:
    """``size`` slots in all; at most ``per_key`` of them held by one key (None: no limit)."""

    def __init__(self, size: int, per_key: int | None = None) -> None:
        self.size = size
        self.per_key = max(1, size - 1) if per_key is None else per_key
        self._all = asyncio.Semaphore(size)
        self._keys: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @asynccontextmanager
    async def slot(self, key: str | None = None) -> AsyncIterator[None]:
        """Hold a slot for the ``async with`` body; a key's jobs queue behind each other
        first, so a waiting job of a busy key never takes a slot another key could use."""
        if key is None:
            async with self._all:
                yield
            return
        gate = self._enter(key)
        try:
            async with gate, self._all:
                yield
        finally:
            self._leave(key)

    def busy(self, key: str) -> int:
        """Jobs of ``key`` holding or waiting for a slot (for tests and statistics)."""
        return self._keys.get(key, (None, 0))[1]

    def _enter(self, key: str) -> asyncio.Semaphore:
        gate, users = self._keys.get(key) or (asyncio.Semaphore(self.per_key), 0)
        self._keys[key] = (gate, users + 1)
        return gate

    def _leave(self, key: str) -> None:
        gate, users = self._keys[key]
        if users <= 1:
            del self._keys[key]
        else:
            self._keys[key] = (gate, users - 1)
