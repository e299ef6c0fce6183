"""The service's side of hearing (issue 15): recordings, layers and VDP channels per voice client.

One typed method per command (``control/commands.py``), registered with ``NodeService`` like
its own. This module keeps what the control plane knows of each voice client's recording,
layers and channels, turns the engine's reports into typed events (``control/events.py``), and
applies the checks that need no engine: the configuration, the bounds (``layers.max_per_player``,
``vdp.max_channels``), the seed-004 refusals and the peer policy (``protocol/vdp.py``,
docs/SECURITY.md "Hearing").

Opening a VDP channel and starting a recording wait for the engine's answer (the channel's
address, the folder made), at most :data:`ENGINE_ANSWER` seconds.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from audionode.control import commands as c
from audionode.control import events as ev
from audionode.control.views import (
    LayersView,
    LayerView,
    RecordedFileView,
    RecordingView,
    VdpChannelView,
)
from audionode.engine import messages as msg
from audionode.errors import (
    AudionodeError,
    BadRequest,
    ClientError,
    Conflict,
    Forbidden,
    NotFound,
    Unprocessable,
)
from audionode.protocol import vdp
from audionode.session import Session

if TYPE_CHECKING:
    from audionode.player.player import GuildPlayer
    from audionode.service.node import NodeService

ENGINE_ANSWER: Final = 5.0
"""Seconds a recording's start or a channel's opening may take in the engine."""
VDP_FORMAT: Final = "opus"
VDP_VERSION: Final = 1


class OutOfCapacity(ClientError):
    """Seed 004's "out of capacity for calls" (429: the node may have room later)."""

    code = "OUT_OF_CAPACITY"
    status = 429


@dataclass(eq=False)
class _Heard:
    """What the control plane knows of one voice client's hearing features."""

    session: Session
    guild_id: int
    recording: RecordingView | None = None
    layers: dict[int, LayerView] = field(default_factory=dict)
    channels: dict[str, VdpChannelView] = field(default_factory=dict)
    next_layer: int = 1
    recording_started: bool = False
    released: bool = False
    """The voice client is gone: its last events are still relayed, no command is taken."""

    @property
    def idle(self) -> bool:
        return self.recording is None and not self.layers and not self.channels


