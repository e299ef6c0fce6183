"""The engine: the data-plane unit of one process (in-process for ``workers = 0``, or one per
worker). It owns the voice connections, the pipelines and the one real-time sender of the
players it serves; commands come in, events go out (``engine/messages.py``).

``handle`` never blocks: slow work (connecting, closing) runs as tasks of this loop, and the
sender's 20 ms clock never waits on any of it (ARCHITECTURE.md, "rules of the house").
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from audionode import native
from audionode.config import Config
from audionode.engine import faults
from audionode.engine import messages as msg
from audionode.engine.gcpolicy import GcPolicy
from audionode.engine.hearing import Hearing
from audionode.engine.receive import ReceivePath
from audionode.errors import VoiceError
from audionode.media import events as media_events
from audionode.media.layers import FeedLayer
from audionode.media.pipeline import Pipeline
from audionode.media.producer import shared as shared_producer
from audionode.transport.sender import Sender, SenderStats
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
        native.configure(config.engine.native_packets)
        packet = native.module()
        self.sender: Sender[int] = Sender(
            self._track_started,
            batch=self.producer,
            keepalive_interval=config.voice.udp_keepalive,
            out=packet.Batch() if packet is not None else None,
        )
        # A missing build is worth a warning (the node runs, slower); a choice only a line.
        (log.info if packet is not None or native.built() else log.warning)(
            "engine: %s", native.describe()
        )
        self._units: dict[int, _Unit] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reporter: asyncio.Task[None] | None = None
        self._gc = GcPolicy()
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
            msg.Skip: lambda c: self._pipeline(c.player).skip(),
            msg.Stop: self._stop,
            msg.Pause: self._pause,
            msg.Resume: self._resume,
            msg.Seek: lambda c: self._pipeline(c.player).seek(c.position_ms),
            msg.SetVolume: lambda c: self._pipeline(c.player).set_volume(c.volume),
            msg.SetFilters: lambda c: self._pipeline(c.player).set_filters(c.filters),
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
        return msg.EngineStats(
            player=0,
            totals=_counters(self.sender.totals, False),
            players=players,
            ticks=self.sender.ticks,
            resyncs=self.sender.resyncs,
            late_max_ms=round(late * 1000, 3),
            tick_max_ms=round(took * 1000, 3),
            hearing=self.hearing.stats() if self.receive is not None else {},
        )

    async def _report_stats(self) -> None:
        while True:
            await asyncio.sleep(self.stats_interval)
            self._emit(self.report())

    # --- commands ---------------------------------------------------------------------------

    def handle(self, command: msg.Command) -> None:
        """Apply one command; unknown or failing commands become ``CommandFailed`` events."""
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
                functools.partial(self._voice_event, cmd.player),
                on_receive=(
                    functools.partial(self.receive.feed, cmd.player) if self.receive else None
                ),
            )
            self.sender.attach(cmd.player, unit.conn)
            if unit.pipeline is not None:  # tracks queued before the connection existed
                self.sender.play(cmd.player, unit.pipeline.buffer)
                unit.sending = not unit.pipeline.paused or bool(unit.layers)
                if not unit.sending:
                    self.sender.pause(cmd.player)
            self._spawn(unit, self._run_connect(unit.conn.connect()))
        else:
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
        for layer in sorted(unit.layers):
            if layer > 0:  # the control plane's; VDP channels report their own end
                self._emit(msg.LayerEnded(player=cmd.player, layer=layer, reason="disconnected"))
        self.hearing.forget(cmd.player)
        # Stop first: the listeners get the five silence frames (and speaking off) before the
        # connection goes away (discord-voice.md §1.11).
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
        """The player's pipeline, created (and started) on first use."""
        unit = self._units.setdefault(key, _Unit(key))
        if unit.pipeline is None:
            loop = self._loop or asyncio.get_running_loop()

            def on_event(event: media_events.PipelineEvent) -> None:
                # Called on the pipeline's thread: hop to the loop, never block it.
                loop.call_soon_threadsafe(self._media_event, key, event)

            unit.pipeline = Pipeline(self.config.engine, on_event, owner=key)
            unit.pipeline.start()
        return unit.pipeline

    def _play(self, cmd: msg.Play) -> None:
        pipeline = self._pipeline(cmd.player)
        unit = self._units[cmd.player]
        unit.stopped = False
        pipeline.play(cmd.source, cmd.serial, start_ms=cmd.start_ms, end_ms=cmd.end_ms)
        pipeline.resume()
        self.sender.play(cmd.player, pipeline.buffer)
        unit.sending = True

    def _stop(self, cmd: msg.Stop) -> None:
        self._pipeline(cmd.player).stop()
        unit = self._units[cmd.player]
        unit.stopped = True
        if not unit.layers:  # layers play on over the silence
            self.sender.stop(cmd.player)
            unit.sending = False

    def _pause(self, cmd: msg.Pause) -> None:
        self._pipeline(cmd.player).pause()
        unit = self._units[cmd.player]
        if not unit.layers:
            self.sender.pause(cmd.player)
            unit.sending = False

    def _resume(self, cmd: msg.Resume) -> None:
        self._pipeline(cmd.player).resume()
        self.sender.resume(cmd.player)
        unit = self._units[cmd.player]
        unit.sending = unit.sending or not unit.stopped

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
        if unit.conn is not None and unit.pipeline is not None and not unit.sending:
            self.sender.play(key, unit.pipeline.buffer)  # even while paused or stopped
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
            out = msg.TrackPosition(player=key, serial=event.track, position_ms=event.position_ms)
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

    def _voice_event(self, key: int, event: VoiceEvent) -> None:
        if isinstance(event, Connected):
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
