"""The reader's packet queue in C (ReaderCore, decision 0022) against its pure-Python stand-in
(``media/reader.py`` ``_ReaderFields``): any sequence of pushes, takes, peeks, clears and
lane takes gives the same packets, counters and lane state; and the native demuxer reading
straight into the queue gives the packets ``read()`` gives, dropping them after a seek or a
close."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audionode.media.lane import Lane, _LaneFields
from audionode.media.reader import NEVER, Packet, TrackReader, _ReaderFields
from audionode.native import _packet
from audionode.sources.api import Playable
from audionode.voice.crypto import AES_GCM_MODE, cipher_for
from audionode.voice.packetizer import NativePacketizer
from tests.native.test_oggdemux import END, NEED, files, write_opus  # noqa: F401 - fixture

LOW = 2 * 960


class PyReader(_ReaderFields):
    def __init__(self) -> None:
        super().__init__()
        self._buffered, self._low, self._gen = 0, LOW, 0
        self._resting = self.eof = self._closed = False
        self.refills = 0

    def _refill(self) -> None:
        if self._resting and self._buffered <= self._low:
            self._resting = False
            self.refills += 1


class CReader(_packet.ReaderCore):
    def __init__(self) -> None:
        super().__init__()
        self._low = LOW
        self.refills = 0

    def _refill(self) -> None:
        if self._resting and self._buffered <= self._low:
            self._resting = False
            self.refills += 1


class PyLane(_LaneFields):
    pass


class CLane(_packet.LaneCore):
    pass


def new_lane(cls: type[Any]) -> Any:
    lane = cls()
    lane.open, lane.pos, lane.crossed, lane.margin, lane.stop_at, lane.turn_at = (
        True, 0, -1, 3 * 960, NEVER, NEVER,
    )
    return lane


def state(reader: Any, lane: Any) -> tuple[object, ...]:
    return (
        reader._buffered, reader._q_count, reader._resting, reader.refills,
        lane.open, lane.pos,
    )


def as_tuple(packet: Packet | None) -> tuple[bytes, int, int] | None:
    return None if packet is None else (packet.data, packet.pos, packet.samples)


ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("push"),
            st.binary(max_size=400),
            st.sampled_from([960, 960, 960, 480, 1920, 0]),
        ),
        st.tuples(st.just("take"), st.sampled_from([-1, 960, 480])),
        st.tuples(st.just("peek")),
        st.tuples(st.just("clear")),
        st.tuples(st.just("lane")),
        st.tuples(st.just("reopen"), st.integers(0, 40 * 960)),
        st.tuples(st.just("rest")),
        st.tuples(st.just("eof")),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_the_c_queue_does_what_the_python_queue_does(script: list[tuple[Any, ...]]) -> None:
    pair = [(PyReader(), new_lane(PyLane)), (CReader(), new_lane(CLane))]
    pos = 0
    for op in script:
        results = []
        for reader, lane in pair:
            if op[0] == "push":
                reader._q_push(op[1], pos, op[2])
                results.append(None)
            elif op[0] == "take":
                results.append(as_tuple(reader._q_take(op[1])))
            elif op[0] == "peek":
                results.append(as_tuple(reader._q_peek()))
            elif op[0] == "clear":
                reader._q_clear()
                results.append(None)
            elif op[0] == "lane":
                results.append(reader._lane_take(lane))
            elif op[0] == "reopen":
                lane.open, lane.stop_at = True, op[1]
                results.append(None)
            elif op[0] == "rest":
                reader._resting = True
                results.append(None)
            else:
                reader.eof = True
                results.append(None)
        if op[0] == "push":
            pos += op[2]
        assert results[0] == results[1], op
        assert state(*pair[0]) == state(*pair[1]), op


def test_a_large_queue_keeps_every_byte_through_growth_and_moves() -> None:
    reader = CReader()
    sent = [bytes([i % 251]) * (100 + i % 900) for i in range(5000)]
    got: list[bytes] = []
    for i, data in enumerate(sent):
        reader._q_push(data, i * 960, 960)
        if i % 3 == 0:  # taken more slowly than pushed: the live bytes grow, move and grow
            packet = reader._q_take()
            assert packet is not None
            got.append(packet.data)
    while (packet := reader._q_take()) is not None:
        got.append(packet.data)
    assert got == sent
    assert reader._buffered == 0 and reader._q_count == 0


def read_all_into(demux: Any, reader: Any, data: bytes, gen: int) -> int:
    offset, queued = 0, 0
    while True:
        count, _ = demux.read_into(reader, 7, 0, -1, gen)
        queued += count
        if demux.state == NEED:
            demux.feed(data[offset : offset + 4096])
            offset += 4096
        elif demux.state == END:
            return queued


def test_read_into_queues_what_read_returns(files: dict[str, Path]) -> None:  # noqa: F811
    data = files["12s"].read_bytes()
    listed = _packet.OggOpus(Packet)
    expected: list[tuple[bytes, int, int] | None] = []
    offset = 0
    while listed.state != END:
        expected += [as_tuple(p) for p in listed.read(50, 0, -1)]
        if listed.state == NEED:
            listed.feed(data[offset : offset + 4096])
            offset += 4096
    reader = CReader()
    assert read_all_into(_packet.OggOpus(Packet), reader, data, 0) == len(expected)
    assert reader._buffered == sum(p[2] for p in expected if p is not None)
    got = []
    while (packet := reader._q_take()) is not None:
        got.append(as_tuple(packet))
    assert got == expected


@pytest.mark.parametrize("why", ["seek", "close"])
def test_read_into_drops_packets_read_for_a_stale_generation(
    files: dict[str, Path], why: str  # noqa: F811
) -> None:
    data = files["1s"].read_bytes()
    reader = CReader()
    if why == "seek":
        reader._gen = 1  # a seek came after the read began with generation 0
    else:
        reader._closed = True
    assert read_all_into(_packet.OggOpus(Packet), reader, data, 0) == 0
    assert reader._q_count == 0 and reader._buffered == 0


def test_read_into_says_when_the_queue_was_empty(tmp_path: Path) -> None:
    data = write_opus(tmp_path / "a.opus", 1.0).read_bytes()
    demux, reader = _packet.OggOpus(Packet), CReader()
    demux.feed(data)
    count, was_empty = demux.read_into(reader, 3, 0, -1, 0)
    assert (count, was_empty) == (3, True)
    count, was_empty = demux.read_into(reader, 3, 0, -1, 0)
    assert (count, was_empty) == (3, False)


@pytest.mark.parametrize("kind", ["python", "c"])
def test_a_lane_take_wakes_a_resting_reader_at_its_low_mark_and_closes_near_the_end(
    kind: str,
) -> None:
    reader: Any = PyReader() if kind == "python" else CReader()
    lane = new_lane(PyLane if kind == "python" else CLane)
    for i in range(6):
        reader._q_push(bytes([i]), i * 960, 960)
    reader._resting = True
    levels = []
    while reader._buffered > LOW:
        assert reader._lane_take(lane) is not None
        levels.append((reader._buffered, reader.refills))
    # woken by the take that reached the low mark, not one take later
    assert levels[-1] == (LOW, 1) and levels[-2] == (LOW + 960, 0)
    reader.eof = True  # the end: the lane closes once what is left is within its margin
    assert reader._lane_take(lane) == (bytes([4]), 4 * 960)
    assert not lane.open and lane.pos == 5 * 960
    assert reader._lane_take(lane) is None


@contextlib.contextmanager
def reading(
    files: dict[str, Path],  # noqa: F811
) -> Iterator[tuple[TrackReader, socket.socket, socket.socket]]:
    """A started reader of the 12 s file, and a connected UDP pair for a Pump's packets."""
    reader = TrackReader(Playable.from_bytes(files["12s"].read_bytes()), 1, wake=lambda: None)
    reader.start()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.connect(receiver.getsockname())
    try:
        yield reader, sender, receiver
    finally:
        reader.close()
        sender.close()
        receiver.close()


