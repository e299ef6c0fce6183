"""FrameBuffer: bounded, and pop never blocks even while the producer holds the lock."""

from __future__ import annotations

import threading
import time

import pytest

from audionode.media.frames import Frame, FrameBuffer


def frame(i: int) -> Frame:
    return Frame(opus=bytes([i]), track=1, position_ms=i * 20)


def test_fifo_order_capacity_and_clear() -> None:
    buf = FrameBuffer(3)
    assert buf.pop() is None and len(buf) == 0 and buf.room() == 3
    for i in range(3):
        assert buf.put(frame(i), timeout=0)
    assert not buf.put(frame(9), timeout=0.01)  # full: refused after the timeout
    assert len(buf) == 3 and buf.room() == 0
    assert [buf.pop(), buf.pop()] == [frame(0), frame(1)]
    assert buf.clear() == 1 and buf.pop() is None


def test_pop_does_not_wait_for_a_lock_held_by_the_producer() -> None:
    wake = threading.Condition()
    buf = FrameBuffer(2, wake=wake)
    buf.put(frame(1), timeout=0)
    held, release = threading.Event(), threading.Event()

    def producer_holding_the_lock() -> None:
        with wake:
            held.set()
            release.wait(2)

    t = threading.Thread(target=producer_holding_the_lock)
    t.start()
    held.wait(2)
    start = time.perf_counter()
    got = buf.pop()
    elapsed = time.perf_counter() - start
    release.set()
    t.join()
    assert got == frame(1)
    assert elapsed < 0.005


def test_a_waiting_producer_is_woken_by_pop() -> None:
    buf = FrameBuffer(1)
    buf.put(frame(0), timeout=0)
    done = threading.Event()

    def produce() -> None:
        buf.put(frame(1))
        done.set()

    t = threading.Thread(target=produce)
    t.start()
    time.sleep(0.02)
    assert not done.is_set()
    assert buf.pop() == frame(0)
    assert done.wait(1)
    t.join()
    assert buf.pop() == frame(1)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        FrameBuffer(0)
