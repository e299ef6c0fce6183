"""The real-time sender: one 20 ms clock for every voice connection of the process.

docs/ARCHITECTURE.md ("the sender never awaits the control plane, never decodes, never logs per
packet") and issue 4 items 5-6; framing facts from docs/discord-voice.md §1.9 and §1.11. It
lives in ``transport/`` beside the connections it drives (it paces their UDP sends): it knows
opus frames only through the :class:`Frame`/:class:`FrameSource` protocols and never imports
``media/``.

Each tick, on an absolute deadline (``deadline += 0.020`` on ``loop.time()``), the sender:

1. drains the queued control commands (attach, play, pause, stop...) once;
2. for every attached stream pops at most one ready frame from its frame source and hands it to
   the stream's sink (``VoiceConnection.send_frame``: DAVE + RTP + AEAD + ``sendto``);
3. reports "first frame of track N actually sent" through ``on_track_start``.

Per stream the speaking state follows §1.11: speaking on is sent one tick *before* the first
frame (so the websocket op 5 leaves before the UDP packet), five ``F8 FF FE`` silence frames
follow every break in the audio (pause, stop, underrun), speaking off comes after them, and an
8-byte UDP keepalive goes out after 5 s without any packet. When the clock falls more than
``resync_after`` behind it skips the missed slots (counted as ``deficit``) instead of bursting.

While a connection can send packets but not audio (``ready`` but not ``audio_ready``: its DAVE
group is being (re)established, issue 11 item 7), the stream *holds*: nothing is popped, so the
track does not advance; the silence frames and speaking off of a break go out as usual (silence
passes DAVE in the clear, §2.1), and the audio continues where it stopped once encryption is
possible.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Final, Generic, Protocol, TypeVar

from audionode.transport.cpugate import Gate, gate_of
from audionode.voice.packetizer import SILENCE_FRAME, SILENCE_FRAME_COUNT

if TYPE_CHECKING:
    from audionode.native import _packet

log = logging.getLogger(__name__)

FRAME_INTERVAL: Final = 0.020
"""Seconds per opus frame (§1.9: 960 samples at 48 kHz)."""
RESYNC_AFTER: Final = 0.100
"""Lateness beyond which the sender drops missed slots instead of catching up in a burst."""
KEEPALIVE_INTERVAL: Final = 5.0
"""Seconds without a packet before an idle stream sends a UDP keepalive (§1.11)."""

K = TypeVar("K", bound=Hashable)


class TickBatch(Protocol):
    """Work the tick's frames ask for, handed over once the tick is done
    (``media.producer.Producer``: the refills of the popped frame buffers)."""

    def hold(self) -> None: ...

    def release(self) -> None: ...


class Frame(Protocol):
    """One 20 ms opus frame as the sender needs it (``media.frames.Frame`` satisfies this)."""

    @property
    def opus(self) -> bytes: ...

    @property
    def track(self) -> int: ...

    @property
    def position_ms(self) -> int: ...


class FrameSource(Protocol):
    """Where a stream's frames come from (``media.frames.FrameBuffer``).

    ``pop()`` is called at most once per tick from the event loop thread and must not block:
    it returns the next frame, or ``None`` when none is ready (counted as ``nulled``).
    """

    def pop(self) -> Frame | None: ...


class VoiceSink(Protocol):
    """The connection side of a stream (``transport.voice_conn.VoiceConnection``).

    All methods are synchronous and cheap; ``ready`` is false while the connection has no UDP
    socket or transport key (connecting, reconnecting), and then the sender pops nothing and
    sends nothing. ``audio_ready`` (implies ``ready``) is false while an audio frame would leak
    past DAVE: the sender then pops nothing but still sends owed silence frames.
    """

    @property
    def ready(self) -> bool: ...

    @property
    def audio_ready(self) -> bool: ...

    def send_frame(self, opus: bytes) -> None: ...

    def set_speaking(self, on: bool) -> None: ...

    def send_keepalive(self) -> None: ...


ARM_RETRY: Final = 10
"""Ticks before a steady stream the Pump could not take is offered to it again: a transcoded
track never can (this keeps its cost to a check every 200 ms), a passthrough track again once
its lane reopens after a command."""

QueueFrame = Callable[[bytes, "_packet.Batch"], None]
"""``VoiceConnection.queue_frame``: a sink's native path (decision 0017); sinks without it
are sent to by ``send_frame`` even when the sender has a batch."""


@dataclass(slots=True)
class SenderStats:
    """Counters of one stream, or of all streams ever attached (:attr:`Sender.totals`)."""

    sent: int = 0
    """Audio frames handed to the sink."""
    silence: int = 0
    """``F8 FF FE`` frames sent after a break in the audio."""
    nulled: int = 0
    """Ticks in which a playing stream sent no audio (source empty or connection not ready)."""
    deficit: int = 0
    """Slots of a playing stream skipped because the clock resynced after falling behind."""
    keepalives: int = 0
    errors: int = 0
    """Exceptions raised by the sink or source (the first is logged, the stream goes on)."""

    def add(self, other: SenderStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(slots=True)
class _Stream:
    sink: VoiceSink
    source: FrameSource | None = None
    playing: bool = False
    speaking: bool = False
    pending: Frame | None = None
    """A frame popped while speaking was off: sent on the next tick, after op 5 went out."""
    tail: int = 0
    """Silence frames still owed after the last audio frame."""
    track: int | None = None
    last_packet: float = 0.0
    stats: SenderStats = field(default_factory=SenderStats)
    queue: QueueFrame | None = None
    """The sink's ``queue_frame`` when the sender batches natively, else ``None``."""
    feed: _packet.Feed | None = None
    """Set while the native Pump serves this stream (decision 0020)."""
    arm_at: int = 0
    """The tick from which the stream may be offered to the Pump."""

    def send(self, opus: bytes, out: _packet.Batch | None) -> None:
        """Hand one frame to the sink: staged in the tick's batch, or sent now."""
        queue = self.queue
        if queue is not None:
            queue(opus, out)  # type: ignore[arg-type]  # queue is set only with a batch
        else:
            self.sink.send_frame(opus)


