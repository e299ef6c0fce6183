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
