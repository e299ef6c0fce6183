"""One CPU-heavy handshake step at a time per event loop, started where it cannot delay a tick.

Why: DAVE's MLS steps (a session and its key package, a welcome, a commit) cost milliseconds
each in davey (1-6 ms measured, one group change about 12 ms in all: docs/PERFORMANCE.md,
"DAVE group changes off the tick"), hold the GIL the whole time, and arrive in bursts: when 64
guilds join at once, their websocket messages are ready together and asyncio runs them all in
one loop iteration, so the real-time sender's 20 ms timer waited 110-390 ms at a time and every
stream already playing in that worker missed its deadlines (``bench/streams.py``, issue 7).

So the gate does two things:

- each step runs in a loop iteration of its own (a waiter is woken by ``call_soon``), so the
  timers due in between run before the next step starts;
- while a real-time clock (:class:`Clock`, the sender) runs on the loop, a step starts only when
  the time left before the clock's next deadline holds it (:attr:`Gate.estimate`, the recent
  steps' cost), else right after the next tick, when the gap is widest. A step that began a
  millisecond before a tick used to make that tick wait for all of it; now a tick waits only
  when a single step is longer than the whole gap after a tick.

A step never waits longer than :data:`MAX_WAIT` (should the clock stop ticking without saying so).

Usage (``transport.voice_conn``)::

    async with gate_for_loop():
        out = dave.handle(op, payload)
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Final, Protocol

MARGIN: Final = 0.001
"""Seconds kept free before a deadline beyond the estimate (the loop's clock has 1 ms steps)."""
MAX_WAIT: Final = 0.1
"""Seconds after which a waiting step starts whatever the clock says."""
FIRST_ESTIMATE: Final = 0.005
"""What a step is assumed to cost before one was measured (davey's commits: 1-6 ms)."""
ESTIMATE_RANGE: Final = (0.0005, 0.02)
DECAY: Final = 0.9
"""The estimate follows a longer step at once and a shorter one by this factor per step."""


class Clock(Protocol):
    """A real-time clock on the loop (the sender); it calls :meth:`Gate.tick_done` per tick."""

    def until_next(self) -> float | None:
        """Seconds until its next deadline (negative: overdue), or None while stopped."""
        ...


class Gate:
    """The gate of one event loop (:func:`gate_of`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._held = False
        self._clocks: weakref.WeakSet[Clock] = weakref.WeakSet()
        self._overdue: asyncio.TimerHandle | None = None
        self.estimate = FIRST_ESTIMATE
        """Seconds a step is expected to take: the longest recent one, decaying."""
        self.grants: Counter[str] = Counter()
        """How steps were let in: ``free`` (no clock), ``room`` (the gap held it), ``tick``
        (right after a tick), ``overdue`` (:data:`MAX_WAIT`)."""

    def attach(self, clock: Clock) -> None:
        """``clock`` runs on this loop from now on."""
        self._clocks.add(clock)

    def detach(self, clock: Clock) -> None:
        """``clock`` stopped; steps waiting for its tick may go."""
        self._clocks.discard(clock)
        self._loop.call_soon(self._grant)

    def tick_done(self) -> None:
        """Called by a clock at the end of each tick: the widest gap starts now."""
        if self._waiters and not self._held:
            self._grant("tick")

    def _time_left(self) -> float | None:
        left = [t for c in self._clocks if (t := c.until_next()) is not None]
        return min(left) if left else None

    def _grant(self, why: str | None = None) -> None:
        """Let the first live waiter in, if the gate is free and ``why`` (or the clock) allows."""
        waiters = self._waiters
        while waiters and waiters[0].done():  # cancelled while waiting
            waiters.popleft()
        if self._held or not waiters:
            return
        if why is None:
            left = self._time_left()
            if left is None:
                why = "free"
            elif left >= self.estimate + MARGIN:
                why = "room"
            else:
                if self._overdue is None:
                    self._overdue = self._loop.call_later(MAX_WAIT, self._grant, "overdue")
                return  # tick_done() lets it in
        if self._overdue is not None:
            self._overdue.cancel()
            self._overdue = None
        self._held = True
        self.grants[why] += 1
        waiters.popleft().set_result(None)

    def _release(self, took: float | None) -> None:
        if took is not None:
            low, high = ESTIMATE_RANGE
            self.estimate = min(high, max(low, took, self.estimate * DECAY))
        self._held = False
        self._loop.call_soon(self._grant)

    @asynccontextmanager
    async def step(self) -> AsyncIterator[None]:
        """Hold the gate for one heavy step (FIFO among the waiters).

        The step starts in a loop iteration of its own even when nobody is waiting (a burst
        of steps arriving together must not run back to back without the timers between)."""
        granted: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(granted)
        self._loop.call_soon(self._grant)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():  # let in, then cancelled: pass on
                self._release(None)
            raise
        began = time.perf_counter()
        try:
            yield
        finally:
            self._release(time.perf_counter() - began)


_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Gate] = weakref.WeakKeyDictionary()


def gate_of(loop: asyncio.AbstractEventLoop) -> Gate:
    """The gate of ``loop`` (made on first use)."""
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = Gate(loop)
    return gate


def gate_for_loop() -> AbstractAsyncContextManager[None]:
    """Hold the running loop's gate for one heavy step (see :meth:`Gate.step`)."""
    return gate_of(asyncio.get_running_loop()).step()