TickCallback = Callable[[float, float], None]
"""``on_tick(late, took)``: seconds the tick woke after its deadline and seconds it ran; called
once per tick (metrics histograms), must be cheap and never raise."""

TrackStartCallback = Callable[[K, int, int], None]
"""``on_track_start(key, track, position_ms)``: called from the tick, must be cheap and never
block (enqueue an event); exceptions are logged and swallowed."""


class Sender(Generic[K]):
    """One per engine process (one event loop): paces every attached stream on 20 ms deadlines.

    Call :meth:`start` from the running loop, then :meth:`attach` a sink per connection and
    :meth:`play` a frame source on it. All control methods only queue a command that the next
    tick applies, so they are safe to call at any time from the loop thread (and, since
    ``deque.append`` is atomic, from another thread). :meth:`close` stops the clock.
    Tests may drive it without a clock by calling :meth:`step` with their own ``now``.
    """

    def __init__(
        self,
        on_track_start: TrackStartCallback[K] | None = None,
        *,
        interval: float = FRAME_INTERVAL,
        resync_after: float = RESYNC_AFTER,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
        batch: TickBatch | None = None,
        on_tick: TickCallback | None = None,
        out: _packet.Batch | None = None,
        pump: _packet.Pump | None = None,
    ) -> None:
        self.interval = interval
        self._on_tick = on_tick
        self._batch = batch
        self._out = out
        """The native per-tick batch (decision 0017): every frame of a tick is staged in it and
        it is sealed and sent in one call at the end of the tick; ``None``: the Python path."""
        self._pump = pump if out is not None else None
        """The native tick over the steady passthrough streams (decision 0020): each tick
        serves every stream handed to it in one call; the rest, and whatever it hands back,
        take the Python path below."""
        self.resync_after = resync_after
        self.keepalive_interval = keepalive_interval
        self._gone = SenderStats()
        """Counters of the streams detached so far (see :attr:`totals`)."""
        self.ticks = 0
        self.resyncs = 0
        self.late_max = 0.0
        """Latest wake-up after a deadline (s) since :meth:`take_timing` last reset it."""
        self.tick_max = 0.0
        """Longest tick (s) since :meth:`take_timing` last reset it."""
        self.tick_total = 0.0
        """Seconds spent in ticks since the start (admission reads the mean per tick)."""
        self._on_track_start = on_track_start
        self._streams: dict[K, _Stream] = {}
        self._python: dict[K, _Stream] = {}
        """The streams the Pump does not serve (all of them without a Pump)."""
        self._commands: deque[Callable[[], None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._gate: Gate | None = None
        """The loop's CPU gate, told of every tick (heavy control steps start after one)."""

    # --- control (queued, applied at the start of the next tick) ------------------------------

    def attach(self, key: K, sink: VoiceSink) -> None:
        """Add a connection under ``key`` (replacing any previous sink of that key)."""

        def run() -> None:
            old = self._streams.get(key)
            if old is not None:
                self._unpump(key, old)
                self._gone.add(old.stats)
            queue = getattr(sink, "queue_frame", None) if self._out is not None else None
            self._streams[key] = self._python[key] = _Stream(sink=sink, queue=queue)

        self._commands.append(run)

    def detach(self, key: K) -> None:
        """Forget ``key``; nothing more is sent to its sink."""

        def run() -> None:
            stream = self._streams.pop(key, None)
            if stream is not None:
                self._unpump(key, stream)
                del self._python[key]
                self._gone.add(stream.stats)

        self._commands.append(run)

    def play(self, key: K, source: FrameSource) -> None:
        """Start sending frames from ``source``; the first frame of each track is reported."""

        def apply(stream: _Stream) -> None:
            stream.source, stream.playing, stream.pending, stream.track = source, True, None, None

        self._command(key, apply)

    def pause(self, key: K) -> None:
        """Stop popping frames (five silence frames, then speaking off); :meth:`resume` goes on."""

        def apply(stream: _Stream) -> None:
            stream.playing = False

        self._command(key, apply)

    def resume(self, key: K) -> None:
        """Continue popping frames from the current source after :meth:`pause`."""

        def apply(stream: _Stream) -> None:
            stream.playing = stream.source is not None

        self._command(key, apply)

    def stop(self, key: K) -> None:
        """Drop the source (and any held frame); five silence frames, then speaking off."""

        def apply(stream: _Stream) -> None:
            stream.source, stream.playing, stream.pending, stream.track = None, False, None, None

        self._command(key, apply)

    def _command(self, key: K, apply: Callable[[_Stream], None]) -> None:
        def run() -> None:
            stream = self._streams.get(key)
            if stream is not None:
                self._unpump(key, stream)  # every command is decided on the Python path
                apply(stream)

        self._commands.append(run)

    # --- the native Pump (decision 0020) -------------------------------------------------------

    def _unpump(self, key: K, stream: _Stream) -> None:
        """Take ``stream`` back from the Pump (no-op when it does not serve it)."""
        feed = stream.feed
        if feed is None:
            return
        feed.armed = False
        self._sync(stream, feed)
        stream.feed = None
        stream.arm_at = self.ticks + 1
        self._python[key] = stream

    @staticmethod
    def _sync(stream: _Stream, feed: _packet.Feed) -> None:
        """Fold what the Pump sent into the stream's counters."""
        sent = feed.take_sent()
        if sent:
            stream.stats.sent += sent
            stream.last_packet = feed.last

    def _sync_all(self) -> None:
        if self._pump is not None:
            for stream in self._streams.values():
                if stream.feed is not None:
                    self._sync(stream, stream.feed)

    def _offer(self, key: K, stream: _Stream) -> None:
        """After a steady-state frame: hand the stream to the Pump when its connection and its
        source can go native: the sink's live channel (``VoiceConnection.pump_channel``) and
        the source's lane of this track (``FrameBuffer.pump_feed``); sinks and sources
        without those methods stay on the Python path."""
        stream.arm_at = self.ticks + ARM_RETRY
        pump = self._pump
        pump_channel = getattr(stream.sink, "pump_channel", None)
        pump_feed = getattr(stream.source, "pump_feed", None)
        if pump is None or pump_channel is None or pump_feed is None or stream.track is None:
            return
        channel = pump_channel()
        if channel is None:
            return
        feed = pump_feed(key, channel, stream.track)
        if feed is None:
            return
        pump.arm(feed)
        stream.feed = feed
        del self._python[key]

    def stats(self, key: K) -> SenderStats | None:
        """A copy of the counters of ``key``, or ``None`` when it is not attached."""
        stream = self._streams.get(key)
        if stream is None:
            return None
        if stream.feed is not None:
            self._sync(stream, stream.feed)
        copy = SenderStats()
        copy.add(stream.stats)
        return copy

    @property
    def totals(self) -> SenderStats:
        """Counters of all streams, including detached ones (summed on demand: the hot path
        counts per stream only)."""
        self._sync_all()
        total = SenderStats()
        total.add(self._gone)
        for stream in self._streams.values():
            total.add(stream.stats)
        return total

    def all_stats(self) -> dict[K, SenderStats]:
        """The live counters of every attached stream (read-only by contract: not copies)."""
        self._sync_all()
        return {key: stream.stats for key, stream in self._streams.items()}

    def take_timing(self) -> tuple[float, float]:
        """``(late_max, tick_max)`` in seconds since the previous call, then reset both."""
        timing = (self.late_max, self.tick_max)
        self.late_max = self.tick_max = 0.0
        return timing

    def __contains__(self, key: object) -> bool:
        return key in self._streams

    # --- clock --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the 20 ms clock on the running loop (no-op if already started)."""
        if self._handle is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + self.interval
        self._handle = self._loop.call_at(self._deadline, self._tick)
        self._gate = gate_of(self._loop)
        self._gate.attach(self)

    def close(self) -> None:
        """Stop the clock; queued commands are kept but not applied."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._gate is not None:
            self._gate.detach(self)
            self._gate = None

    def until_next(self) -> float | None:
        """Seconds until the next tick is due (negative: overdue), None while stopped (the
        CPU gate's :class:`~audionode.transport.cpugate.Clock`)."""
        if self._handle is None or self._loop is None:
            return None
        return self._deadline - self._loop.time()

    @property
    def running(self) -> bool:
        return self._handle is not None

    def _tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        late = now - self._deadline
        if late > self.resync_after:
            # Bursting the missed frames would only queue them in the network; drop the slots
            # and keep the phase of the clock.
            skipped = int(late / self.interval)
            self._deadline += skipped * self.interval
            self.resyncs += 1
            if self.resyncs <= 20 or self.resyncs % 100 == 0:  # rare, but bounded all the same
                log.warning(
                    "sender: woke %.0f ms late, skipped %d slots of %d streams (%d resyncs)",
                    late * 1000,
                    skipped,
                    len(self._streams),
                    self.resyncs,
                )
            for stream in self._streams.values():
                if stream.playing:
                    stream.stats.deficit += skipped
        began = time.perf_counter()
        batch = self._batch
        if batch is None:
            self._step(now)
        else:
            batch.hold()
            try:
                self._step(now)
            finally:
                batch.release()
        # After the refills are handed over: the flush seals and sends without the GIL, so
        # the producer thread works meanwhile.
        self._flush()
        if late > self.late_max:
            self.late_max = late
        # perf_counter, not loop.time(): uvloop's clock has millisecond resolution.
        took = time.perf_counter() - began
        self.tick_total += took
        if took > self.tick_max:
            self.tick_max = took
        if self._on_tick is not None:
            self._on_tick(late, took)
        self._deadline += self.interval
        self._handle = self._loop.call_at(self._deadline, self._tick)
        if self._gate is not None:
            self._gate.tick_done()

    def step(self, now: float) -> None:
        """One tick's work at time ``now`` (seconds): apply commands, one frame per stream,
        and (native path) seal and send the tick's batch."""
        self._step(now)
        self._flush()

    def _flush(self) -> None:
        out = self._out
        if out is not None:
            try:
                out.flush()
            except Exception:  # a bug, not the network (send errors are counted, not raised)
                log.exception("sender: native batch flush failed")

    def _step(self, now: float) -> None:
        self.ticks += 1
        self._drain()
        pump = self._pump
        if pump is None:
            for key, stream in self._streams.items():
                try:
                    self._step_stream(key, stream, now)
                except Exception:
                    self._count_error(key, stream)
            return
        served: set[K] | None = None
        if len(self._python) < len(self._streams):
            for feed in pump.run(self._out, now):  # type: ignore[arg-type]  # set with a pump
                key = feed.key
                back = self._streams.get(key)
                if back is None or back.feed is not feed:
                    continue
                self._unpump(key, back)
                if feed.served:  # its frame left before a failure: not a second one
                    served = served or set()
                    served.add(key)
        python = self._python
        offered: list[K] = []
        for key, stream in python.items():
            if served is not None and key in served:
                continue
            try:
                if self._step_stream(key, stream, now) and stream.arm_at <= self.ticks:
                    offered.append(key)
            except Exception:
                self._count_error(key, stream)
        for key in offered:
            stream = python[key]
            try:
                self._offer(key, stream)
            except Exception:
                self._count_error(key, stream)

    # --- per tick ----------------------------------------------------------------------------

    def _drain(self) -> None:
        commands = self._commands
        while commands:
            commands.popleft()()

    def _step_stream(self, key: K, stream: _Stream, now: float) -> bool:
        """One stream's slot; True when it sent a frame in the steady state (speaking, nothing
        held), where the Pump may take it over."""
        sink = stream.sink
        if stream.speaking and stream.playing and stream.pending is None:
            # The steady state, kept to as few Python calls as possible (profiled, issue 7):
            # it is the same as the general path below for a speaking stream with no held frame.
            if not sink.audio_ready:
                stream.stats.nulled += 1
                if sink.ready:  # DAVE hold: owed silence, then speaking off
                    self._after_audio(stream, now)
                return False
            assert stream.source is not None
            frame = stream.source.pop()
            if frame is not None:
                queue = stream.queue  # inlined _Stream.send: the per-packet path
                if queue is not None:
                    queue(frame.opus, self._out)  # type: ignore[arg-type]  # set with a batch
                else:
                    sink.send_frame(frame.opus)
                stream.tail = SILENCE_FRAME_COUNT
                stream.last_packet = now
                stream.stats.sent += 1
                if frame.track != stream.track:
                    stream.track = frame.track
                    self._report_track(key, frame)
                return True
            stream.stats.nulled += 1
            self._after_audio(stream, now)
            return False
        if not sink.ready:
            if stream.playing:
                self._null(stream)
            return False
        if stream.playing:
            if sink.audio_ready:
                if self._send_audio(key, stream, now):
                    return False
            else:
                self._null(stream)  # DAVE hold: the track waits, nothing is popped
        self._after_audio(stream, now)
        return False

    def _after_audio(self, stream: _Stream, now: float) -> None:
        """No audio this tick: owed silence, then speaking off, then keepalives."""
        sink = stream.sink
        if stream.tail:
            self._send_silence(stream, now)
        elif stream.speaking:
            # Stopped (or held) while a frame waited for op 5: no audio went out, so no silence
            # is owed.
            sink.set_speaking(False)
            stream.speaking = False
        elif now - stream.last_packet >= self.keepalive_interval:
            sink.send_keepalive()
            stream.last_packet = now
            stream.stats.keepalives += 1

    def _send_audio(self, key: K, stream: _Stream, now: float) -> bool:
        """Send this tick's audio frame if there is one; False when the slot stays empty."""
        frame = stream.pending
        if frame is None:
            assert stream.source is not None
            frame = stream.source.pop()
            if frame is None:
                self._null(stream)
                return False
        if not stream.speaking:
            # §1.11: op 5 must precede audio. It travels by websocket, the frame by UDP: hold
            # the frame one tick so the op 5 write is out first.
            stream.sink.set_speaking(True)
            stream.speaking = True
            stream.pending = frame
            return True
        stream.pending = None
        stream.send(frame.opus, self._out)
        stream.tail = SILENCE_FRAME_COUNT
        stream.last_packet = now
        stream.stats.sent += 1
        if frame.track != stream.track:
            stream.track = frame.track
            self._report_track(key, frame)
        return True

    def _send_silence(self, stream: _Stream, now: float) -> None:
        stream.send(SILENCE_FRAME, self._out)
        stream.tail -= 1
        stream.last_packet = now
        stream.stats.silence += 1
        if stream.tail == 0 and stream.speaking:
            stream.sink.set_speaking(False)
            stream.speaking = False

    def _null(self, stream: _Stream) -> None:
        stream.stats.nulled += 1

    def _report_track(self, key: K, frame: Frame) -> None:
        if self._on_track_start is None:
            return
        try:
            self._on_track_start(key, frame.track, frame.position_ms)
        except Exception:
            log.exception("on_track_start(%r, %d) failed", key, frame.track)

    def _count_error(self, key: K, stream: _Stream) -> None:
        stream.stats.errors += 1
        # Not per packet: the first failure of a stream, then one line per 500.
        if stream.stats.errors % 500 == 1:
            log.exception("sender: stream %r failed (%d errors so far)", key, stream.stats.errors)
