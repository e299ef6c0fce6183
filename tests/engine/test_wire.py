"""Worker message framing: both directions bounded, an oversize frame costs one message."""

from __future__ import annotations

import asyncio

import pytest

from audionode.engine import messages as m
from audionode.engine import wire
from audionode.engine.child import _next_command


async def test_an_oversize_or_garbled_command_is_dropped_and_the_next_one_read() -> None:
    reader = asyncio.StreamReader()
    good = m.Seek(player=1, position_ms=5)
    reader.feed_data(wire.frame(b"\0" * 5000))  # over the limit below
    reader.feed_data(wire.frame(b"\xc1garbage"))  # not msgpack of a command
    reader.feed_data(wire.frame(m.encoder.encode(good)))
    assert await _next_command(reader, 4096) is None
    assert await _next_command(reader, 4096) is None
    assert await _next_command(reader, 4096) == good


async def test_read_frame_refuses_before_reading_the_payload() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(wire.frame(b"x" * 100))
    with pytest.raises(wire.FrameTooLarge) as caught:
        await wire.read_frame(reader, 99)
    assert caught.value.size == 100
    assert await reader.readexactly(100) == b"x" * 100  # the payload was left unread


def test_an_event_over_the_limit_has_its_texts_cut() -> None:
    event = m.TrackEnded(player=1, serial=2, reason="error", message="x" * 100_000)
    data = wire.event_frame(event, 4096)
    assert data is not None and len(data) <= 4100
    decoded = m.event_decoder.decode(data[4:])
    assert isinstance(decoded, m.TrackEnded) and decoded.serial == 2
    assert decoded.message is not None and len(decoded.message) == wire.TEXT_LIMIT + 1


def test_stats_over_the_limit_keep_their_totals_and_hopeless_events_are_dropped() -> None:
    stats = m.EngineStats(
        player=0,
        totals=m.FrameCounters(sent=9),
        players={i: m.FrameCounters(sent=i) for i in range(10_000)},
        ticks=1,
        resyncs=0,
        late_max_ms=0,
        tick_max_ms=0,
    )
    data = wire.event_frame(stats, 4096)
    assert data is not None
    decoded = m.event_decoder.decode(data[4:])
    assert isinstance(decoded, m.EngineStats) and decoded.totals.sent == 9
    assert decoded.players == {}
    assert wire.event_frame(m.CommandFailed(player=1, command="x" * 5000, message=""), 10) is None


class Pipe:
    """The worker's side of the socket pair, recorded write by write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def events(self, write: int) -> list[m.Event]:
        data, out = self.writes[write], []
        while data:
            size = int.from_bytes(data[:4], "big")
            out.append(m.event_decoder.decode(data[4 : 4 + size]))
            data = data[4 + size :]
        return out


def position(player: int, ms: int) -> m.TrackPosition:
    return m.TrackPosition(player=player, serial=1, position_ms=ms)


async def test_position_reports_are_held_and_written_together_with_their_age() -> None:
    pipe, now = Pipe(), [100.0]
    out = wire.EventWriter(pipe.writes.append, lambda: pipe.closing, 4096, 0.05, lambda: now[0])
    out.emit(position(1, 1000))
    now[0] += 0.03
    out.emit(position(2, 2000))
    assert pipe.writes == []
    await asyncio.sleep(0.03)
    assert pipe.writes == []  # still within the hold
    now[0] += 0.05
    await asyncio.sleep(0.05)
    assert pipe.events(0) == [
        m.TrackPosition(player=1, serial=1, position_ms=1000, held_ms=80),
        m.TrackPosition(player=2, serial=1, position_ms=2000, held_ms=50),
    ]
    assert len(pipe.writes) == 1 and out.writes == 1


async def test_the_hold_adds_to_an_age_the_report_already_had() -> None:
    # a passthrough lane's report that waited for a producer turn comes with its age
    pipe, now = Pipe(), [100.0]
    out = wire.EventWriter(pipe.writes.append, lambda: pipe.closing, 4096, 10.0, lambda: now[0])
    out.emit(m.TrackPosition(player=1, serial=1, position_ms=1000, held_ms=60))
    now[0] += 0.2
    out.flush()
    assert pipe.events(0) == [m.TrackPosition(player=1, serial=1, position_ms=1000, held_ms=260)]


async def test_any_other_event_goes_at_once_after_the_reports_held_before_it() -> None:
    pipe = Pipe()
    out = wire.EventWriter(pipe.writes.append, lambda: pipe.closing, 4096, 10.0)
    out.emit(position(1, 1000))
    out.emit(position(2, 1000))
    ended = m.TrackEnded(player=1, serial=1, reason="finished")
    out.emit(ended)
    [write] = [pipe.events(i) for i in range(len(pipe.writes))]
    assert [type(e) for e in write] == [m.TrackPosition, m.TrackPosition, m.TrackEnded]
    assert write[2] == ended
    started = m.TrackStarted(player=1, serial=2)
    out.emit(started)  # nothing held: written alone, at once
    assert pipe.events(1) == [started]
    await asyncio.sleep(0.01)
    assert len(pipe.writes) == 2  # the flushed reports' timer is gone


async def test_nothing_is_written_once_the_control_process_hung_up() -> None:
    pipe = Pipe()
    out = wire.EventWriter(pipe.writes.append, lambda: pipe.closing, 4096, 0.01)
    out.emit(position(1, 1000))
    pipe.closing = True
    await asyncio.sleep(0.03)
    out.emit(m.TrackStarted(player=1, serial=2))
    assert pipe.writes == []


async def test_a_hold_of_zero_writes_reports_at_once() -> None:
    pipe = Pipe()
    out = wire.EventWriter(pipe.writes.append, lambda: pipe.closing, 4096, 0.0)
    out.emit(position(1, 1000))
    assert pipe.events(0) == [position(1, 1000)]