def test_the_pump_takes_without_the_readers_lock_and_wakes_it_once_free(
    files: dict[str, Path],  # noqa: F811
) -> None:
    """The Pump serves while another thread holds the reader's lock (it never waits for it),
    and a reader resting below its low mark is woken by the first take after the lock is
    free (TrackReader._try_refill); the reader then reads ahead again."""
    with reading(files) as (reader, sender, receiver):
        deadline = time.monotonic() + 10
        while not reader._resting:  # the read-ahead window filled
            assert time.monotonic() < deadline, "the reader never filled its window"
            time.sleep(0.01)
        lane = Lane(reader, lambda: None, 0, margin=0)
        packetizer = NativePacketizer(5, cipher_for(AES_GCM_MODE, bytes(32)))
        channel = packetizer.channel
        channel.fd, channel.live = sender.fileno(), True
        feed = lane.feed("k", channel, deque(), reader.serial)
        assert feed is not None
        pump, batch = _packet.Pump(), _packet.Batch(backend="sendmmsg")
        served = 0

        def tick() -> None:
            nonlocal served
            pump.arm(feed)
            assert pump.run(batch, 0.0) == [] and feed.served
            batch.flush()
            served += 1

        # The lock is an RLock: held by this thread, the ticks run on another (as the
        # producer thread holds it while the sender's thread ticks). 100 of the 150 packets
        # of the window: past the low mark (75), not empty.
        with reader.lock:
            worker = threading.Thread(target=lambda: [tick() for _ in range(100)])
            worker.start()
            worker.join(10)
            assert served == 100  # served while the lock was held elsewhere
            assert reader._resting and reader._buffered <= reader._low  # not woken: no lock
        low = reader._buffered - 960
        tick()  # the lock is free: this take wakes the reader (which may refill at once)
        deadline = time.monotonic() + 10
        while reader._buffered <= low:
            assert time.monotonic() < deadline, "the reader did not read ahead again"
            time.sleep(0.01)
        assert receiver.recv(2048)  # the packets left


