"""One CPU-heavy handshake step at a time per event loop, with the loop's timers between them.

Why: DAVE's MLS steps (a session and its key package, a welcome, a commit) cost milliseconds
each in davey, hold the GIL, and arrive in bursts: when 64 guilds join at once, their
websocket messages are ready together and asyncio runs them all in one loop iteration, so the
real-time sender's 20 ms timer waited 110-390 ms at a time and every stream already playing in
that worker missed its deadlines (measured with ``bench/streams.py``, issue 7). Through the gate
each step runs in a loop iteration of its own: a waiter is woken by ``call_soon``, so the timers
due in between (the sender's tick) run before the next step starts.

Usage (``transport.voice_conn``)::

    async with gate_for_loop():
        out = dave.handle(op, payload)
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _gates.get(loop)
    if lock is None:
        lock = _gates[loop] = asyncio.Lock()
    return lock


@asynccontextmanager
async def gate_for_loop() -> AsyncIterator[None]:
    """Hold the running loop's gate for one heavy step (FIFO among the waiters).

    The step starts in a loop iteration of its own even when nobody is waiting (a burst of
    steps arriving together must not run back to back without the timers in between); a
    waiter woken by the previous holder's release is in a new iteration already, the extra
    ``sleep(0)`` then costs one more pass of the loop, no more."""
    async with _lock():
        await asyncio.sleep(0)
        yield
