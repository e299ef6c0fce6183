"""Pipeline: one guild's audio, from Playables to a FrameBuffer of 20 ms opus frames.

::

    Playable ─▶ TrackReader thread (demux, decode, resample; ``decode_ahead`` s kept ready)
                   │  PCM / opus packets
                   ▼
    producer thread: Mixer (gapless join / crossfade → filters → volume → libopus encode,
                     or opus passthrough) ─▶ FrameBuffer (``buffer_frames`` frames) ─▶ sender

Threads: the process's one shared producer thread (:mod:`audionode.media.producer`) gives a
pipeline a turn (:meth:`Pipeline.step`) whenever it has work: a command, reader data, or the
sender having drained its FrameBuffer to the low-water mark. Local and in-memory tracks are
read in bounded turns on that same thread; a network track (the current one or the queued one)
has a reader thread of its own. libav releases the GIL while it reads, decodes and encodes.
The sender only ever calls ``pipeline.buffer.pop()``.

Control: every public method is thread-safe and returns at once; the change is applied by
the producer before it makes its next frame, so with the default 3 buffered frames a volume
or filter change reaches the ear within 100 ms. Methods that can refuse (``set_filters``,
``seek``) validate in the caller's thread and raise there, leaving playback untouched.

Events (:mod:`audionode.media.events`) are passed to ``on_event`` on the producer thread; the
callback must not block (``queue.put_nowait`` or ``loop.call_soon_threadsafe``).

Typical use (engine side)::

    p = Pipeline(config.engine, on_event=events.put_nowait)
    p.start()
    p.play(playable, track=1)
    p.queue_next(other, track=2)        # on NextWanted, or right away
    p.set_filters({"timescale": {"speed": 1.25}})
    ... sender: frame = p.buffer.pop() every 20 ms ...
    p.close()
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from audionode.config import EngineConfig
from audionode.errors import BadRequest, Conflict
from audionode.media.codec import RATE, OpusEncoder
from audionode.media.deck import Deck
from audionode.media.events import FiltersFailed, PipelineEvent, Position
from audionode.media.filtergraph import FilterChain, build_async
from audionode.media.frames import FRAME_MS, FRAME_SAMPLES, Frame, FrameBuffer
from audionode.media.lane import NEVER, Lane
from audionode.media.layers import FeedLayer, TrackLayer
from audionode.media.mixer import Mixer
from audionode.media.producer import Producer
from audionode.media.producer import shared as shared_producer
from audionode.media.reader import TrackReader
from audionode.playable import Playable
from audionode.protocol.filters import Filters, parse_filters

_log = logging.getLogger(__name__)

MAX_VOLUME = 10.0
"""The largest player gain the engine applies (1000 %, Lavalink's ceiling)."""
_IDLE_WAIT = 0.5
_LANE_WAIT = 5.0
"""The safety net while a lane carries the frames. The lane itself asks for a turn at each
position report and before the track's end (``turn_at``/``stop_at``), the reader when data
arrives for an empty queue, a command when posted; a net tighter than the reports (one a
second) only added turns: 0.5 s made two more turns a second per stream, each a wake-up of
the producer thread (docs/PERFORMANCE.md, "Fewer wake-ups")."""
_BUSY_WAIT = FrameBuffer.RECHECK


class Pipeline:
    """Decode, filter, mix and encode one guild's tracks into :attr:`buffer`.

    Call :meth:`start` once, then any control method from any thread; :meth:`close` at the
    end (it stops the threads and releases the streams).
    """

    background = False
    """A producer turn of a pipeline makes frames: it never waits behind read-ahead."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        on_event: Callable[[PipelineEvent], None] | None = None,
        *,
        open_timeout: float = 10.0,
        position_interval: float = 1.0,
        owner: int | None = None,
    ) -> None:
        cfg = config or EngineConfig()
        self.owner = owner
        """The player this pipeline serves: a producer turn stuck in it or its readers is
        blamed on that player (``engine/watchdog.py``)."""
        self._cfg = cfg
        self._on_event = on_event or (lambda _e: None)
        self._open_timeout = open_timeout
        self._position_every = int(position_interval * 1000)
        self._lock = threading.RLock()
        """``_wake``'s lock, taken directly once per frame (``with`` on a lock runs in C)."""
        self._wake = threading.Condition(self._lock)
        """Guards the command queue and the closed flag (never held while producing)."""
        self.buffer = FrameBuffer(cfg.buffer_frames, wake=self._wake, on_low=self._schedule)
        """The frames ready to send; the sender pops one per 20 ms tick."""
        self._mixer = Mixer(OpusEncoder(cfg.bitrate, cfg.complexity), self._emit, cfg.preload)
        self._mixer.crossfade = int(cfg.crossfade * 48000)
        self._commands: deque[Callable[[], None]] = deque()
        self._stale = False
        self._holding = False
        self._held: list[PipelineEvent] = []
        self._paused = False
        self._closed = False
        self._volume = 1.0
        self._filters = Filters()
        self._filter_gen = 0
        self._last_position: tuple[int, int] = (-1, 0)
        self._step_lock = threading.RLock()
        self._producer: Producer | None = None
        self._lane: Lane | None = None
        """Open while the current track's packets go to the sender straight from its reader
        (``media/lane.py``); only the producer thread sets it, any command closes it."""

    def set_events(self, on_event: Callable[[PipelineEvent], None]) -> None:
        """Replace the event callback (before :meth:`start`: a shared encode is built first
        and told its callback, which names it, after)."""
        self._on_event = on_event

    # -- control API (any thread) ----------------------------------------------------------

    def start(self) -> None:
        """Join the process's shared producer thread (:mod:`audionode.media.producer`)."""
        self._producer = shared_producer()
        if self.owner is not None:
            self._producer.tag(self, self.owner)
        self._producer.schedule(self)

    def play(
        self, playable: Playable, track: int, *, start_ms: int = 0, end_ms: int | None = None
    ) -> None:
        """Play ``playable`` now as track serial ``track``, replacing the current track
        (reported as ``replaced``); a queued track stays queued.

        With no current track (the last one finished), the finished track's frames still in
        :attr:`buffer` are kept: they play out and the new track follows them without a gap
        (a player that learns of the end and then plays the next track loses no frame)."""
        _check_span(start_ms, end_ms)
        replacing = self._mixer.current is not None
        self._post(
            lambda: self._replace(self._deck(playable, track, start_ms, end_ms)), flush=replacing
        )

    def queue_next(
        self, playable: Playable, track: int, *, start_ms: int = 0, end_ms: int | None = None
    ) -> None:
        """Open and buffer the track to follow the current one (gapless or crossfaded).

        Replaces a previously queued track (which reports nothing). If nothing is playing
        the track simply waits; :meth:`skip` starts it at once.
        """
        _check_span(start_ms, end_ms)
        self._post(lambda: self._mixer.set_next(self._deck(playable, track, start_ms, end_ms)))

    def clear_next(self) -> None:
        """Forget the queued track."""
        self._post(lambda: self._mixer.set_next(None))

    def skip(self) -> None:
        """End the current track now (``skipped``) and start the queued one, if any."""
        self._post(self._skip, flush=True)

    def stop(self) -> None:
        """End the current track (``stopped``), drop the queued one, empty the buffer."""
        self._post(self._stop, flush=True)

    def seek(self, position_ms: int) -> None:
        """Continue the current track from ``position_ms``.

        Raises :class:`Conflict` if nothing is playing or the track is a live stream.
        """
        if position_ms < 0:
            raise BadRequest(f"position must be >= 0 ms, got {position_ms}")
        cur = self._mixer.current
        if cur is None:
            raise Conflict("cannot seek: nothing is playing")
        if cur.is_live:
            raise Conflict("cannot seek: the current track is a live stream")
        self._post(lambda: self._seek(position_ms), flush=True)

    def pause(self) -> None:
        """Stop producing frames (the few already buffered are still popped)."""
        self._paused = True
        self._post(lambda: None)

    def resume(self) -> None:
        self._paused = False
        self._post(lambda: None)

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def idle(self) -> bool:
        """Nothing is playing or queued (a player may then join a shared encode)."""
        return self._mixer.current is None and self._mixer.next is None

    def set_volume(self, volume: float) -> None:
        """Player volume, 0.0-10.0 (1.0 = unchanged; Lavalink's 1000 %), multiplied with the
        filters' volume. Each front bounds it further at its edge (Discodo: 5.0)."""
        if not 0.0 <= volume <= MAX_VOLUME:
            raise BadRequest(f"volume must be between 0.0 and {MAX_VOLUME}, got {volume}")
        self._volume = volume
        self._post(self._apply_gain)

    def set_filters(self, filters: Mapping[str, Any] | Filters | None) -> Filters:
        """Replace the filter set (see protocol/filters.py and media/filters.py).

        Validates here (an invalid set raises :class:`audionode.protocol.filters.FilterError`
        and the playing set stays), then builds and tries the libavfilter chain on a builder
        thread within a deadline (``media/filtergraph.py``): the new set plays once built,
        or a :class:`FiltersFailed` event says why not (the playing set stays).
        """
        spec = parse_filters(filters)
        with self._wake:
            self._filter_gen += 1
            gen = self._filter_gen

        def built(chain: FilterChain | None, error: str | None) -> None:
            def apply() -> None:
                if error is not None:
                    self._emit(FiltersFailed(error))
                elif gen == self._filter_gen:  # else a newer set was asked for meanwhile
                    self._filters = spec
                    self._mixer.chain = chain
                    self._apply_gain()

            with contextlib.suppress(Conflict):  # closed meanwhile
                self._post(apply)

        build_async(spec, built)
        return spec

    @property
    def filters(self) -> Filters:
        return self._filters

    def set_crossfade(self, seconds: float) -> None:
        """Overlap of consecutive tracks in seconds; 0 joins them gaplessly."""
        if not 0.0 <= seconds <= 30.0:
            raise BadRequest(f"crossfade must be between 0 and 30 seconds, got {seconds}")
        samples = int(seconds * 48000)

        def apply() -> None:
            self._mixer.crossfade = samples

        self._post(apply)

    def add_layer(
        self, layer_id: int, playable: Playable, volume: float, duck: float | None = None
    ) -> None:
        """Play ``playable`` once over the music at ``volume`` (0-5); ``duck`` (0-1) is the
        music's gain while it sounds. ``LayerStarted``/``LayerEnded`` report it; a layer of
        the same id is replaced. Layers play on while the music is paused or stopped."""
        _check_layer(volume, duck)
        self._post(lambda: self._mixer.layers.add(self._layer(layer_id, playable, volume, duck)))

    def add_feed(self, layer_id: int, volume: float, duck: float | None = None) -> FeedLayer:
        """A live layer: push opus frames into the returned :class:`FeedLayer` from any
        thread; it plays until :meth:`remove_layer`."""
        _check_layer(volume, duck)
        feed = FeedLayer(layer_id, volume, duck, wake=self._schedule)
        self._post(lambda: self._mixer.layers.add(feed))
        return feed

    def remove_layer(self, layer_id: int) -> None:
        """End a layer now (``LayerEnded`` reason ``stopped``); unknown ids are ignored."""
        self._post(lambda: self._mixer.layers.remove(layer_id))

    def close(self) -> None:
        """Stop the producer and every reader; the pipeline cannot be used afterwards."""
        with self._wake:
            self._closed = True
        with self._step_lock:  # a turn in progress finishes first; none starts after this
            self._settle_lane(keep=False)
            self._mixer.close()
        self.buffer.clear()

    # -- producer thread -------------------------------------------------------------------

    def step(self) -> float | None:
        """One turn on the producer thread: apply the commands, poll the decks, fill the
        buffer. Returns the longest sleep before the next turn (see :meth:`_next_turn`)."""
        with self._step_lock:
            with self._wake:
                if self._closed:
                    return None
                commands = list(self._commands)
                self._commands.clear()
                self._stale = False
            try:
                if self._lane is not None:
                    self._settle_lane(keep=not commands)
                for command in commands:
                    command()
                self._mixer.poll()
                starved = False if self._run_lane() else self._fill()
            except Exception as e:  # a bug must cost the track, not the guild's audio
                _log.exception("pipeline failed; dropping the current track")
                self._settle_lane(keep=False)
                self._mixer.fail_current(f"internal error: {e}")
                self._flush()
                starved = False
            return self._next_turn(starved)

    def _next_turn(self, starved: bool) -> float:
        """How long this pipeline may go without a turn when nobody schedules it: commands,
        reader data and the sender reaching the low-water mark all schedule one."""
        if self._commands:
            return 0.0
        if self._lane is not None:
            return max(_LANE_WAIT, 2 * self._position_every / 1000)
        idle = (self._mixer.current is None and self._mixer.next is None) or self._paused
        if idle and not self._mixer.layers:
            return _IDLE_WAIT
        if starved:
            return _BUSY_WAIT
        # Only a safety net: never sleep past the moment the buffered frames run out.
        return max(_BUSY_WAIT, len(self.buffer) * FRAME_MS / 1000 - _BUSY_WAIT)

    def _schedule(self) -> None:
        if self._producer is not None:
            self._producer.schedule(self)

    def _schedule_lazy(self) -> None:
        # A lane's packet reached turn_at (a position report or NextWanted is due): the turn
        # may wait for the producer's next hand-over; the report then says how late it is.
        if self._producer is not None:
            self._producer.schedule(self, lazy=True)

    def _fill(self) -> bool:
        """Produce until the buffer is full; True when the input ran dry first."""
        # Commands are applied before every frame, so none waits behind a burst of frames.
        layers = self._mixer.layers  # they play on while the music is paused
        while (not self._paused or layers) and self.buffer.room() and not self._commands:
            # Events raised while a frame is made are reported once it is in the buffer, so a
            # listener that sees TrackFinished finds the track's last frame already queued.
            self._holding = True
            try:
                frame = self._mixer.produce(music=not self._paused)
                if frame is None:
                    return True
                with self._lock:
                    if self._stale:  # a flushing command came in while this frame was made
                        return False
                    self.buffer.push(frame)  # room() was checked; only this thread adds
                self._report_position(frame)
            finally:
                self._release_events()
        return False

    def _report_position(self, frame: Frame) -> None:
        self._report_at(frame.track, frame.position_ms)

    def _report_at(self, track: int, position_ms: int, age_ms: int = 0) -> None:
        last_track, last = self._last_position
        if last_track != track or position_ms - last >= self._position_every:
            self._last_position = (track, position_ms)
            self._emit(Position(track, position_ms, age_ms))

    # -- the passthrough lane (media/lane.py) ------------------------------------------------

    def _settle_lane(self, *, keep: bool) -> bool:
        """Take the lane's progress into the deck (position, position event) and close it
        unless ``keep``; True while it stays open."""
        lane = self._lane
        if lane is None:
            return False
        if not keep:
            lane.close()
        cur = self._mixer.current
        if cur is not None and cur.reader is lane.reader:
            cur.pos = lane.pos
            crossed, lane.crossed = lane.crossed, -1
            if crossed >= 0:
                # The lane went on one frame a tick since the packet at ``crossed`` left: that
                # many ticks ago the playhead was there (a lazy turn, Producer.release).
                age = max(0, lane.pos - crossed - FRAME_SAMPLES) * 1000 // RATE
                self._report_at(lane.serial, crossed * 1000 // RATE, age)
        if lane.open:
            return True
        self._lane = None
        self.buffer.lane = None
        lane.detach()
        return False

    def _run_lane(self) -> bool:
        """Open the lane, or re-arm the open one, while the current track plays as pure
        passthrough; True while the lane carries its frames (nothing to produce here)."""
        cur = self._mixer.current
        lane = self._lane
        if self._paused or cur is None or not self._mixer.lane_ok(cur):
            self._settle_lane(keep=False)
            return False
        if lane is not None and lane.reader is not cur.reader:
            self._settle_lane(keep=False)
            lane = None
        margin = self.buffer.capacity * FRAME_SAMPLES
        stop, turn = self._lane_marks(cur, margin)
        if stop - cur.pos <= margin or (cur.reader.eof and cur.reader.buffered() <= margin):
            self._settle_lane(keep=False)
            return False
        if lane is not None:
            lane.stop_at, lane.turn_at = stop, turn
            return True
        if not cur.lane_start():
            return False
        lane = Lane(
            cur.reader,
            self._schedule,
            cur.pos,
            margin=margin,
            stop_at=stop,
            turn_at=turn,
            on_mark=self._schedule_lazy,
        )
        with self._lock:
            if self._commands or self._closed:  # a command came in: it runs first
                return False
            self._lane = lane
            self.buffer.lane = lane
        return True

    def _lane_marks(self, cur: Deck, margin: int) -> tuple[int, int]:
        """``(stop_at, turn_at)`` for a lane of ``cur``: where frames must be made again (a
        crossfade starts ``margin`` later) and where the next position event or NextWanted
        is due."""
        mixer = self._mixer
        remaining = cur.remaining()
        stop = NEVER
        if mixer.crossfade > 0 and mixer.next is not None and remaining is not None:
            stop = cur.pos + remaining - mixer.crossfade - margin
        track, last = self._last_position
        turn = 0 if track != cur.serial else (last + self._position_every) * RATE // 1000
        if mixer.next is None and not cur.next_wanted and not cur.is_live and remaining is not None:
            turn = min(turn, cur.pos + remaining - mixer.preload - mixer.crossfade)
        return stop, turn

    def _emit(self, event: PipelineEvent) -> None:
        if self._holding:
            self._held.append(event)
            return
        try:
            self._on_event(event)
        except Exception:  # a faulty listener must not stop the audio
            _log.exception("pipeline event listener failed")

    # -- command handlers (producer thread) ------------------------------------------------

    def _release_events(self) -> None:
        self._holding = False
        if not self._held:  # the usual case, once per frame: no new list
            return
        held, self._held = self._held, []
        for event in held:
            self._emit(event)

    def _deck(self, playable: Playable, track: int, start_ms: int, end_ms: int | None) -> Deck:
        reader = TrackReader(
            playable,
            track,
            wake=self._kick,
            start_ms=start_ms,
            end_ms=end_ms,
            ahead=self._cfg.decode_ahead,
            timeout=self._open_timeout,
        )
        if self._producer is not None and self.owner is not None:
            self._producer.tag(reader, self.owner)
        reader.start()
        deck = Deck(reader, end_ms)
        deck.pos = start_ms * 48
        return deck

    def _layer(
        self, layer_id: int, playable: Playable, volume: float, duck: float | None
    ) -> TrackLayer:
        reader = TrackReader(
            playable, -layer_id, wake=self._kick, ahead=1.0, timeout=self._open_timeout
        )
        if self._producer is not None and self.owner is not None:
            self._producer.tag(reader, self.owner)
        reader.start()
        return TrackLayer(layer_id, reader, volume, duck)

    def _kick(self) -> None:
        self._schedule()

    def _post(self, command: Callable[[], None], *, flush: bool = False) -> None:
        """Queue ``command`` for the producer. ``flush`` (play, skip, stop, seek) also empties
        the buffer now and keeps out any frame made before the command runs, so once the
        call returns the sender pops nothing from before it."""
        with self._wake:
            if self._closed:
                raise Conflict("the pipeline is closed")
            lane = self._lane
            if lane is not None:  # the next frame is made with the command applied
                lane.close()
            self._commands.append(command)
            if flush:
                self.buffer.clear()
                self._stale = True
        self._schedule()

    def _replace(self, deck: Deck) -> None:
        replacing = self._mixer.current is not None
        self._mixer.set_current(deck, "replaced")
        if replacing:
            self._flush()

    def _skip(self) -> None:
        self._mixer.skip()
        self._flush()

    def _stop(self) -> None:
        self._mixer.set_next(None)
        self._mixer.set_current(None, "stopped")
        self._flush()

    def _seek(self, ms: int) -> None:
        self._mixer.seek(ms)
        self.buffer.clear()

    def _flush(self) -> None:
        self._mixer.reset_output()
        self.buffer.clear()

    def _apply_gain(self) -> None:
        self._mixer.target = self._volume * self._filters.volume


def _check_layer(volume: float, duck: float | None) -> None:
    if not 0.0 <= volume <= 5.0:
        raise BadRequest(f"layer volume must be between 0.0 and 5.0, got {volume}")
    if duck is not None and not 0.0 <= duck <= 1.0:
        raise BadRequest(f"layer duck must be between 0.0 and 1.0, got {duck}")


def _check_span(start_ms: int, end_ms: int | None) -> None:
    if start_ms < 0:
        raise BadRequest(f"start position must be >= 0 ms, got {start_ms}")
    if end_ms is not None and end_ms <= start_ms:
        raise BadRequest(f"end position ({end_ms} ms) must be after the start ({start_ms} ms)")