@pytest.mark.parametrize("path", ["python", "pump"])
def test_a_mark_asks_for_a_turn_that_may_wait_a_close_for_one_at_once(
    files: dict[str, Path],  # noqa: F811
    path: str,
) -> None:
    """A packet reaching ``turn_at`` (a position report is due) calls ``lane.on_mark``, the
    lazy request; the packet after which the lane closes calls ``lane.on_turn``: frames must
    be made at once. The same from ``take_for_lane`` and from the native Pump."""
    with reading(files) as (reader, sender, _):
        deadline = time.monotonic() + 10
        while reader._buffered < 10 * 960:
            assert time.monotonic() < deadline, "the reader read nothing"
            time.sleep(0.01)
        calls: list[str] = []
        lane = Lane(
            reader,
            lambda: calls.append("turn"),
            0,
            margin=0,
            on_mark=lambda: calls.append("mark"),
        )
        if path == "python":
            take = lambda: reader.take_for_lane(lane)  # noqa: E731
        else:
            channel = NativePacketizer(5, cipher_for(AES_GCM_MODE, bytes(32))).channel
            channel.fd, channel.live = sender.fileno(), True
            feed = lane.feed("k", channel, deque(), reader.serial)
            assert feed is not None
            pump, batch = _packet.Pump(), _packet.Batch(backend="sendmmsg")

            def take() -> None:
                pump.arm(feed)
                assert pump.run(batch, 0.0) == [] and feed.served
                batch.flush()

        take()
        take()  # past the first packets (their positions depend on the opus pre-skip)
        third = lane.pos  # where the next packet begins
        lane.turn_at = third  # its take asks for a turn that may wait
        lane.stop_at = third + 3 * 960  # and the lane closes after the fifth packet
        take()
        assert calls == ["mark"] and lane.crossed == third and lane.turn_at == NEVER
        take()
        assert calls == ["mark"] and lane.open
        take()
        assert calls == ["mark", "turn"] and not lane.open and lane.pos == third + 3 * 960
