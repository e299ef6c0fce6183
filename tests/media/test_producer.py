"""The shared producer thread: turns on request, frame production before read-ahead, and turns
kept back while the sender's tick runs."""

from __future__ import annotations

import threading
import time

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
