"""The engine: the data-plane unit of one process (in-process for ``workers = 0``, or one per
worker). It owns the voice connections, the pipelines and the one real-time sender of the
players it serves; commands come in, events go out (``engine/messages.py``).

``handle`` never blocks: slow work (connecting, closing) runs as tasks of this loop, and the
sender's 20 ms clock never waits on any of it (docs/ARCHITECTURE.md, "rules of the house").
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from audionode import native
from audionode.config import Config
from audionode.engine import faults
from audionode.engine import messages as msg
from audionode.engine.gcpolicy import GcPolicy
from audionode.engine.hearing import Hearing
from audionode.engine.receive import ReceivePath
from audionode.engine.sharing import FILTERS, VOLUME, ShareKey, filters_key, share_key
from audionode.errors import BadRequest, Conflict, VoiceError
from audionode.logs import guild_scope
from audionode.media import events as media_events
from audionode.media.fanout import SharedEncode, Tee
from audionode.media.layers import FeedLayer
from audionode.media.pipeline import MAX_VOLUME, Pipeline
from audionode.media.producer import shared as shared_producer
from audionode.protocol.filters import parse_filters
from audionode.transport.sender import FrameSource, Sender, SenderStats
from audionode.transport.voice_conn import Closed, Connected, Resumed, VoiceConnection, VoiceEvent
from audionode.voice.packetizer import SILENCE_FRAME_COUNT

log = logging.getLogger(__name__)

_SILENCE_GRACE = (SILENCE_FRAME_COUNT + 3) * 0.020
"""Seconds a disconnecting stream keeps its sink so its trailing silence frames go out."""


@dataclass(eq=False)
class _Unit:
    """What the engine holds for one player."""

    key: int
    conn: VoiceConnection | None = None
    credentials: tuple[int, str, str, str] | None = None  # channel, session, token, endpoint
    pipeline: Pipeline | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    layers: set[int] = field(default_factory=set)
    """Layers playing over the music: while any does, the sender keeps popping frames even
    when the music is paused or stopped (``media/layers.py``)."""
    stopped: bool = False
    sending: bool = False
    """The sender is popping this player's frame buffer (not paused, not stopped)."""
    volume: float = 1.0
    filters: dict[str, Any] = field(default_factory=dict)
    """The options the player asked for (a shared encode is joined only with equal ones)."""
    shared: SharedEncode | None = None
    """The shared encode this player plays from (``media/fanout.py``); None: its own."""
    tee: Tee | None = None
    """Its frame source while it plays (or is leaving) a shared encode."""
    paused: bool = False


