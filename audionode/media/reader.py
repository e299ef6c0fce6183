"""TrackReader: opens one Playable and reads it ahead on its own thread.

Why a thread per open track: demuxing blocks on I/O (an HTTP stream can stall for seconds) and
must never hold up the frame producer of this or any other guild. libav releases the GIL while
it reads and decodes, so these threads cost little. The reader keeps ``ahead`` seconds of
audio ready and then sleeps until the consumer takes some.

Two modes, chosen when the stream opens:

- *packets*: an opus stream (Ogg, WebM/Matroska) — demuxed packets are kept as they are, so
  the pipeline can forward them byte for byte (passthrough) or decode them itself when a
  filter or the volume needs samples;
- *pcm*: anything else — decoded and resampled to float32 48 kHz stereo here.

The consumer side (:meth:`take_packet`, :meth:`take_pcm`, :meth:`seek`, :meth:`close`) is
thread-safe and never blocks on I/O.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Literal

import av
import av.container
import msgspec
from av.audio.stream import AudioStream

from audionode import native
from audionode.errors import AudionodeError
from audionode.media.codec import RATE, Pcm, ToPcm, frame_pcm
from audionode.media.container import MediaInput, MediaRejected, check_stream, open_input
from audionode.media.errors import describe_av_error
from audionode.media.frames import FRAME_SAMPLES, Frame
from audionode.media.httpfile import StreamTimeout
from audionode.media.opus import OpusPacketError, packet_samples
from audionode.media.producer import Producer, shared_readers
from audionode.playable import Playable

if TYPE_CHECKING:
    from audionode.media.lane import Lane

_log = logging.getLogger(__name__)

_FRAME = 960
"""Samples per channel of a 20 ms packet: the only packets the passthrough lane forwards."""
NEVER = 1 << 62
"""A sample position no track reaches (a lane mark that is not set)."""
_BURST = 50
"""Packets one inline track reads per turn of the shared thread before the others."""
_REST = "rest"
_CHUNK = 16 << 10
"""Bytes fed to the native Ogg demuxer at a time (its buffer stays near 32 KiB a track)."""
_MAX_BAD_PACKETS = 50


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What the reader learnt when the stream opened."""

    duration_ms: int | None
    is_live: bool
    codec: str
    packets: bool
    """True when the reader hands out opus packets (passthrough possible)."""


class Packet(msgspec.Struct, frozen=True, gc=False):
    """One demuxed opus packet. A msgspec struct rather than a dataclass: built in C (a frozen
    dataclass's ``__init__`` costs a Python ``object.__setattr__`` per field) and untracked by
    the cyclic GC (``gc=False``: seconds of read-ahead for hundreds of tracks are tens of
    thousands of packets every collection would otherwise walk; issue 7)."""

    data: bytes
    pos: int
    """Position of the packet's first sample in the track, in 48 kHz samples."""
    samples: int
    """Samples per channel in the packet; 0 when the TOC could not be parsed."""


class _ReaderFields:
    """The reader's counters and packet queue where the C extension is not built; with it, its
    ``ReaderCore`` holds them in C: the native demuxer pushes packets into the queue and the
    sender's Pump takes them out without a Python object per packet
    (docs/decisions/0022-native-reader-queue.md). The same methods either way; each is called
    with the reader's lock held where the order of calls matters."""

    _buffered: int
    _low: int
    _gen: int
    _resting: bool
    eof: bool
    _closed: bool

    def __init__(self) -> None:
        self._q: deque[Packet] = deque()

    @property
    def _q_count(self) -> int:
        return len(self._q)

    def _q_push(self, data: bytes, pos: int, samples: int) -> None:
        self._q.append(Packet(data=data, pos=pos, samples=samples))
        self._buffered += samples

    def _q_take(self, samples: int = -1) -> Packet | None:
        if not self._q or (samples >= 0 and self._q[0].samples != samples):
            return None
        packet = self._q.popleft()
        self._buffered -= packet.samples
        return packet

    def _q_peek(self) -> Packet | None:
        return self._q[0] if self._q else None

    def _q_clear(self) -> None:
        while self._q:
            self._buffered -= self._q.popleft().samples

    def _lane_take(self, lane: Lane) -> tuple[bytes, int] | Literal[False] | None:
        """The locked part of :meth:`TrackReader.take_for_lane`: None when nothing was taken
        (the lane is closed or nothing is queued); False when the next packet is not one
        20 ms frame or reaches ``lane.stop_at`` (the lane is closed now); else the packet's
        bytes and position (the lane closes after it once the end of the track is within
        ``lane.margin``, or at ``lane.stop_at``)."""
        if not lane.open or not self._q:
            return None
        head = self._q[0]
        pos = head.pos
        if head.samples != _FRAME or pos >= lane.stop_at:
            lane.open = False
            return False
        self._q.popleft()
        self._buffered -= _FRAME
        lane.pos = pos + _FRAME
        if self._resting and self._buffered <= self._low:
            self._refill()
        if (self.eof and self._buffered <= lane.margin) or pos + _FRAME >= lane.stop_at:
            lane.open = False
        return head.data, pos

    def _refill(self) -> None:
        raise NotImplementedError


