"""The real-time sender: speaking/silence/keepalive state machine, counters, 20 ms clock.

The step-driven tests feed the sender their own ``now``; the sink packetizes every frame with
the real :class:`Packetizer` and AES-GCM so the RTP invariants of docs/discord-voice.md can be
checked
on the datagrams themselves. The clock tests run the real loop for a fraction of a second.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import struct
import time
from collections import deque
from dataclasses import dataclass

import pytest

from audionode.transport.sender import Sender
from audionode.voice import rtp
from audionode.voice.crypto import AES_GCM_MODE, cipher_for
from audionode.voice.packetizer import SILENCE_FRAME, Packetizer

KEY = os.urandom(32)
T = 0.020


@dataclass(frozen=True)
class TFrame:
    opus: bytes
    track: int
    position_ms: int


class ListSource:
    """A frame source over a deque; ``None`` entries are deliberate underrun slots."""

    def __init__(self, frames: list[TFrame | None]) -> None:
        self.frames: deque[TFrame | None] = deque(frames)
        self.pops = 0

    def pop(self) -> TFrame | None:
        self.pops += 1
        return self.frames.popleft() if self.frames else None


def frames(track: int, n: int, start_ms: int = 0) -> list[TFrame | None]:
    return [TFrame(bytes([track, i % 256]) * 20, track, start_ms + 20 * i) for i in range(n)]


class PacketSink:
    """Records what the sender did, with every frame sealed into a real RTP datagram."""

    def __init__(self) -> None:
        self.cipher = cipher_for(AES_GCM_MODE, KEY)
        self.packetizer = Packetizer(0x1234, self.cipher, sequence=65533)
        self.log: list[tuple[str, object]] = []
        self.ready = True
        self.hold = False
        """True plays a DAVE group being (re)established: packets may go out, audio may not."""

    @property
    def audio_ready(self) -> bool:
        return self.ready and not self.hold

    def send_frame(self, opus: bytes) -> None:
        self.log.append(("rtp", self.packetizer.packet(opus)))

    def set_speaking(self, on: bool) -> None:
        self.log.append(("speaking", on))

    def send_keepalive(self) -> None:
        self.log.append(("keepalive", self.packetizer.keepalive()))

    def payloads(self) -> list[bytes]:
        return [self.cipher.open(p).payload for k, p in self.log if k == "rtp"]  # type: ignore[arg-type]

    def kinds(self) -> list[object]:
        """The log with each packet reduced to 'audio' or 'silence'."""
        out: list[object] = []
        for kind, value in self.log:
            if kind == "rtp":
                assert isinstance(value, bytes)
                silent = self.cipher.open(value).payload == SILENCE_FRAME
                out.append("silence" if silent else "audio")
            else:
                out.append((kind, value))
        return out


def run(sender: Sender[int], ticks: int, t0: float = 0.0) -> float:
    for i in range(ticks):
        sender.step(t0 + i * T)
    return t0 + ticks * T


def assert_contiguous(sink: PacketSink) -> None:
    pkts = [p for k, p in sink.log if k == "rtp"]
    assert isinstance(pkts[0], bytes)
    heads = [rtp.parse_header(p) for p in pkts]  # type: ignore[arg-type]
    for a, b in itertools.pairwise(heads):
        assert (b.sequence - a.sequence) % 2**16 == 1
        assert (b.timestamp - a.timestamp) % 2**32 == 960
    nonces = [struct.unpack(">I", p[-4:])[0] for p in pkts]  # type: ignore[index]
    assert nonces == list(range(len(pkts)))


def test_speaking_before_first_frame_then_frames_then_silence_and_speaking_off() -> None:
    started: list[tuple[int, int, int]] = []
    sender: Sender[int] = Sender(lambda k, t, p: started.append((k, t, p)))
    sink = PacketSink()
    src = ListSource(frames(7, 10, start_ms=3000))
    sender.attach(1, sink)
    sender.play(1, src)
    sender.step(0.0)
    assert sink.log == [("speaking", True)] and started == []
    sender.step(T)
    assert started == [(1, 7, 3000)]
    run(sender, 20, 2 * T)
    assert sink.kinds() == [("speaking", True)] + ["audio"] * 10 + ["silence"] * 5 + [
        ("speaking", False)
    ]
    assert sink.payloads()[:10] == [f.opus for f in frames(7, 10) if f]
    assert_contiguous(sink)
    stats = sender.stats(1)
    assert stats is not None
    assert (stats.sent, stats.silence) == (10, 5)
    # Every tick after the source ran dry counts as nulled while the stream is still playing.
    assert stats.nulled == 22 - 11


def test_track_change_reported_when_its_first_frame_is_sent() -> None:
    started: list[tuple[int, int, int]] = []
    sender: Sender[int] = Sender(lambda k, t, p: started.append((k, t, p)))
    sink = PacketSink()
    sender.attach(3, sink)
    sender.play(3, ListSource(frames(1, 3) + frames(2, 3, start_ms=0)))
    sender.step(0.0)
    for i in range(1, 5):
        sender.step(i * T)
        sent = sender.stats(3)
        assert sent is not None
        # track 2 is reported on the tick that sends its first frame, not when it was queued
        assert started[-1][1] == (1 if sent.sent <= 3 else 2)
    assert started == [(3, 1, 0), (3, 2, 0)]


def test_pause_and_resume_keep_the_stream_contiguous() -> None:
    sender: Sender[int] = Sender()
    sink = PacketSink()
    sender.attach(1, sink)
    src = ListSource(frames(1, 30))
    sender.play(1, src)
    t = run(sender, 6)  # speaking + 5 audio
    sender.pause(1)
    t = run(sender, 10, t)
    pops_while_paused = src.pops
    sender.resume(1)
    run(sender, 3, t)
    assert src.pops == pops_while_paused + 2
    assert sink.kinds() == (
        [("speaking", True)]
        + ["audio"] * 5
        + ["silence"] * 5
        + [("speaking", False), ("speaking", True), "audio", "audio"]
    )
    assert_contiguous(sink)
    stats = sender.stats(1)
    assert stats is not None and stats.nulled == 0


def test_underrun_sends_silence_then_speaking_off_and_recovers() -> None:
    sender: Sender[int] = Sender()
    sink = PacketSink()
    sender.attach(1, sink)
    gap: list[TFrame | None] = [None] * 8
    src = ListSource([*frames(1, 3), None, *frames(1, 2), *gap, *frames(1, 2)])
    sender.play(1, src)
    run(sender, 18)
    assert sink.kinds() == (
        [("speaking", True)]
        + ["audio"] * 3
        + ["silence"]  # a one-frame hole: silence, speaking stays on
        + ["audio"] * 2
        + ["silence"] * 5
        + [("speaking", False)]
        + [("speaking", True), "audio", "audio"]
    )
    stats = sender.stats(1)
    assert stats is not None and stats.nulled >= 9
    assert_contiguous(sink)


def test_stop_while_holding_the_first_frame_turns_speaking_off_without_silence() -> None:
    sender: Sender[int] = Sender()
    sink = PacketSink()
    sender.attach(1, sink)
    sender.play(1, ListSource(frames(1, 5)))
    sender.step(0.0)
    sender.stop(1)
    run(sender, 3, T)
    assert sink.kinds() == [("speaking", True), ("speaking", False)]


def test_keepalive_every_five_seconds_while_idle_only() -> None:
    sender: Sender[int] = Sender()
    sink = PacketSink()
    sender.attach(1, sink)
    run(sender, int(11.0 / T) + 1, t0=5.0)  # idle 11 s: keepalives at 5.0, 10.0, 15.0 s
    assert [k for k, _ in sink.log] == ["keepalive"] * 3
    assert [v for _, v in sink.log] == [struct.pack("<I4x", i) for i in range(3)]
    sink.log.clear()
    sender.play(1, ListSource(frames(1, 400)))
    run(sender, 300, t0=20.0)  # 6 s of audio: no keepalive in between
    assert "keepalive" not in [k for k, _ in sink.log]


def test_not_ready_connection_pops_nothing_and_counts_nulled() -> None:
    sender: Sender[int] = Sender()
    sink = PacketSink()
    sink.ready = False
    src = ListSource(frames(1, 5))
    sender.attach(1, sink)
    sender.play(1, src)
    run(sender, 4)
    assert src.pops == 0 and sink.log == []
    stats = sender.stats(1)
    assert stats is not None and stats.nulled == 4
    sink.ready = True
    run(sender, 3, 1.0)
    assert sink.kinds() == [("speaking", True), "audio", "audio"]


def test_a_dave_hold_mid_track_sends_silence_then_continues_where_it_stopped() -> None:
    """Issue 11 item 7: while audio would leak, nothing is popped (the track waits), the break
    gets its five silence frames and speaking off, and no frame of the track is skipped."""
    sender: Sender[int] = Sender()
    sink = PacketSink()
    src = ListSource(frames(1, 20))
    sender.attach(1, sink)
    sender.play(1, src)
    run(sender, 4)  # commands + speaking on, then 3 audio frames
    sink.hold = True
    run(sender, 10, 1.0)
    assert src.pops == 3 and sink.kinds() == [
        ("speaking", True),
        *["audio"] * 3,
        *["silence"] * 5,
        ("speaking", False),
    ]
    stats = sender.stats(1)
    assert stats is not None and stats.nulled == 10 and stats.silence == 5
    sink.hold = False
    run(sender, 25, 2.0)
    audio = [p for p in sink.payloads() if p != SILENCE_FRAME]
    assert audio == [f.opus for f in frames(1, 20) if f is not None]  # nothing skipped
    assert sink.kinds()[-1] == ("speaking", False)  # played out, then the usual tail


class BrokenSink(PacketSink):
    def send_frame(self, opus: bytes) -> None:
        raise RuntimeError("boom")


def test_a_failing_stream_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    sender: Sender[int] = Sender()
    good, bad = PacketSink(), BrokenSink()
    sender.attach(1, bad)
    sender.attach(2, good)
    sender.play(1, ListSource(frames(1, 50)))
    sender.play(2, ListSource(frames(2, 50)))
    with caplog.at_level(logging.ERROR):
        run(sender, 40)
    assert sender.totals.errors == 39 and good.kinds().count("audio") == 39
    assert len([r for r in caplog.records if "boom" in (r.exc_text or "")]) == 1
    sender.detach(1)
    run(sender, 1, 1.0)
    assert 1 not in sender and 2 in sender


class StampSink(PacketSink):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.times: list[float] = []

    def send_frame(self, opus: bytes) -> None:
        self.times.append(self.loop.time())
        super().send_frame(opus)


async def test_real_clock_uses_absolute_deadlines() -> None:
    loop = asyncio.get_running_loop()
    sender: Sender[int] = Sender()
    sink = StampSink(loop)
    sender.attach(1, sink)
    sender.play(1, ListSource(frames(1, 1000)))
    sender.start()
    await asyncio.sleep(0.63)
    sender.close()
    times = sink.times
    assert len(times) >= 25
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # absolute deadlines: no drift accumulates, whatever the jitter of single ticks
    assert abs((times[-1] - times[0]) - T * len(gaps)) < 0.015
    assert sum(gaps) / len(gaps) == pytest.approx(T, abs=0.001)


async def test_falling_behind_resyncs_instead_of_bursting() -> None:
    loop = asyncio.get_running_loop()
    sender: Sender[int] = Sender()
    sink = StampSink(loop)
    sender.attach(1, sink)
    sender.play(1, ListSource(frames(1, 1000)))
    sender.start()
    await asyncio.sleep(0.1)
    time.sleep(0.3)  # noqa: ASYNC251 - deliberately block the loop: 15 slots missed
    await asyncio.sleep(0.2)
    sender.close()
    gaps = [b - a for a, b in zip(sink.times, sink.times[1:], strict=False)]
    stall = max(range(len(gaps)), key=gaps.__getitem__)
    assert gaps[stall] >= 0.28
    # right after the stall the clock keeps its 20 ms spacing: no back-to-back catch-up frames
    assert all(g > 0.010 for g in gaps[stall + 1 :])
    stats = sender.stats(1)
    assert stats is not None and 12 <= stats.deficit <= 16 and sender.resyncs == 1


class RecordingBatch:
    """A TickBatch that records when it was held and released, against the sink's sends."""

    def __init__(self, sink: PacketSink) -> None:
        self.sink = sink
        self.calls: list[tuple[str, int]] = []

    def hold(self) -> None:
        self.calls.append(("hold", len(self.sink.log)))

    def release(self) -> None:
        self.calls.append(("release", len(self.sink.log)))


async def test_the_tick_holds_its_batch_around_every_frame_it_sends() -> None:
    loop = asyncio.get_running_loop()
    sink = StampSink(loop)
    batch = RecordingBatch(sink)
    sender: Sender[int] = Sender(batch=batch)
    sender.attach(1, sink)
    sender.play(1, ListSource(frames(1, 1000)))
    sender.start()
    await asyncio.sleep(0.2)
    sender.close()
    kinds = [kind for kind, _ in batch.calls]
    assert len(kinds) >= 10 and kinds == ["hold", "release"] * (len(kinds) // 2)
    # each tick's sends (speaking, one frame) happen between its hold and its release
    sends = [b - a for (_, a), (_, b) in itertools.pairwise(batch.calls)]
    assert sum(sends[0::2]) == len(sink.log) and not any(sends[1::2])