class Engine:
    """``Engine(config, emit)``, ``await start()``, feed :meth:`handle`, ``await close()``.

    While started it emits an :class:`~audionode.engine.messages.EngineStats` report every
    :attr:`stats_interval` seconds (the frame counters of ``/status``).
    """

    stats_interval = 2.0

    def __init__(self, config: Config, emit: Callable[[msg.Event], None]) -> None:
        self.config = config
        self._emit = emit
        self.producer = shared_producer()
        """The process's producer thread (its host's watchdog reads its beat)."""
        self._late = msg.Histogram.empty(msg.LATE_BOUNDS)
        self._took = msg.Histogram.empty(msg.TICK_BOUNDS)
        native.configure(config.engine.native_packets)
        packet = native.module()
        self.sender: Sender[int] = Sender(
            self._track_started,
            batch=self.producer,
            keepalive_interval=config.voice.udp_keepalive,
            on_tick=self._timed,
            out=packet.Batch() if packet is not None else None,
            pump=packet.Pump() if packet is not None and config.engine.native_tick else None,
        )
        # A missing build is worth a warning (the node runs, slower); a choice only a line.
        (log.info if packet is not None or native.built() else log.warning)(
            "engine: %s", native.describe()
        )
        self._units: dict[int, _Unit] = {}
        self._guilds: dict[int, int] = {}
        """Player key -> guild id (from its Connect), for the guild in log lines."""
        self._shared: dict[ShareKey, SharedEncode] = {}
        """Live sources encoded once for several players (``media/fanout.py``)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reporter: asyncio.Task[None] | None = None
        self._gc = GcPolicy()
        self.on_beat: Callable[[], None] | None = None
        """Called every sender tick: the worker process's watchdog beat (``engine/child.py``,
        :meth:`audionode.engine.watchdog.Publisher.beat`)."""
        self.realtime = 0
        """``SCHED_FIFO`` priority of this engine's loop thread, reported in ``/status`` (the
        worker process sets it: ``engine/rtprio.py``)."""
        self._last_report = (time.process_time(), time.monotonic(), 0, 0.0)
        """CPU time, wall time, ticks and tick seconds at the previous report."""
        self.receive: ReceivePath | None = ReceivePath() if config.voice.receive else None
        """The other members' audio (``voice.receive``), consumed by :attr:`hearing`."""
        self.hearing = Hearing(config, emit, self.receive, self._start_feed, self._stop_feed)
        """Recordings and VDP channels (issue 15)."""
        self._handlers: dict[type[Any], Callable[[Any], object]] = {
            msg.Connect: self._connect,
            msg.Disconnect: self._disconnect,
            msg.Play: self._play,
            msg.Preload: lambda c: self._pipeline(c.player).queue_next(
                c.source, c.serial, start_ms=c.start_ms, end_ms=c.end_ms
            ),
            msg.CancelPreload: lambda c: self._pipeline(c.player).clear_next(),
            msg.Skip: self._skip,
            msg.Stop: self._stop,
            msg.Pause: self._pause,
            msg.Resume: self._resume,
            msg.Seek: self._seek,
            msg.SetVolume: self._set_volume,
            msg.SetFilters: self._set_filters,
            msg.SetCrossfade: lambda c: self._pipeline(c.player).set_crossfade(c.seconds),
            msg.Fault: faults.inject,
            msg.AddLayer: self._add_layer,
            msg.RemoveLayer: lambda c: self._pipeline(c.player).remove_layer(c.layer),
            **self.hearing.handlers(),
        }

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.sender.start()
        if self.receive is not None:
            self.receive.start()
        self._reporter = self._loop.create_task(self._report_stats())
        self._gc.start(self._loop)

    async def close(self) -> None:
        if self._reporter is not None:
            self._reporter.cancel()
        self._gc.close()
        units = list(self._units.values())
        for unit in units:
            self._disconnect(msg.Disconnect(player=unit.key))
        tasks = [t for unit in units for t in unit.tasks]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.sender.close()
        if self.receive is not None:
            self.receive.close()
        self.hearing.close()

    def report(self) -> msg.EngineStats:
        """The counters right now (and the sender's tick timing since the last report)."""
        players = {}
        for key, st in self.sender.all_stats().items():
            unit = self._units.get(key)
            dave = unit is not None and unit.conn is not None and unit.conn.dave.ready
            players[key] = _counters(st, dave)
        late, took = self.sender.take_timing()
        cpu, wall = time.process_time(), time.monotonic()
        ticks, tick_total = self.sender.ticks, self.sender.tick_total
        last_cpu, last_wall, last_ticks, last_total = self._last_report
        self._last_report = (cpu, wall, ticks, tick_total)
        return msg.EngineStats(
            player=0,
            totals=_counters(self.sender.totals, False),
            players=players,
            ticks=self.sender.ticks,
            resyncs=self.sender.resyncs,
            late_max_ms=round(late * 1000, 3),
            tick_max_ms=round(took * 1000, 3),
            hearing=self.hearing.stats() if self.receive is not None else {},
            late=msgspec.structs.replace(self._late, counts=list(self._late.counts)),
            tick=msgspec.structs.replace(self._took, counts=list(self._took.counts)),
            shared={
                "encodes": sum(1 for e in self._shared.values() if e.members),
                "players": sum(len(e.members) for e in self._shared.values()),
            },
            cpu=round((cpu - last_cpu) / (wall - last_wall), 4) if wall > last_wall else 0.0,
            tick_mean_ms=(
                round((tick_total - last_total) * 1000 / (ticks - last_ticks), 4)
                if ticks > last_ticks
                else 0.0
            ),
            realtime=self.realtime,
        )

    def _timed(self, late: float, took: float) -> None:
        """Every tick (the sender calls it): the histograms of ``/metrics``."""
        self._late.observe(msg.LATE_BOUNDS, max(0.0, late))  # a timer may fire a hair early
        self._took.observe(msg.TICK_BOUNDS, took)
        if self.on_beat is not None:
            self.on_beat()

    async def _report_stats(self) -> None:
        while True:
            await asyncio.sleep(self.stats_interval)
            self._emit(self.report())

    # --- commands ---------------------------------------------------------------------------

    def handle(self, command: msg.Command) -> None:
        """Apply one command; unknown or failing commands become ``CommandFailed`` events."""
        if isinstance(command, msg.Connect):
            self._guilds[command.player] = command.guild_id
        # Its log lines, and those of the tasks it starts, name the guild (docs/OPERATIONS.md).
        with guild_scope(self._guilds.get(command.player)):
            self._handle(command)
        if isinstance(command, msg.Disconnect):
            self._guilds.pop(command.player, None)

    def _handle(self, command: msg.Command) -> None:
        handler = self._handlers.get(type(command))
        name = type(command).__name__
        if handler is None:
            self._emit(
                msg.CommandFailed(
                    player=command.player, command=name, message="not supported by this engine"
                )
            )
            return
        try:
            handler(command)
        except Exception as e:  # a bad command must never take the engine down
            log.exception("engine command %s failed", name)
            self._emit(msg.CommandFailed(player=command.player, command=name, message=str(e)))

    def _spawn(self, unit: _Unit, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        unit.tasks.add(task)
        task.add_done_callback(unit.tasks.discard)

    def _connect(self, cmd: msg.Connect) -> None:
        unit = self._units.setdefault(cmd.player, _Unit(cmd.player))
        creds = (cmd.channel_id, cmd.session_id, cmd.token, cmd.endpoint)
        if unit.conn is not None and unit.credentials == creds and not unit.conn.session.final:
            # A repeated update changes nothing while the connection lives (or retries); once
            # it closed for good (4006: another connection took the session...), the bot
            # forwarding the same credentials again means "try again".
            return
        unit.credentials = creds
        if unit.conn is None:
            unit.conn = VoiceConnection(
                cmd.guild_id,
                cmd.user_id,
                cmd.session_id,
                cmd.channel_id,
                cmd.token,
                cmd.endpoint,
                self.config.voice,
                functools.partial(self._voice_event, cmd.player, cmd.guild_id),
                on_receive=(
                    functools.partial(self.receive.feed, cmd.player) if self.receive else None
                ),
            )
            self.sender.attach(cmd.player, unit.conn)
            source = self._frames(unit)
            if source is not None:  # tracks queued before the connection existed
                self.sender.play(cmd.player, source)
                paused = unit.paused if unit.pipeline is None else unit.pipeline.paused
                unit.sending = not paused or bool(unit.layers)
                if not unit.sending:
                    self.sender.pause(cmd.player)
            log.debug("player %d: connecting voice to %s", cmd.player, cmd.endpoint)
            self._spawn(unit, self._run_connect(unit.conn.connect()))
        else:
            log.debug("player %d: reconnecting voice to %s", cmd.player, cmd.endpoint)
            coro = unit.conn.reconnect(cmd.token, cmd.endpoint, cmd.channel_id, cmd.session_id)
            self._spawn(unit, self._run_connect(coro))

    async def _run_connect(self, attempt: Any) -> None:
        try:
            await attempt
        except VoiceError as e:  # the Closed event already told the player why
            log.info("voice connect failed: %s", e)

    def _disconnect(self, cmd: msg.Disconnect) -> None:
        unit = self._units.pop(cmd.player, None)
        if unit is None:
            return
        if unit.pipeline is not None:
            unit.pipeline.close()
        self._leave(unit, None)
        for layer in sorted(unit.layers):
            if layer > 0:  # the control plane's; VDP channels report their own end
                self._emit(msg.LayerEnded(player=cmd.player, layer=layer, reason="disconnected"))
        self.hearing.forget(cmd.player)
        # Stop first: the listeners get the five silence frames (and speaking off) before the
        # connection goes away (docs/discord-voice.md §1.11).
        self.sender.stop(cmd.player)
        self._spawn(unit, self._close_after_silence(cmd.player, unit.conn))

    async def _close_after_silence(self, key: int, conn: VoiceConnection | None) -> None:
        await asyncio.sleep(_SILENCE_GRACE)
        self.sender.detach(key)
        if conn is not None:
            await conn.close()
        if self.receive is not None:  # after the close: no more packets of this connection
            self.receive.forget(key)

    # --- media ------------------------------------------------------------------------------

    def _pipeline(self, key: int) -> Pipeline:
        """The player's own pipeline, created (and started) on first use; a player playing a
        shared encode leaves it for a pipeline of its own (its options diverge)."""
        unit = self._units.setdefault(key, _Unit(key))
        if unit.pipeline is None:
            loop = self._loop or asyncio.get_running_loop()

            def on_event(event: media_events.PipelineEvent) -> None:
                # Called on the pipeline's thread: hop to the loop, never block it.
                loop.call_soon_threadsafe(self._media_event, key, event)

            pipeline = Pipeline(self.config.engine, on_event, owner=key)
            if unit.volume != 1.0:
                pipeline.set_volume(unit.volume)
            if unit.filters:
                pipeline.set_filters(unit.filters)
            pipeline.start()
            unit.pipeline = pipeline
            shared, tee = unit.shared, unit.tee
            if shared is not None and tee is not None:
                # Same live source, same serial: the tee hands over at its first frame.
                shared.drop(key)
                unit.shared = None
                pipeline.play(shared.source, tee.serial)
                if unit.paused:
                    pipeline.pause()
                tee.leave_for(pipeline.buffer)
                log.info("player %d: leaves a shared encode (its options diverged)", key)
        return unit.pipeline

    def _frames(self, unit: _Unit) -> FrameSource | None:
        """What the sender pops for ``unit``: its tee (sharing, or leaving) or its buffer."""
        if unit.tee is not None:
            return unit.tee
        return None if unit.pipeline is None else unit.pipeline.buffer

    # --- shared encodes (media/fanout.py) ------------------------------------------------------

    def _share_key(self, unit: _Unit, cmd: msg.Play) -> ShareKey | None:
        """The key of the shared encode ``cmd`` may join (``engine/sharing.py``), or None when
        it plays alone: also for a player with layers, or whose own pipeline is not idle."""
        if not self.config.engine.share_live or unit.layers:
            return None
        if unit.pipeline is not None and not unit.pipeline.idle:
            return None
        return share_key(cmd.source, cmd.start_ms, cmd.end_ms, unit.volume, unit.filters)

    def _join_shared(self, unit: _Unit, cmd: msg.Play, key: ShareKey) -> None:
        encode = self._shared.get(key)
        if encode is None:
            loop = self._loop or asyncio.get_running_loop()
            pipeline = Pipeline(self.config.engine, None, owner=unit.key)
            encode = SharedEncode(key, cmd.source, pipeline)

            def on_event(event: media_events.PipelineEvent) -> None:
                loop.call_soon_threadsafe(self._shared_event, encode, event)

            pipeline.set_events(on_event)
            if unit.volume != 1.0:
                pipeline.set_volume(unit.volume)
            if unit.filters:
                pipeline.set_filters(unit.filters)
            pipeline.start()
            pipeline.play(cmd.source, 1)
            encode.on_empty = self._forget_shared
            self._shared[key] = encode
        if unit.pipeline is not None:  # idle: nothing of it is lost
            unit.pipeline.close()
            unit.pipeline = None
        unit.tee = encode.join(unit.key, cmd.serial)
        unit.shared = encode
        unit.stopped = unit.paused = False
        self.sender.play(unit.key, unit.tee)
        unit.sending = True

    def _forget_shared(self, encode: SharedEncode) -> None:
        if self._shared.get(encode.key) is encode:
            del self._shared[encode.key]

    def _leave(self, unit: _Unit, reason: str | None) -> None:
        """Stop reading any shared encode; ``reason``: the member's track ends so."""
        shared, tee = unit.shared, unit.tee
        unit.shared = unit.tee = None
        if shared is not None and tee is not None:
            shared.drop(unit.key)
            if reason is not None:
                self._emit(msg.TrackEnded(player=unit.key, serial=tee.serial, reason=reason))
        if tee is not None:
            tee.close()

    def _shared_event(self, encode: SharedEncode, event: media_events.PipelineEvent) -> None:
        """An event of a shared pipeline, told to each member under its own serial."""
        for key, tee in list(encode.members.items()):
            if isinstance(event, media_events.TrackFinished | media_events.TrackFailed):
                message = getattr(event, "message", None)
                reason = "error" if isinstance(event, media_events.TrackFailed) else event.reason
                self._emit(
                    msg.TrackEnded(player=key, serial=tee.serial, reason=reason, message=message)
                )
                encode.drop(key)
                unit = self._units.get(key)
                if unit is not None and unit.shared is encode:
                    unit.shared = None  # its tee plays out what is buffered
            elif isinstance(event, media_events.Position):
                self._emit(
                    msg.TrackPosition(
                        player=key,
                        serial=tee.serial,
                        position_ms=event.position_ms,
                        held_ms=event.age_ms,
                    )
                )

    def _play(self, cmd: msg.Play) -> None:
        unit = self._units.setdefault(cmd.player, _Unit(cmd.player))
        if unit.shared is not None:  # another track replaces the shared one
            self._leave(unit, "replaced")
        share = self._share_key(unit, cmd)
        if share is not None:
            self._join_shared(unit, cmd, share)
            return
        if unit.tee is not None:
            self._leave(unit, None)
        pipeline = self._pipeline(cmd.player)
        unit.stopped = unit.paused = False
        pipeline.play(cmd.source, cmd.serial, start_ms=cmd.start_ms, end_ms=cmd.end_ms)
        pipeline.resume()
        self.sender.play(cmd.player, pipeline.buffer)
        unit.sending = True

    def _stop(self, cmd: msg.Stop) -> None:
        unit = self._units.setdefault(cmd.player, _Unit(cmd.player))
        if unit.tee is not None:
            self._leave(unit, "stopped")
        self._pipeline(cmd.player).stop()
        unit.stopped = True
        if not unit.layers:  # layers play on over the silence
            self.sender.stop(cmd.player)
            unit.sending = False

    def _pause(self, cmd: msg.Pause) -> None:
        unit = self._units.setdefault(cmd.player, _Unit(cmd.player))
        unit.paused = True
        if unit.shared is not None:  # the shared encode goes on for the others
            self.sender.pause(cmd.player)
            unit.sending = False
            return
        self._pipeline(cmd.player).pause()
        if not unit.layers:
            self.sender.pause(cmd.player)
            unit.sending = False

    def _resume(self, cmd: msg.Resume) -> None:
        unit = self._units.setdefault(cmd.player, _Unit(cmd.player))
        unit.paused = False
        if unit.shared is None:
            self._pipeline(cmd.player).resume()
        self.sender.resume(cmd.player)
        unit.sending = unit.sending or not unit.stopped

    def _skip(self, cmd: msg.Skip) -> None:
        unit = self._units.get(cmd.player)
        if unit is not None and unit.shared is not None:
            self._leave(unit, "skipped")  # a member queues nothing (a Preload leaves)
            self.sender.stop(cmd.player)
            unit.sending = False
            return
        self._pipeline(cmd.player).skip()

    def _seek(self, cmd: msg.Seek) -> None:
        unit = self._units.get(cmd.player)
        if unit is not None and unit.shared is not None:
            raise Conflict("cannot seek: the current track is a live stream")
        self._pipeline(cmd.player).seek(cmd.position_ms)

    def _set_volume(self, cmd: msg.SetVolume) -> None:
        unit = self._units.setdefault(cmd.player, _Unit(cmd.player))
        if not 0.0 <= cmd.volume <= MAX_VOLUME:
            raise BadRequest(f"volume must be between 0.0 and {MAX_VOLUME}, got {cmd.volume}")
        unit.volume = cmd.volume
        if unit.shared is not None and unit.shared.key[VOLUME] == cmd.volume:
            return  # the shared encode plays at this volume already
        self._pipeline(cmd.player).set_volume(cmd.volume)

    def _set_filters(self, cmd: msg.SetFilters) -> None:
        unit = self._units.setdefault(cmd.player, _Unit(cmd.player))
        parse_filters(cmd.filters)  # an invalid set is refused before anything changes
        unit.filters = dict(cmd.filters)
        if unit.shared is not None and unit.shared.key[FILTERS] == filters_key(unit.filters):
            return
        self._pipeline(cmd.player).set_filters(cmd.filters)

    # --- layers -----------------------------------------------------------------------------

    def _add_layer(self, cmd: msg.AddLayer) -> None:
        self._pipeline(cmd.player).add_layer(cmd.layer, cmd.source, cmd.volume, cmd.duck)
        self._layer_on(cmd.player, cmd.layer)

    def _start_feed(self, key: int, layer: int) -> FeedLayer:
        feed = self._pipeline(key).add_feed(layer, 1.0)
        self._layer_on(key, layer)
        return feed

    def _stop_feed(self, key: int, layer: int) -> None:
        unit = self._units.get(key)
        if unit is not None and unit.pipeline is not None:
            unit.pipeline.remove_layer(layer)

    def _layer_on(self, key: int, layer: int) -> None:
        unit = self._units[key]
        unit.layers.add(layer)
        source = self._frames(unit)
        if unit.conn is not None and source is not None and not unit.sending:
            self.sender.play(key, source)  # even while paused or stopped
            unit.sending = True

    def _layer_off(self, key: int, layer: int) -> None:
        unit = self._units[key]
        unit.layers.discard(layer)
        if unit.layers or unit.pipeline is None:
            return
        if unit.pipeline.paused:  # the music's own state again
            self.sender.pause(key)
            unit.sending = False
        elif unit.stopped:
            self.sender.stop(key)
            unit.sending = False

    def _media_event(self, key: int, event: media_events.PipelineEvent) -> None:
        if key not in self._units:
            return  # disconnected meanwhile
        if isinstance(event, media_events.LayerStarted | media_events.LayerEnded):
            self._layer_event(key, event)
            return
        out: msg.Event | None = None
        if isinstance(event, media_events.TrackFinished):
            out = msg.TrackEnded(player=key, serial=event.track, reason=event.reason)
        elif isinstance(event, media_events.TrackFailed):
            out = msg.TrackEnded(
                player=key, serial=event.track, reason="error", message=event.message
            )
        elif isinstance(event, media_events.NextWanted):
            out = msg.NeedNext(player=key, serial=event.track)
        elif isinstance(event, media_events.Position):
            out = msg.TrackPosition(
                player=key, serial=event.track, position_ms=event.position_ms, held_ms=event.age_ms
            )
        elif isinstance(event, media_events.FiltersFailed):
            # built off the loop (media/filtergraph.py); the playing set stayed
            out = msg.CommandFailed(player=key, command="SetFilters", message=event.message)
        if out is not None:
            self._emit(out)

    def _layer_event(
        self, key: int, event: media_events.LayerStarted | media_events.LayerEnded
    ) -> None:
        if isinstance(event, media_events.LayerEnded):
            self._layer_off(key, event.layer)
            if event.layer > 0:
                self._emit(
                    msg.LayerEnded(
                        player=key, layer=event.layer, reason=event.reason, message=event.message
                    )
                )
        elif event.layer > 0:
            self._emit(msg.LayerStarted(player=key, layer=event.layer))

    # --- events -----------------------------------------------------------------------------

    def _voice_event(self, key: int, guild: int, event: VoiceEvent) -> None:
        # Bound at connect: a connection's events may come after its player was disconnected.
        with guild_scope(guild):
            self._on_voice_event(key, event)

    def _on_voice_event(self, key: int, event: VoiceEvent) -> None:
        if isinstance(event, Connected):
            log.info(
                "player %d: voice connected (%s, DAVE v%d)",
                key,
                event.mode,
                event.dave_protocol_version,
            )
            self._gc.settled()
            self._emit(
                msg.VoiceConnected(
                    player=key,
                    ssrc=event.ssrc,
                    mode=event.mode,
                    dave_protocol_version=event.dave_protocol_version,
                )
            )
        elif isinstance(event, Closed):
            log.info("player %d: voice closed (%d %s)", key, event.code, event.reason)
            self._emit(
                msg.VoiceClosed(
                    player=key,
                    code=event.code,
                    reason=event.reason,
                    by_remote=event.by_remote,
                    will_reconnect=event.will_reconnect,
                )
            )
        elif isinstance(event, Resumed):
            log.info("player %d: voice session resumed", key)

    def _track_started(self, key: int, track: int, position_ms: int) -> None:
        self._emit(msg.TrackStarted(player=key, serial=track))


def _counters(st: SenderStats, dave: bool) -> msg.FrameCounters:
    return msg.FrameCounters(
        sent=st.sent,
        nulled=st.nulled,
        deficit=st.deficit,
        silence=st.silence,
        errors=st.errors,
        dave=dave,
    )