if TYPE_CHECKING:
    _ReaderBase = _ReaderFields
else:
    try:
        from audionode.native._packet import ReaderCore as _ReaderBase
        from audionode.native._packet import set_packet_type
    except ImportError:  # not built: the same fields and queue in Python
        _ReaderBase = _ReaderFields
    else:
        set_packet_type(Packet)


class TrackReader(_ReaderBase):
    """Reads one track ahead. Start with :meth:`start`; always finish with :meth:`close`.

    ``wake`` is called (from the reader thread) whenever there is news for the consumer:
    the stream opened or failed, data arrived, or the end was reached.
    """

    background = True
    """Read-ahead: on the shared thread, a turn yields to frame production."""

    def __init__(
        self,
        playable: Playable,
        serial: int,
        *,
        wake: Callable[[], None],
        start_ms: int = 0,
        end_ms: int | None = None,
        ahead: float = 3.0,
        timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.playable = playable
        self.serial = serial
        self.info: MediaInfo | None = None
        self.error: str | None = None
        self.eof = False
        self._wake = wake
        self._end = None if end_ms is None else end_ms * RATE // 1000
        self._limit = max(1, int(ahead * RATE))
        self._low = self._limit // 2
        self._resting = False
        """Set when the buffer reached ``_limit``; the thread reads again below ``_low``.
        The hysteresis makes one wake-up read half the window in a burst instead of one
        packet per taken packet (a per-packet wake-up of every reader thread does not scale
        to thousands of players, issue 7)."""
        self._timeout = timeout
        self._lock = threading.RLock()
        """The lock of ``_cond``, taken directly on the per-packet paths: ``with lock`` runs in
        C, ``with condition`` adds a Python call per entry and exit (profiled, issue 7)."""
        self.lock = self._lock
        """The consumer side's lock (``media/lane.py`` closes a lane under it)."""
        self._cond = threading.Condition(self._lock)
        self._pcm: deque[tuple[int, Pcm | av.AudioFrame]] = deque()
        """Decoded blocks: libav's 20 ms frames as the resampler cut them (arrays are made
        only when taken as PCM, :meth:`take_frame` hands them on as they are), or arrays
        (a block cut at a seek target or the end)."""
        self._buffered = 0
        self._seek_to: int | None = max(0, start_ms) * RATE // 1000 if start_ms > 0 else None
        self._gen = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        """A network track's own thread (made in :meth:`start`: an unstarted thread would hold
        this reader in a reference cycle through its target)."""
        self._inline: Producer | None = None
        """Set when the shared reader thread serves this track instead of its own thread."""
        self._loop: _StreamLoop | None = None
        self._input: MediaInput | None = None
        self._files: list[object] = []
        """Every file object under the stream, for :meth:`close` to abort a blocked read."""
        self._step_lock = threading.Lock()

    # -- consumer side ---------------------------------------------------------------------

    def start(self) -> None:
        """Start reading: on the process's shared producer thread for sources that cannot
        stall (in-memory data, local files), else on a thread of its own (a network read may
        block for seconds and must not hold up other tracks). A thread per local track, and
        later one shared reader thread beside the producer, made every packet a contended GIL
        hand-off with hundreds of players (issue 7, media/producer.py)."""
        if self.playable.data is not None or not (self.playable.url or "").startswith(
            ("http://", "https://")
        ):
            self._inline = shared_readers()
            self._inline.schedule(self)
        else:
            self._thread = threading.Thread(
                target=self._run, name=f"reader-{self.serial}", daemon=True
            )
            self._thread.start()

    def _nudge(self) -> None:
        # Lock held by the caller: wake our own thread, or ask the shared one for a turn.
        self._cond.notify_all()
        if self._inline is not None:
            self._inline.schedule(self)

    @property
    def ready(self) -> bool:
        return self.info is not None

    def buffered(self) -> int:
        """Samples per channel ready to be taken."""
        return self._buffered

    def take_packet(self, samples: int | None = None) -> Packet | None:
        """The next opus packet (packets mode), or None if none is ready; with ``samples``,
        only a packet of exactly that many samples (else it stays first in line)."""
        with self._lock:
            packet = self._q_take(-1 if samples is None else samples)
            if packet is not None:
                self._refill()
            return packet

    def take_for_lane(self, lane: Lane) -> Frame | None:
        """The next packet as a frame for the passthrough lane (``media/lane.py``), on the
        sender's thread; None when none is ready or the lane is closed. Closes the lane (and
        returns None) at a packet that is not one 20 ms frame or reaches ``lane.stop_at``;
        closes it after the packet once the end of the track is within ``lane.margin``, so the
        pipeline has that many frames of time to take over (a gapless join, a crossfade).
        The locked part is ``_lane_take``, the same C function the sender's native Pump runs
        (decision 0022); this Python path serves what the Pump hands back."""
        with self._lock:
            got = self._lane_take(lane)
        if got is None:
            return None
        if got is False:  # not one 20 ms frame, or the stop: the pipeline takes over
            lane.on_turn()
            return None
        data, pos = got
        marked = pos >= lane.turn_at
        if marked:
            lane.crossed = pos  # the frame a position event names; one turn asked for
            lane.turn_at = NEVER
        if not lane.open:  # closed after this packet: frames must be made, at once
            lane.on_turn()
        elif marked:  # a turn that may wait (Lane.on_mark)
            lane.on_mark()
        return Frame(data, self.serial, pos * 1000 // RATE)

    def peek_packet(self) -> Packet | None:
        with self._lock:
            return self._q_peek()

    def take_frame(self) -> tuple[int, av.AudioFrame] | None:
        """The next block (pcm mode) as ``(position, frame)`` if it is a whole 20 ms libav
        frame (see ``codec.OpusEncoder.encode_frame``); else None and it stays first."""
        with self._lock:
            if not self._pcm:
                return None
            pos, block = self._pcm[0]
            if not isinstance(block, av.AudioFrame) or block.samples != FRAME_SAMPLES:
                return None
            self._pcm.popleft()
            self._buffered -= FRAME_SAMPLES
            self._refill()
            return pos, block

    def take_pcm(self, limit: int) -> tuple[int, Pcm] | None:
        """Up to ``limit`` samples (pcm mode) as ``(position, samples)``, or None if none."""
        with self._lock:
            if not self._pcm:
                return None
            pos, block = self._pcm[0]
            pcm = frame_pcm(block) if isinstance(block, av.AudioFrame) else block
            if len(pcm) <= limit:
                self._pcm.popleft()
            else:
                self._pcm[0] = (pos + limit, pcm[limit:])
                pcm = pcm[:limit]
            self._buffered -= len(pcm)
            self._refill()
            return pos, pcm

    def _try_refill(self) -> None:
        """:meth:`_refill` for the sender's native Pump, which takes packets without the lock
        (decision 0022): only if the lock is free; otherwise the next packet taken asks again
        (the reader is still resting below its low mark), so the tick never waits for it."""
        if self._lock.acquire(blocking=False):
            try:
                self._refill()
            finally:
                self._lock.release()

    def _refill(self) -> None:
        # Called with the lock held: wake the resting thread once the buffer fell to ``_low``.
        if self._resting and self._buffered <= self._low:
            self._resting = False
            self._nudge()

    @property
    def decoded(self) -> int:
        """Position (48 kHz samples) up to which the stream was decoded so far (pcm mode;
        0 before the first samples): what the read-ahead cost, for ``bench/transcode_cost.py``."""
        loop = self._loop
        return 0 if loop is None or loop.pos is None else loop.pos

    @property
    def drained(self) -> bool:
        """True once the end was reached and every sample was taken."""
        return self.eof and self._buffered <= 0 and not self._q_count and not self._pcm

    def seek(self, ms: int) -> None:
        """Drop what is buffered and continue from ``ms`` (the reader thread does the I/O)."""
        with self._cond:
            self._seek_to = max(0, ms) * RATE // 1000
            self._gen += 1
            self._drop_buffers()
            self.eof = False
            self._nudge()

    def close(self, wait: float = 0.0) -> None:
        """Stop reading and free the stream; waits up to ``wait`` s for the thread to exit."""
        with self._cond:
            self._closed = True
            self._drop_buffers()
            self._nudge()
        for f in list(self._files):
            abort = getattr(f, "abort", None)
            if abort is not None:
                abort()
        thread = self._thread
        if wait > 0 and thread is not None and thread is not threading.current_thread():
            thread.join(wait)

    @property
    def reading(self) -> bool:
        """True while a thread of this reader's own is alive (network tracks)."""
        return self._thread is not None and self._thread.is_alive()

    # -- reader thread ---------------------------------------------------------------------

    def _drop_buffers(self) -> None:
        self._q_clear()
        self._pcm.clear()
        self._buffered = 0
        self._resting = False

    def _fail(self, message: str) -> None:
        self.error = message
        self.eof = True
        self._wake()

    def _run(self) -> None:
        try:
            media = open_input(self.playable, self._timeout, self._files)
        except Exception as e:  # every failure to open becomes the track's error message
            self._fail(self._open_error(e))
            return
        try:
            with media:
                self._read(media.container)
        except Exception as e:  # a reader must never die silently
            if not self._closed:
                self._fail(_read_error(e))
        finally:
            self._loop = None  # see _release

    def _open_error(self, exc: BaseException) -> str:
        if isinstance(exc, StreamTimeout) and exc.answered:
            return _read_error(exc)
        if isinstance(exc, StreamTimeout):
            return f"{self.playable.describe()} did not answer within {self._timeout:g} s"
        if isinstance(exc, MediaRejected):
            return exc.message
        reason = exc.message if isinstance(exc, AudionodeError) else describe_av_error(exc)
        return f"cannot open {self.playable.describe()}: {reason}"

    def _read(self, container: av.container.InputContainer, *, run: bool = True) -> None:
        stream = check_stream(container, self.playable)
        codec = stream.codec_context.name
        duration = None if container.duration is None else container.duration // 1000
        self.info = MediaInfo(
            duration_ms=duration,
            is_live=self.playable.is_live or duration is None,
            codec=codec,
            packets=codec in ("opus", "libopus") and (stream.channels or 2) <= 2,
        )
        self._wake()
        self._loop = _StreamLoop(self, container, stream)
        if self.info.packets and self._seek_to is None:
            self._loop.native = _native_demux(self.playable, container, self._files)
        if run:
            self._loop.run()

    # -- the shared thread (inline mode) ------------------------------------------------------

    def step(self) -> float | None:
        """One turn on the shared thread: open the stream on the first turn, then read
        up to ``_BURST`` packets while below the read-ahead limit. Returns 0 when more is to
        be read (other tracks get their turn first), None to wait for :meth:`_nudge`."""
        with self._step_lock:
            if self._loop is None and not self._closed and not self._open_inline():
                return None
            work = self._take_work()
            if work is None:
                self._release()
                self._loop = None
                return None
            if work is _REST:
                return None
            assert self._loop is not None and not isinstance(work, str)
            target, gen = work
            try:
                self._read_burst(target, gen)
            except Exception as e:  # the track's error, never the shared thread's
                self._release()
                self._fail(_read_error(e))
                return None
            return 0.0

    def _read_burst(self, target: int | None, gen: int) -> None:
        assert self._loop is not None
        for _ in range(_BURST):
            self._loop.once(target, gen)
            target = None
            # Unlocked reads, one per packet: a change seen a packet late costs one more
            # packet read (dropped by its stale ``gen`` after a seek); the next turn's
            # _take_work decides under the lock (rest, seek, close).
            if (
                self._buffered >= self._limit
                or self.eof
                or self._closed
                or self._seek_to is not None
            ):
                return

    def _open_inline(self) -> bool:
        try:
            self._input = open_input(self.playable, self._timeout, self._files)
            self._read(self._input.container, run=False)
        except Exception as e:  # every failure becomes the track's error message
            self._release()
            self._fail(self._open_error(e))
            return False
        return self._loop is not None

    def _release(self) -> None:
        # Closed for good, the reader also drops its loop (the caller does): the loop points
        # back at the reader, and a cycle waits for the cyclic GC, which the engine runs
        # rarely (engine/gcpolicy.py); every finished track of every guild then stayed in
        # memory until the next full collection (bench/soak.py: workers +50 KB per track end).
        if self._input is not None:
            self._input.close()
            self._input = None

    def _take_work(self) -> tuple[int | None, int] | str | None:
        """Like :meth:`_wait_for_work` without waiting: ``_REST`` when there is nothing to do."""
        with self._lock:
            if self._buffered >= self._limit:
                self._resting = True
            if self._closed:
                return None
            if self._seek_to is None and (self.eof or self._resting):
                return _REST
            target, self._seek_to = self._seek_to, None
            return target, self._gen

    def _wait_for_work(self) -> tuple[int | None, int] | None:
        """Sleep while the buffer is full or the end was reached; None once closed."""
        with self._cond:
            if self._buffered >= self._limit:
                self._resting = True
            while not self._closed and self._seek_to is None and (self.eof or self._resting):
                self._cond.wait(0.5)
            if self._closed:
                return None
            target, self._seek_to = self._seek_to, None
            return target, self._gen

    # Only wake the consumer when the buffer was empty: it may be waiting for this data;
    # otherwise it will find the data on its own and a wake-up per chunk would be waste.
    def _push_packet(self, gen: int, data: bytes, pos: int, samples: int) -> None:
        with self._lock:
            if gen != self._gen or self._closed:
                return
            was_empty = not self._q_count
            self._q_push(data, pos, samples)
        if was_empty:
            self._wake()

    def _push_pcm(self, gen: int, blocks: list[tuple[int, Pcm | av.AudioFrame]], n: int) -> None:
        """The blocks decoded from one packet (``n`` samples in all), under one lock."""
        if not blocks:
            return
        with self._lock:
            if gen != self._gen or self._closed:
                return
            was_empty = not self._pcm
            self._pcm.extend(blocks)
            self._buffered += n
        if was_empty:
            self._wake()

    def _set_eof(self, gen: int) -> None:
        with self._cond:
            if gen == self._gen:
                self.eof = True
        self._wake()


def _native_demux(
    playable: Playable, container: av.container.InputContainer, files: list[object]
) -> _NativeOgg | None:
    """The native Ogg Opus demuxer (docs/decisions/0019-native-ogg-demux.md) for a track
    that can use it: the extension is built and enabled, the container is Ogg with one
    stream, and the bytes are in memory or in a local file (network streams keep PyAV)."""
    mod = native.module()
    # None: not built; without read_into: built before 0022 (no ReaderCore to read into)
    demuxer = getattr(mod, "OggOpus", None)
    if demuxer is None or not hasattr(demuxer, "read_into"):
        return None
    if container.format.name != "ogg" or len(container.streams) != 1:
        return None
    if playable.data is not None:
        return _NativeOgg(demuxer(Packet), memoryview(playable.data), None)
    url = playable.url or ""
    if url.startswith(("http://", "https://")):
        return None
    try:
        f = open(url, "rb")  # noqa: SIM115 - closed with the stream (files)
    except OSError:
        return None  # PyAV opened it: keep PyAV
    files.append(f)
    return _NativeOgg(demuxer(Packet), None, f)


class _NativeOgg:
    """A native demuxer and where its bytes come from (in-memory data or a local file)."""

    __slots__ = ("data", "demux", "file", "offset")

    def __init__(self, demux: Any, data: memoryview | None, file: IO[bytes] | None) -> None:
        self.demux = demux
        self.data = data
        self.file = file
        self.offset = 0

    def feed(self) -> None:
        if self.data is not None:
            chunk: bytes | memoryview = self.data[self.offset : self.offset + _CHUNK]
            self.offset += len(chunk)
        else:
            assert self.file is not None
            chunk = self.file.read(_CHUNK)
        self.demux.feed(chunk)  # b"": the end of the input


def _read_error(exc: BaseException) -> str:
    if isinstance(exc, StreamTimeout):
        return f"the stream stopped sending data ({exc})"
    if isinstance(exc, AudionodeError):
        return exc.message
    return f"reading failed: {describe_av_error(exc)}"


class _StreamLoop:
    """The demux/decode loop of one reader thread (kept apart to keep functions short)."""

    def __init__(
        self,
        reader: TrackReader,
        container: av.container.InputContainer,
        stream: AudioStream,
    ) -> None:
        self.r = reader
        self.container = container
        self.stream = stream
        self.tb = float(stream.time_base or 0) or 1 / RATE
        self.demux: Iterator[av.Packet[AudioStream]] = container.demux(stream)
        self.to_pcm = ToPcm(FRAME_SAMPLES)
        self.skip_to = 0
        self.pos: int | None = None
        self.next_packet_pos = 0
        self.bad = 0
        self.shape = (0, 0)
        """(rate, channels) of the last decoded frame, once the policy accepted it."""
        self.drop = 0
        """Packets libav leaves out: the native demuxer read them before it stopped."""
        self.native: _NativeOgg | None = None
        """Set while the native Ogg demuxer reads the packets (until a seek or a stream it
        does not handle: PyAV goes on from there)."""

    def run(self) -> None:
        while (work := self.r._wait_for_work()) is not None:
            self.once(*work)

    def once(self, target: int | None, gen: int) -> None:
        """Read (and for pcm, decode) one packet, after seeking to ``target`` if given."""
        if target is not None:
            self.native = None  # libav seeks (by bisection); the native demuxer reads on
            self._seek(target)
        if self.native is not None:
            self._native_once(gen, self.native)
            return
        try:
            packet = next(self.demux)
        except StopIteration:
            self._finish(gen)
            return
        except av.error.InvalidDataError:
            self._bad_packet()
            return
        if packet.size == 0:
            return
        if self.drop:  # read by the native demuxer already
            self.drop -= 1
            return
        if self.r.info is not None and self.r.info.packets:
            self._on_packet(gen, packet)
        else:
            self._on_pcm(gen, self._decode(packet))

    def _native_once(self, gen: int, source: _NativeOgg) -> None:
        """Up to ``_BURST`` packets from the native demuxer in one call."""
        demux = source.demux
        end = self.r._end
        # no further than the read-ahead limit (a page's other packets wait in the demuxer)
        want = min(_BURST, max(1, (self.r._limit - self.r._buffered + _FRAME - 1) // _FRAME))
        # straight into the reader's queue; dropped there when a seek or close came meanwhile
        stop = -1 if end is None else end
        count, was_empty = demux.read_into(self.r, want, self.skip_to, stop, gen)
        if count and was_empty:
            self.r._wake()
        state = demux.state
        if state == 1:  # wants input
            source.feed()
        elif state == 2:  # the end
            self._finish(gen)
        elif state == 3:  # not a stream it handles: PyAV goes on from the next packet
            _log.info(
                "%s: native Ogg demuxer stops at %d ms (%s); libav goes on",
                self.r.playable.describe(),
                demux.resume // 48,
                demux.why,
            )
            # libav reads from the start (its demuxer has not moved since the open) and leaves
            # out as many packets as were read here: the packets a libav-only read gives (a
            # seek would not: the second part of a chained stream restarts its positions)
            self.native = None
            self.drop = demux.count

    def _seek(self, target: int) -> None:
        if self.r.info is not None and self.r.info.is_live:
            self.skip_to, self.pos = 0, None
            return
        offset = int(target / RATE / self.tb)
        self.container.seek(offset, stream=self.stream, backward=True)
        self.stream.codec_context.flush_buffers()
        self.demux = self.container.demux(self.stream)
        self.to_pcm = ToPcm(FRAME_SAMPLES)
        self.skip_to, self.pos, self.drop = target, None, 0

    def _bad_packet(self) -> None:
        self.bad += 1
        if self.bad > _MAX_BAD_PACKETS:
            raise av.error.InvalidDataError(0, "too many corrupt packets in a row")

    def _on_packet(self, gen: int, packet: av.Packet[AudioStream]) -> None:
        data = bytes(packet)
        try:
            samples = packet_samples(data)
        except OpusPacketError:
            self._bad_packet()
            return
        self.bad = 0
        pos = self.next_packet_pos if packet.pts is None else round(packet.pts * self.tb * RATE)
        self.next_packet_pos = pos + samples
        end = self.r._end
        if end is not None and pos >= end:
            self._finish(gen)
            return
        if pos + samples <= self.skip_to:
            return
        self.r._push_packet(gen, data, max(0, pos), samples)

    def _decode(
        self, packet: av.Packet[AudioStream] | None
    ) -> tuple[float | None, list[av.AudioFrame]]:
        """The 20 ms blocks ``packet`` completes (``None``: the end, flush everything), with
        the time of its first frame when the position is not known yet (after an open or a
        seek: ``frame.time`` builds Fractions, too costly to ask per frame)."""
        try:
            frames = self.stream.decode(packet)
        except av.error.InvalidDataError:
            self._bad_packet()
            return None, []
        self.bad = 0
        time: float | None = None
        blocks: list[av.AudioFrame] = []
        for f in frames:
            self._check_shape(f)
            if self.pos is None and time is None:
                time = f.time
            blocks += self.to_pcm.frames(f)
        if packet is None:
            blocks += self.to_pcm.frames(None)
        return time, blocks

    def _check_shape(self, frame: av.AudioFrame) -> None:
        """Refuse a frame whose rate or channel count leaves the policy (a stream may change
        them midway), before the resampler sees it."""
        shape = (frame.sample_rate, frame.layout.nb_channels)
        if shape != self.shape:
            problem = self.r.playable.policy.audio_problem(*shape)
            if problem:
                raise MediaRejected(problem)
            self.shape = shape

    def _on_pcm(self, gen: int, decoded: tuple[float | None, list[av.AudioFrame]]) -> None:
        time, frames = decoded
        if self.pos is None and (time is not None or frames):
            # the first frame's time, even if the resampler holds all its samples back yet
            self.pos = round(time * RATE) if time is not None else self.skip_to
        if not frames:
            return
        assert self.pos is not None
        out: list[tuple[int, Pcm | av.AudioFrame]] = []
        n = 0
        end = self.r._end
        for frame in frames:
            start, self.pos = self.pos, self.pos + frame.samples
            if self.pos <= self.skip_to:
                continue
            block: Pcm | av.AudioFrame = frame
            if start < self.skip_to:
                block, start = frame_pcm(frame)[self.skip_to - start :], self.skip_to
            if end is not None and self.pos >= end:
                if end > start:
                    pcm = frame_pcm(block) if isinstance(block, av.AudioFrame) else block
                    out.append((start, pcm[: end - start]))
                    n += end - start
                self.r._push_pcm(gen, out, n)
                self.r._set_eof(gen)
                return
            out.append((start, block))
            n += self.pos - start
        self.r._push_pcm(gen, out, n)

    def _finish(self, gen: int) -> None:
        if not (self.r.info is not None and self.r.info.packets):
            self._on_pcm(gen, self._decode(None))
        self.r._set_eof(gen)
