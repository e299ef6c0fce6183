"""The shared producer thread: turns on request, frame production before read-ahead, turns
kept back while the sender's tick runs (read-ahead alone a little longer), and no wake-up for
a deadline that was superseded."""

from __future__ import annotations

import threading
import time

import pytest

from audionode.media import producer as producer_module
from audionode.media.producer import Producer

WAIT = 5.0


class Item:
    """A Steppable that records its turns in a shared list."""

    def __init__(self, name: str, log: list[str], *, background: bool = False) -> None:
        self.name, self.log, self.background = name, log, background
        self.gate: threading.Event | None = None
        self.started = threading.Event()
        self.turned = threading.Event()

    def step(self) -> float | None:
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(WAIT)
            self.gate = None
        self.log.append(self.name)
        self.turned.set()
        return None


def test_a_scheduled_item_gets_a_turn() -> None:
    log: list[str] = []
    item = Item("a", log)
    Producer("test-producer").schedule(item)
    assert item.turned.wait(WAIT)
    assert log == ["a"]


def test_production_waiting_goes_before_the_rest_of_the_read_ahead() -> None:
    producer = Producer("test-producer")
    log: list[str] = []
    reads = [Item(f"read{i}", log, background=True) for i in range(3)]
    reads[0].gate = threading.Event()
    producer.hold()  # one batch: all three reads are in the backlog together
    for read in reads:
        producer.schedule(read)
    producer.release()
    assert reads[0].started.wait(WAIT)  # the first read is in progress...
    frames = Item("frames", log)
    producer.schedule(frames)  # ...when a pipeline asks for a turn
    reads[0].gate.set()
    assert reads[2].turned.wait(WAIT)
    assert log == ["read0", "frames", "read1", "read2"]


def test_read_ahead_runs_back_to_back_while_no_production_waits() -> None:
    producer = Producer("test-producer")
    log: list[str] = []
    reads = [Item(f"read{i}", log, background=True) for i in range(4)]
    producer.hold()
    for read in reads:
        producer.schedule(read)
    producer.release()
    assert reads[-1].turned.wait(WAIT)
    assert log == ["read0", "read1", "read2", "read3"]


def test_turns_asked_for_while_held_wait_for_release() -> None:
    producer = Producer("test-producer")
    log: list[str] = []
    held, other = Item("held", log), Item("other", log)
    producer.hold()
    producer.schedule(held)
    # only the holding thread is held back: another thread's request goes through
    thread = threading.Thread(target=producer.schedule, args=(other,))
    thread.start()
    thread.join()
    assert other.turned.wait(WAIT)
    time.sleep(0.05)
    assert not held.turned.is_set()
    producer.release()
    assert held.turned.wait(WAIT)
    assert log == ["other", "held"]


def test_read_ahead_alone_waits_for_its_interval_and_production_takes_it_along(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(producer_module, "BACKGROUND_EVERY", 60.0)  # no timing in the test
    producer = Producer("test-producer")
    log: list[str] = []
    first, read, frames = Item("first", log), Item("read", log, background=True), Item("f", log)
    mark = Item("mark", log)  # a pipeline's turn asked for lazily (a lane's position report)
    producer.hold()
    producer.schedule(first)
    producer.release()  # a hand-over: production goes at once
    assert first.turned.wait(WAIT)
    producer.hold()
    producer.schedule(read)
    producer.schedule(mark, lazy=True)
    producer.release()  # read-ahead and a lazy turn, just after a hand-over: kept back
    producer.hold()
    producer.release()  # a tick with nothing asked: still kept
    time.sleep(0.05)
    assert not read.turned.is_set() and not mark.turned.is_set()
    producer.hold()
    producer.schedule(frames)
    producer.release()  # production: goes, and takes the others along
    assert read.turned.wait(WAIT) and mark.turned.wait(WAIT) and frames.turned.is_set()
    assert log == ["first", "f", "mark", "read"]


def test_a_lazy_turn_asked_for_outside_a_hold_goes_at_once() -> None:
    item = Item("lazy", [])
    Producer("test-producer").schedule(item, lazy=True)  # another thread, or no tick running
    assert item.turned.wait(WAIT)


def test_read_ahead_goes_once_its_interval_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(producer_module, "BACKGROUND_EVERY", 0.0)
    producer = Producer("test-producer")
    read = Item("read", [], background=True)
    for _ in range(2):  # the second hand-over follows the first at once
        read.turned.clear()
        producer.hold()
        producer.schedule(read)
        producer.release()
        assert read.turned.wait(WAIT)


class Timed(Item):
    """An item whose turns return the given sleeps, in order."""

    def __init__(self, sleeps: list[float]) -> None:
        super().__init__("timed", [])
        self.sleeps = sleeps
        self.turns = 0

    def step(self) -> float | None:
        super().step()
        self.turns += 1
        return self.sleeps.pop(0) if self.sleeps else None


def test_a_superseded_deadline_does_not_wake_the_thread() -> None:
    producer = Producer("test-producer")
    item = Timed([0.3, 5.0])
    began = time.monotonic()
    producer.schedule(item)  # its turn asks for another in 0.3 s...
    assert item.turned.wait(WAIT)
    item.turned.clear()
    producer.schedule(item)  # ...but a turn now asks for the next in 5 s: 0.3 is stale
    assert item.turned.wait(WAIT)
    if time.monotonic() - began > 0.25:
        pytest.skip("the machine was too slow to supersede the deadline in time")
    time.sleep(0.05)  # the thread is back in its wait
    beat = producer.beat
    time.sleep(max(0.0, began + 0.45 - time.monotonic()))  # past 0.3, before the idle 0.5
    assert producer.beat == beat, "woke at the stale deadline"
    assert item.turns == 2
