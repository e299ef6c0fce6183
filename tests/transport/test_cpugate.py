"""The CPU gate: heavy steps run one per loop iteration, with what the loop had ready (the
sender's tick) in between, in arrival order; with a real-time clock on the loop, a step starts
only where the gap before the next deadline holds it, else right after the next tick."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from audionode.transport.cpugate import MAX_WAIT, Gate, gate_for_loop, gate_of
from audionode.transport.sender import Sender


async def test_steps_arriving_together_let_ready_callbacks_run_between_them() -> None:
    loop = asyncio.get_running_loop()
    log: list[str] = []

    async def step(name: str) -> None:
        async with gate_for_loop():
            log.append(name)
            # stands in for the sender's timer falling due while this step runs
            loop.call_soon(log.append, f"tick after {name}")

    await asyncio.gather(*(step(f"step{i}") for i in range(3)))
    assert log == [
        "step0",
        "tick after step0",
        "step1",
        "tick after step1",
        "step2",
        "tick after step2",
    ]


async def test_a_lone_step_still_yields_to_the_loop_first() -> None:
    loop = asyncio.get_running_loop()
    log: list[str] = []
    loop.call_soon(log.append, "ready before")

    async with gate_for_loop():
        log.append("step")
    assert log == ["ready before", "step"]


async def test_a_failing_step_releases_the_gate() -> None:
    async def boom() -> None:
        async with gate_for_loop():
            raise ValueError("bad commit")

    results = await asyncio.gather(boom(), boom(), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    async with gate_for_loop():  # not stuck
        pass


# --- with a real-time clock on the loop --------------------------------------------------------


class FakeClock:
    """A clock whose time left before its next deadline the test sets."""

    def __init__(self, left: float) -> None:
        self.left = left

    def until_next(self) -> float | None:
        return self.left


@contextmanager
def clocked(left: float) -> Iterator[tuple[Gate, FakeClock]]:
    """The running loop's gate with a :class:`FakeClock` attached for the block."""
    gate = gate_of(asyncio.get_running_loop())
    clock = FakeClock(left)
    gate.attach(clock)
    try:
        yield gate, clock
    finally:
        gate.detach(clock)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_step_waits_for_the_tick_when_the_gap_left_is_too_short() -> None:
    with clocked(0.002) as (gate, clock):  # less than the first estimate (5 ms) + margin
        ran: list[str] = []

        async def step() -> None:
            async with gate_for_loop():
                ran.append("step")

        task = asyncio.create_task(step())
        await settle()
        assert ran == [], "a step started 2 ms before a deadline"
        clock.left = 0.019
        gate.tick_done()  # the sender's tick ended: the widest gap
        await task
        assert ran == ["step"]
        assert gate.grants["tick"] == 1


async def test_a_step_starts_at_once_when_the_gap_holds_it_or_no_clock_runs() -> None:
    gate = gate_of(asyncio.get_running_loop())
    async with gate_for_loop():
        pass
    assert gate.grants["free"] == 1
    with clocked(0.015):
        async with gate_for_loop():
            pass
        assert gate.grants["room"] == 1


async def test_steps_after_a_tick_fill_the_gap_only_as_far_as_it_holds_them() -> None:
    with clocked(0.0) as (gate, clock):
        ran: list[int] = []

        async def step(i: int) -> None:
            async with gate_for_loop():
                ran.append(i)
                _spin(0.006)
                clock.left -= 0.006  # each step takes 6 ms of the gap

        tasks = [asyncio.create_task(step(i)) for i in range(4)]
        await settle()
        assert ran == []
        clock.left = 0.0185  # right after a tick
        gate.tick_done()
        await settle()
        # the first goes on the tick; the estimate (now the 6 ms a step took) + 1 ms leaves
        # room for a second in the 12.5 ms left and not for a third in 6.5 ms
        assert ran == [0, 1]
        clock.left = 0.0185
        gate.tick_done()
        await settle()
        assert ran == [0, 1, 2, 3]
        assert gate.grants["tick"] == 2 and gate.grants["room"] == 2
        await asyncio.gather(*tasks)


async def test_a_step_never_waits_longer_than_max_wait_for_a_tick() -> None:
    with clocked(0.001) as (gate, _):  # a clock that never ticks and never stops
        began = time.monotonic()
        async with gate_for_loop():
            waited = time.monotonic() - began
        assert gate.grants["overdue"] == 1
        assert MAX_WAIT * 0.9 <= waited < 1.0


async def test_a_clock_that_stops_lets_its_waiters_go() -> None:
    gate = gate_of(asyncio.get_running_loop())
    clock = FakeClock(0.001)
    gate.attach(clock)
    task = asyncio.create_task(_one_step())
    await settle()
    assert not task.done()
    gate.detach(clock)
    await asyncio.wait_for(task, 0.05)
    assert gate.grants["free"] == 1


async def test_a_cancelled_waiter_does_not_hold_up_the_next() -> None:
    with clocked(0.001) as (gate, clock):
        first = asyncio.create_task(_one_step())
        second = asyncio.create_task(_one_step())
        await settle()
        first.cancel()
        clock.left = 0.019
        gate.tick_done()
        await asyncio.wait_for(second, 0.05)
        assert first.cancelled()


async def _one_step() -> None:
    async with gate_for_loop():
        pass


async def test_the_estimate_follows_a_long_step_at_once_and_a_short_one_slowly() -> None:
    gate = gate_of(asyncio.get_running_loop())
    async with gate_for_loop():
        _spin(0.012)
    assert gate.estimate >= 0.012
    async with gate_for_loop():
        pass
    assert 0.9 * 0.012 <= gate.estimate < 0.012


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def test_the_sender_is_the_loops_clock_and_reports_its_ticks() -> None:
    """A step asked for just before the real sender's deadline runs after its tick."""
    gate = gate_of(asyncio.get_running_loop())
    sender: Sender[int] = Sender(interval=0.02)
    sender.start()
    try:
        asked = 0
        for _ in range(100):
            left = sender.until_next()
            assert left is not None
            await asyncio.sleep(max(0.0, left - 0.001))
            left, ticks = sender.until_next(), sender.ticks
            if left is None or left >= 0.0015:  # woke after the tick: try the next one
                continue
            # less is left than the smallest estimate and the margin together
            async with gate_for_loop():
                assert sender.ticks > ticks, "a step ran with under 1.5 ms before a tick"
            asked += 1
            if asked == 5:
                break
        assert asked == 5
        assert gate.grants["tick"] == 5
    finally:
        sender.close()
    assert sender.until_next() is None
