"""Keep Python's cyclic garbage collector off the 20 ms beat of an engine process.

Measured (docs/PERFORMANCE.md): with 400 players in one worker, every ~10 s a generation-2
collection walked every object of every connection and stalled the sender for ~100 ms, a
deadline miss on every stream at once. Long-lived objects (connections, DAVE sessions,
pipelines) need no scanning while they live, so once a connection is up they are moved to the
permanent generation (``gc.freeze()``, a constant-time list splice); the automatic collections
then only walk what was allocated since. Cycles among frozen objects (a disconnected player's)
are reclaimed by one full collection every :attr:`GcPolicy.full_every` seconds: one short stall
per interval instead of one per ten seconds.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger(__name__)


class GcPolicy:
    """``start(loop)`` once; :meth:`settled` whenever long-lived objects were just created
    (a voice connection came up); :meth:`close` at shutdown (unfreezes)."""

    full_every = 3600.0
    """Seconds between full collections that include the frozen objects."""
    settle_delay = 1.0
    """Freeze this long after the last :meth:`settled`, so a burst of connects freezes once."""
    slow_ms = 20.0
    """A collection longer than this is logged (a stall of every stream of the process)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: asyncio.TimerHandle | None = None
        self._full: asyncio.TimerHandle | None = None
        self._began = 0.0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        gc.freeze()  # the interpreter and the imported modules
        gc.callbacks.append(self._timed)
        self._full = loop.call_later(self.full_every, self._collect_all)

    def settled(self) -> None:
        if self._loop is None:
            return
        if self._pending is not None:
            self._pending.cancel()
        self._pending = self._loop.call_later(self.settle_delay, self._freeze)

    def _freeze(self) -> None:
        self._pending = None
        gc.collect(1)  # drop the young garbage of the set-up first, so it is not frozen
        gc.freeze()

    def _collect_all(self) -> None:
        assert self._loop is not None
        began = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        log.info(
            "full gc: %d unreachable objects in %.1f ms",
            found,
            (time.perf_counter() - began) * 1000,
        )
        self._full = self._loop.call_later(self.full_every, self._collect_all)

    def _timed(self, phase: str, info: dict[str, int]) -> None:
        # gc calls this around every collection, on whichever thread triggered it.
        if phase == "start":
            self._began = time.perf_counter()
            return
        took = (time.perf_counter() - self._began) * 1000
        if took > self.slow_ms:
            log.warning(
                "gc: generation %d took %.1f ms (%d collected)",
                info["generation"],
                took,
                info["collected"],
            )

    def close(self) -> None:
        if self._timed in gc.callbacks:
            gc.callbacks.remove(self._timed)
        for handle in (self._pending, self._full):
            if handle is not None:
                handle.cancel()
        gc.unfreeze()