class HearingService:
    """Built by :class:`NodeService`; its methods are the service's commands for issue 15."""

    def __init__(self, service: NodeService) -> None:
        self.svc = service
        self._players: dict[int, _Heard] = {}
        self._rooms: dict[str, int] = {}
        """Room id -> the player key bridging it (a room is bridged once per node)."""
        self._waiting: dict[tuple[int, str], asyncio.Future[msg.Event]] = {}

    def _heard(self, ref: c.PlayerRef) -> tuple[GuildPlayer, _Heard]:
        session, player = self.svc.sessions.find(ref)
        heard = self._players.get(player.key)
        if heard is None:
            heard = self._players[player.key] = _Heard(session, player.guild_id)
        return player, heard

    async def _engine(self, key: int, what: str, command: msg.Command) -> msg.Event:
        """Send ``command`` and wait for the engine's answer about ``what``."""
        future = asyncio.get_running_loop().create_future()
        self._waiting[(key, what)] = future
        self.svc.send_engine(command)
        try:
            return await asyncio.wait_for(future, ENGINE_ANSWER)
        except TimeoutError:
            raise AudionodeError(
                f"the engine did not answer within {ENGINE_ANSWER:g} s", code="ENGINE_TIMEOUT"
            ) from None
        finally:
            self._waiting.pop((key, what), None)

    # --- recording --------------------------------------------------------------------------

    async def record(self, ref: c.PlayerRef, cmd: c.Record) -> RecordingView:
        """Start or stop recording; the files are named in ``RecordingStopped``."""
        player, heard = self._heard(ref)
        if cmd.action == "stop":
            rec = heard.recording
            if rec is None:
                raise Conflict("this voice client is not recording", code="NOT_RECORDING")
            self.svc.send_engine(msg.StopRecording(player=player.key, recording=rec.id))
            return RecordingView(id=rec.id, directory=rec.directory, active=False)
        self._can_record(player, heard)
        name = recording_name()
        heard.recording = RecordingView(id=name, directory="", active=True)
        heard.recording_started = False
        start = msg.StartRecording(player=player.key, recording=name, name=name)
        try:
            answer = await self._engine(player.key, f"rec:{name}", start)
        except BaseException:
            if heard.recording is not None and heard.recording.id == name:
                heard.recording = None
            raise
        if not isinstance(answer, msg.RecordingStarted):
            message = (
                answer.message
                if isinstance(answer, msg.RecordingStopped | msg.CommandFailed)
                else None
            )
            raise AudionodeError(
                f"the recording could not start: {message}", code="RECORDING_FAILED"
            )
        return RecordingView(id=name, directory=answer.directory, active=True)

    def _can_record(self, player: GuildPlayer, heard: _Heard) -> None:
        cfg = self.svc.config
        if cfg.recording.path is None:
            raise Conflict("recording is off (recording.path is not set)", code="RECORDING_OFF")
        if not cfg.voice.receive:
            raise Conflict("recording needs voice.receive", code="RECEIVE_OFF")
        if heard.recording is not None:
            raise Conflict("this voice client is already recording", code="ALREADY_RECORDING")
        if not player.connected:
            raise Conflict("the voice client is not connected", code="NOT_CONNECTED")

    # --- layers -----------------------------------------------------------------------------

    async def add_layer(self, ref: c.PlayerRef, cmd: c.AddLayer) -> LayerView:
        """Resolve ``query`` like a track and play its first result over the music."""
        _, heard = self._heard(ref)
        self._room_for_layer(heard)
        result, _ = await self.svc.tracks.search(cmd.query)
        source = await self.svc.tracks.open(result.tracks[0])
        player, heard = self._heard(ref)  # it may have been destroyed meanwhile
        self._room_for_layer(heard)
        layer = LayerView(
            id=heard.next_layer, query=cmd.query, volume=cmd.volume, duck=cmd.duck, playing=False
        )
        heard.next_layer += 1
        heard.layers[layer.id] = layer
        self.svc.send_engine(
            msg.AddLayer(
                player=player.key, layer=layer.id, source=source, volume=cmd.volume, duck=cmd.duck
            )
        )
        return layer

    def _room_for_layer(self, heard: _Heard) -> None:
        limit = self.svc.config.layers.max_per_player
        if len(heard.layers) + len(heard.channels) >= limit:
            raise Conflict(
                f"this voice client plays {limit} layers (layers.max_per_player; a VDP "
                "channel counts as one)",
                code="TOO_MANY_LAYERS",
            )

    async def remove_layer(self, ref: c.PlayerRef, cmd: c.RemoveLayer) -> LayerView:
        """End a layer now (``LayerEnded`` with reason ``stopped`` follows)."""
        player, heard = self._heard(ref)
        layer = heard.layers.get(cmd.layer)
        if layer is None:
            raise NotFound(f"no layer {cmd.layer}", code="LAYER_NOT_FOUND")
        self.svc.send_engine(msg.RemoveLayer(player=player.key, layer=cmd.layer))
        return layer

    async def layers(self, ref: c.PlayerRef, cmd: c.GetLayers) -> LayersView:
        _, heard = self._heard(ref)
        return LayersView(layers=tuple(heard.layers.values()))

    # --- VDP (seed 004) ---------------------------------------------------------------------

    async def open_vdp(self, ref: c.PlayerRef, cmd: c.OpenVdpChannel) -> VdpChannelView:
        """Seed 004 step 2: a channel for the room, or one of the seed's five refusals."""
        player, heard = self._heard(ref)
        known = heard.channels.get(cmd.room_id)
        if known is not None:
            return known  # "an address, possibly one already in use"
        self._can_bridge(player, heard, cmd)
        self._rooms[cmd.room_id] = player.key  # held while the engine opens it
        try:
            opening = msg.OpenVdp(player=player.key, room_id=cmd.room_id)
            answer = await self._engine(player.key, f"vdp:{cmd.room_id}", opening)
        except BaseException:
            self._rooms.pop(cmd.room_id, None)
            raise
        if not isinstance(answer, msg.VdpOpened):
            self._rooms.pop(cmd.room_id, None)
            message = (
                answer.message if isinstance(answer, msg.VdpClosed | msg.CommandFailed) else None
            )
            raise OutOfCapacity(f"the engine could not open a channel: {message}")
        if heard.released:  # destroyed while the engine opened it
            self._rooms.pop(cmd.room_id, None)
            self.svc.send_engine(msg.CloseVdp(player=player.key, room_id=cmd.room_id))
            raise NotFound("the voice client was destroyed", code="VOICE_CLIENT_NOT_FOUND")
        view = VdpChannelView(
            room_id=cmd.room_id, address=answer.address, format=cmd.format, version=cmd.version
        )
        heard.channels[cmd.room_id] = view
        heard.session.emit(
            ev.VdpChannelOpened(guild_id=heard.guild_id, room_id=view.room_id, address=view.address)
        )
        return view

    def _can_bridge(self, player: GuildPlayer, heard: _Heard, cmd: c.OpenVdpChannel) -> None:
        """The seed's refusals, in this order (docs/protocols/vdp.md, "Decisions")."""
        cfg = self.svc.config
        if not cfg.vdp.enabled or not cfg.voice.receive:
            raise Unprocessable(
                "this node does not bridge calls (vdp.enabled and voice.receive)",
                code="NO_CALL_CAPABILITY",
            )
        if cmd.format != VDP_FORMAT or cmd.version != VDP_VERSION:
            raise Unprocessable(
                f"only format {VDP_FORMAT!r} version {VDP_VERSION} is spoken, not "
                f"{cmd.format[:32]!r} version {cmd.version}",
                code="NO_CALL_CAPABILITY",
            )
        if player.voice.channel_id is None:
            raise Conflict("the voice client is in no voice channel", code="NOT_BRIDGED")
        if not player.connected:
            raise Conflict("the voice connection is not up", code="DISCORD_LIMITATION")
        if cmd.room_id in self._rooms:
            raise Forbidden(
                "another voice client on this node bridges this room", code="NO_PERMISSION"
            )
        if len(self._rooms) >= cfg.vdp.max_channels:
            raise OutOfCapacity(f"the node bridges vdp.max_channels ({cfg.vdp.max_channels}) rooms")
        if len(heard.layers) + len(heard.channels) >= cfg.layers.max_per_player:
            raise OutOfCapacity("this voice client plays layers.max_per_player layers")

    async def set_vdp_peer(self, ref: c.PlayerRef, cmd: c.SetVdpPeer) -> VdpChannelView:
        """Seed 004 step 3: the voice bridge's channel, allowed by ``vdp.allowed_peers``."""
        player, heard = self._heard(ref)
        view = self._channel(heard, cmd.room_id)
        cfg = self.svc.config.vdp
        address = vdp.parse_address(f"[{cmd.host}]:{cmd.port}")
        family = 6 if ":" in cfg.host else 4
        if address[0].version != family:
            raise BadRequest(f"field `address`: the channel's socket speaks IPv{family} only")
        vdp.check_peer(address, vdp.parse_networks(cfg.allowed_peers))
        self.svc.send_engine(
            msg.SetVdpPeer(
                player=player.key, room_id=cmd.room_id, host=str(address[0]), port=address[1]
            )
        )
        view = heard.channels[cmd.room_id] = _with_peer(view, vdp.format_address(address))
        return view

    async def close_vdp(self, ref: c.PlayerRef, cmd: c.CloseVdpChannel) -> VdpChannelView:
        player, heard = self._heard(ref)
        view = self._channel(heard, cmd.room_id)
        self.svc.send_engine(msg.CloseVdp(player=player.key, room_id=cmd.room_id))
        return view

    @staticmethod
    def _channel(heard: _Heard, room_id: str) -> VdpChannelView:
        view = heard.channels.get(room_id)
        if view is None:
            raise NotFound(
                f"no VDP channel for room {room_id[:64]!r}", code="VDP_CHANNEL_NOT_FOUND"
            )
        return view

    # --- engine events ----------------------------------------------------------------------

    def on_engine_event(self, event: msg.Event) -> bool:
        """Take the events of this module (True when taken)."""
        if isinstance(event, msg.CommandFailed) and event.command in _WAITED:
            prefix = _WAITED[event.command]
            for (key, what), future in self._waiting.items():
                if key == event.player and what.startswith(prefix) and not future.done():
                    future.set_result(event)
            return False  # the player reports it too (PLAYER_TRACEBACK)
        if isinstance(event, msg.RecordingStarted | msg.RecordingStopped):
            self._answer(event.player, f"rec:{event.recording}", event)
        elif isinstance(event, msg.VdpOpened | msg.VdpClosed):
            self._answer(event.player, f"vdp:{event.room_id}", event)
        elif not isinstance(event, msg.LayerStarted | msg.LayerEnded):
            return False
        heard = self._players.get(event.player)
        if heard is not None:
            self._relay(heard, event)
            if heard.released and heard.idle:
                del self._players[event.player]
        return True

    def _answer(self, key: int, what: str, event: msg.Event) -> None:
        future = self._waiting.get((key, what))
        if future is not None and not future.done():
            future.set_result(event)

    def _relay(self, heard: _Heard, event: msg.Event) -> None:
        if isinstance(event, msg.RecordingStarted | msg.RecordingStopped):
            self._relay_recording(heard, event)
        elif isinstance(event, msg.LayerStarted):
            layer = heard.layers.get(event.layer)
            if layer is not None:
                layer = heard.layers[event.layer] = _playing(layer)
                heard.session.emit(ev.LayerStarted(guild_id=heard.guild_id, layer=layer))
        elif isinstance(event, msg.LayerEnded):
            layer = heard.layers.pop(event.layer, None)
            if layer is not None:
                ended = ev.LayerEnded(
                    guild_id=heard.guild_id, layer=layer, reason=event.reason, message=event.message
                )
                heard.session.emit(ended)
        elif isinstance(event, msg.VdpClosed) and event.room_id in heard.channels:
            del heard.channels[event.room_id]
            self._rooms.pop(event.room_id, None)
            closed = ev.VdpChannelClosed(
                guild_id=heard.guild_id,
                room_id=event.room_id,
                reason=event.reason,
                message=event.message,
            )
            heard.session.emit(closed)

    @staticmethod
    def _relay_recording(heard: _Heard, event: msg.RecordingStarted | msg.RecordingStopped) -> None:
        rec = heard.recording
        if rec is None or rec.id != event.recording:
            return
        if isinstance(event, msg.RecordingStarted):
            rec = heard.recording = RecordingView(id=rec.id, directory=event.directory, active=True)
            heard.recording_started = True
            heard.session.emit(ev.RecordingStarted(guild_id=heard.guild_id, recording=rec))
            return
        heard.recording = None
        if heard.recording_started:  # a start that failed is the request's error
            heard.session.emit(_stopped(heard.guild_id, rec, event))

    def release(self, key: int) -> None:
        """The voice client was destroyed: take no more commands for it; the engine's last
        reports (the recording's files, closed channels) are still relayed."""
        heard = self._players.get(key)
        if heard is not None:
            heard.released = True
            if heard.idle:
                del self._players[key]

    def engine_lost(self, key: int) -> None:
        """The engine worker serving ``key`` died: its recording, layers and channels are gone."""
        heard = self._players.get(key)
        if heard is None:
            return
        why = "the engine worker serving this voice client died"
        for layer in list(heard.layers):
            self._relay(heard, msg.LayerEnded(player=key, layer=layer, reason="error", message=why))
        if heard.recording is not None:
            stop = msg.RecordingStopped(
                player=key, recording=heard.recording.id, reason="error", message=why
            )
            self._relay(heard, stop)
        for room in list(heard.channels):
            self._relay(heard, msg.VdpClosed(player=key, room_id=room, reason="engine_restarted"))


_WAITED: Final = {"StartRecording": "rec:", "OpenVdp": "vdp:"}
"""Engine commands whose answer a request waits for, by the prefix of what it waits on."""


def recording_name(now: float | None = None) -> str:
    """A recording's id and folder name: UTC time and random hex, nothing a client chose."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(4)}"


def _playing(layer: LayerView) -> LayerView:
    return LayerView(
        id=layer.id, query=layer.query, volume=layer.volume, duck=layer.duck, playing=True
    )


def _with_peer(view: VdpChannelView, peer: str) -> VdpChannelView:
    return VdpChannelView(
        room_id=view.room_id,
        address=view.address,
        format=view.format,
        version=view.version,
        peer=peer,
    )


def _stopped(guild_id: int, rec: RecordingView, event: msg.RecordingStopped) -> ev.ControlEvent:
    files = tuple(
        RecordedFileView(
            name=f.name, user_id=f.user_id, start=f.start, seconds=f.seconds, bytes=f.bytes
        )
        for f in event.files
    )
    done = RecordingView(id=rec.id, directory=rec.directory, active=False)
    return ev.RecordingStopped(
        guild_id=guild_id, recording=done, reason=event.reason, files=files, message=event.message
    )
