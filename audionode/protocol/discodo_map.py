"""Typed results and events of the control core → the Discodo front's JSON (pure).

The one place that knows Discodo's shapes: AudioData/AudioSource track dicts, the ``getState``
reply, event op names and their ``d``, and error objects. Error objects keep our uniform
``{"error": {"code", "message"}}`` and add what Discodo 3.0.5's client reads: a ``traceback``
``{name: message}`` and the request's ``guild_id`` on websocket replies (its ``query`` waits for
a reply with that ``guild_id`` and raises ``NodeException`` from ``traceback``), and
``status``/``description``/``message`` in REST bodies (its ``HTTPException``).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any, TypedDict

import msgspec

from audionode.control import events as ev
from audionode.control.commands import Context, RepeatMode
from audionode.control.views import (
    CurrentView,
    EntryView,
    Found,
    Identified,
    LayersView,
    LayerView,
    NodeStatus,
    OptionsView,
    PlayerView,
    PositionView,
    Queued,
    QueueView,
    RecordedFileView,
    RecordingView,
    Removed,
    TrackView,
    VdpChannelView,
)
from audionode.errors import AudionodeError
from audionode.protocol.discodo import CloseCode, Op, snowflake

JSON = Any


# --- the shapes of REST replies (their return types below; protocol/openapi.py describes them) --

class TrackJson(TypedDict):
    _type: str
    id: str
    title: str
    webpage_url: str
    uploader: str
    duration: float | None
    is_live: bool
    thumbnail: str | None
    source: str
    encoded: str
"""Discodo's ``AudioData`` plus ``encoded``, the node's signed form of the track."""


class EntryJson(TrackJson):
    """A queue entry: the track, its ``tag`` and the bot's per-entry state."""

    tag: str
    context: Context
    start_position: float


class CurrentJson(EntryJson):
    """Discodo's ``AudioSource`` (``_type``): the current track and its playhead at ``as_of``."""

    seekable: bool
    position: float
    as_of: float


class OptionsJson(TypedDict):
    autoplay: bool
    volume: float
    crossfade: float
    filter: dict[str, Any]


class QueueJson(TypedDict):
    entries: list[EntryJson]


class PositionJson(TypedDict):
    duration: float | None
    position: float | None
    remain: float | None


class FoundOneJson(TypedDict):
    source: TrackJson | list[TrackJson]
    """A list when the query named a playlist."""


class FoundAllJson(TypedDict):
    sources: list[TrackJson]


class QueuedJson(TypedDict):
    source: EntryJson | list[EntryJson]
    """A list when a list was sent."""


class RemovedJson(TypedDict):
    removed: EntryJson
    entries: list[EntryJson]


class ModeJson(TypedDict):
    mode: RepeatMode


class RecordingJson(TypedDict):
    id: str
    directory: str
    active: bool


class LayerJson(TypedDict):
    id: int
    query: str
    volume: float
    duck: float | None
    playing: bool


class LayersJson(TypedDict):
    layers: list[LayerJson]


class VdpChannelJson(TypedDict):
    room_id: str
    address: str
    format: str
    version: int
    peer: str | None


class ErrorObjectJson(TypedDict):
    code: str
    """Stable, machine-readable (``BAD_REQUEST``, ``VOICE_CLIENT_NOT_FOUND``...)."""
    message: str


class RestErrorJson(TypedDict):
    """Every REST error of the Discodo front and the node's own routes."""

    error: ErrorObjectJson
    status: int
    description: str
    """The HTTP reason phrase (Discodo's client reads it)."""
    message: str


# --- tracks -------------------------------------------------------------------------------------


def track(t: TrackView) -> TrackJson:
    """Discodo's ``AudioData`` fields plus our signed ``encoded``."""
    return {
        "_type": "AudioData",
        "id": t.id,
        "title": t.title,
        "webpage_url": t.uri,
        "uploader": t.author,
        "duration": t.duration,
        "is_live": t.is_live,
        "thumbnail": t.artwork,
        "source": t.source,
        "encoded": t.token,
    }


def entry(e: EntryView) -> EntryJson:
    return {
        **track(e.track),
        "tag": e.tag,
        "context": e.context,
        "start_position": e.start_position,
    }


def current(c: CurrentView | None) -> CurrentJson | None:
    """Discodo's ``AudioSource``: a client extrapolates ``position + (now - as_of)``."""
    if c is None:
        return None
    return {
        **entry(c.entry),
        "_type": "AudioSource",
        "seekable": c.entry.track.seekable,
        "position": c.position,
        "as_of": c.as_of,
    }


def entries(es: tuple[EntryView, ...]) -> list[EntryJson]:
    return [entry(e) for e in es]


# --- replies ------------------------------------------------------------------------------------


def options(o: OptionsView) -> OptionsJson:
    filters = {} if o.filters is None else msgspec.to_builtins(o.filters)
    return {"autoplay": o.autoplay, "volume": o.volume, "crossfade": o.crossfade, "filter": filters}


def state(p: PlayerView) -> dict[str, JSON]:
    """The ``getState`` reply; never the voice token."""
    cur = p.current
    return {
        "id": p.voice_client_id,
        "guild_id": snowflake(p.guild_id),
        "channel_id": snowflake(p.channel_id),
        "state": int(p.state),
        "state_name": p.state.name,
        "current": current(cur),
        "duration": None if cur is None else cur.entry.track.duration,
        "position": None if cur is None else cur.position,
        "remain": None if cur is None else cur.remain,
        "remainQueue": p.queue_length,
        "repeat": p.repeat,
        "options": options(p.options),
        "context": p.context,
        "voice": {
            "session_id": p.voice.session_id,
            "endpoint": p.voice.endpoint,
            "has_token": p.voice.has_token,
        },
    }


def queue_ws(q: QueueView) -> dict[str, JSON]:
    return {"guild_id": snowflake(q.guild_id), "entries": entries(q.entries)}


def queue_rest(q: QueueView) -> QueueJson:
    return {"entries": entries(q.entries)}


def position(p: PositionView) -> PositionJson:
    return {"duration": p.duration, "position": p.position, "remain": p.remain}


def found_one(f: Found) -> FoundOneJson:
    """``getSource``: a playlist gives a list, anything else its first track."""
    tracks = [track(t) for t in f.tracks]
    return {"source": tracks if f.playlist else tracks[0]}


def found_all(f: Found) -> FoundAllJson:
    return {"sources": [track(t) for t in f.tracks]}


def queued(q: Queued) -> QueuedJson:
    listed = entries(q.entries)
    return {"source": listed if q.as_list else listed[0]}


def removed(r: Removed) -> RemovedJson:
    return {"removed": entry(r.removed), "entries": entries(r.queue.entries)}


def status(s: NodeStatus) -> Annotated[dict[str, JSON], NodeStatus]:
    """``GET /status``: the view as it is (its struct is the reply's schema)."""
    out: dict[str, JSON] = msgspec.to_builtins(s)
    return out


def recording(r: RecordingView) -> RecordingJson:
    return {"id": r.id, "directory": r.directory, "active": r.active}


def recorded_file(f: RecordedFileView) -> dict[str, JSON]:
    return {
        "name": f.name,
        "user_id": snowflake(f.user_id),
        "start": f.start,
        "seconds": f.seconds,
        "bytes": f.bytes,
    }


def layer(lv: LayerView) -> LayerJson:
    return {
        "id": lv.id,
        "query": lv.query,
        "volume": lv.volume,
        "duck": lv.duck,
        "playing": lv.playing,
    }


def layers(ls: LayersView) -> LayersJson:
    return {"layers": [layer(lv) for lv in ls.layers]}


def vdp_channel(v: VdpChannelView) -> VdpChannelJson:
    """Seed 004's answer: the channel's ``address`` plus what was asked."""
    return {
        "room_id": v.room_id,
        "address": v.address,
        "format": v.format,
        "version": v.version,
        "peer": v.peer,
    }


def identified(i: Identified) -> dict[str, JSON]:
    return {"user_id": snowflake(i.user_id), "shard_id": i.shard_id, "resumed": i.resumed}


def resumed(i: Identified) -> dict[str, JSON]:
    """Seed 002's list form: ``[[guild_id, channel_id or null], ...]``."""
    clients = [[snowflake(v.guild_id), snowflake(v.channel_id)] for v in i.voice_clients]
    return {"voice_clients": clients, "dropped": i.dropped}


def resume_frames(i: Identified) -> list[tuple[str, JSON]]:
    """After ``IDENTIFIED`` on a resume: ``RESUMED``, then ``VC_CREATED`` again for every
    kept voice client so a client that lost its state re-learns their ids."""
    frames: list[tuple[str, JSON]] = [(Op.RESUMED, resumed(i))]
    for v in i.voice_clients:
        frames.append((Op.VC_CREATED, {"guild_id": snowflake(v.guild_id), "id": v.voice_client_id}))
    return frames


# --- events -------------------------------------------------------------------------------------


def event(e: ev.ControlEvent) -> tuple[str, dict[str, JSON]]:
    """One event → ``(op, d)``; ``d`` always carries ``guild_id``."""
    op, d = _event(e)
    return op, {"guild_id": snowflake(e.guild_id), **d}


def _event(e: ev.ControlEvent) -> tuple[str, dict[str, JSON]]:
    if isinstance(e, ev.QueueChanged):
        return "QUEUE_EVENT", {"name": e.op, "args": queue_args(e)}
    if isinstance(e, ev.TrackStarted):
        return "SOURCE_START", {"source": current(e.current)}
    if isinstance(e, ev.TrackEnded):
        extra = {"message": e.message} if e.message else {}
        return "SOURCE_STOP", {"source": entry(e.entry), "reason": e.reason, **extra}
    if isinstance(e, ev.TrackFailed):
        return "SOURCE_TRACEBACK", {"source": entry(e.entry), "traceback": e.message}
    if isinstance(e, ev.PositionChanged):
        return "PLAYER_UPDATE", {"position": e.position, "as_of": e.as_of, "state": e.state.name}
    if isinstance(e, ev.NextWanted):
        return "REQUIRE_NEXT_SOURCE", {"current": current(e.current), "autoplay": e.autoplay}
    if isinstance(e, ev.PlayerError):
        text = f"{e.command}: {e.message}" if e.command else e.message
        return "PLAYER_TRACEBACK", {"traceback": text}
    if isinstance(
        e,
        ev.RecordingStarted
        | ev.RecordingStopped
        | ev.LayerStarted
        | ev.LayerEnded
        | ev.VdpChannelOpened
        | ev.VdpChannelClosed,
    ):
        return _hearing_event(e)
    return _voice_event(e)


def _hearing_event(e: ev.ControlEvent) -> tuple[str, dict[str, JSON]]:
    """Issue 15's events (docs/API.md, "Hearing"); ``message`` only with a failure."""
    if isinstance(e, ev.RecordingStarted):
        return "RECORDING_STARTED", {"recording": recording(e.recording), "mixed": "mixed.ogg"}
    if isinstance(e, ev.RecordingStopped):
        files = [recorded_file(f) for f in e.files]
        d = {"recording": recording(e.recording), "reason": e.reason, "files": files}
        return "RECORDING_STOPPED", {**d, **_message(e.message)}
    if isinstance(e, ev.LayerStarted):
        return "LAYER_STARTED", {"layer": layer(e.layer)}
    if isinstance(e, ev.LayerEnded):
        return "LAYER_ENDED", {"layer": layer(e.layer), "reason": e.reason, **_message(e.message)}
    if isinstance(e, ev.VdpChannelOpened):
        return "VDP_CHANNEL_OPENED", {"room_id": e.room_id, "address": e.address}
    assert isinstance(e, ev.VdpChannelClosed)
    return "VDP_CHANNEL_CLOSED", {"room_id": e.room_id, "reason": e.reason, **_message(e.message)}


def _message(message: str | None) -> dict[str, JSON]:
    return {"message": message} if message else {}


def _voice_event(e: ev.ControlEvent) -> tuple[str, dict[str, JSON]]:
    if isinstance(e, ev.VoiceClientCreated):
        return Op.VC_CREATED, {"id": e.voice_client_id}
    if isinstance(e, ev.VoiceClientDestroyed):
        return Op.VC_DESTROYED, {}
    if isinstance(e, ev.VoiceChannelChanged):
        return Op.VC_CHANNEL_EDITED, {"channel_id": snowflake(e.channel_id)}
    if isinstance(e, ev.VoiceConnected):
        return "VOICE_CONNECTED", {
            "ssrc": e.ssrc,
            "mode": e.mode,
            "dave_protocol_version": e.dave_protocol_version,
        }
    if isinstance(e, ev.VoiceClosed):
        return "VOICE_CLOSED", {
            "code": e.code,
            "reason": e.reason,
            "by_remote": e.by_remote,
            "will_reconnect": e.will_reconnect,
        }
    raise TypeError(f"no Discodo op for {type(e).__name__}")


def queue_args(e: ev.QueueChanged) -> list[JSON]:
    """The list method's positional arguments (docs/API.md, "Mirroring the queue")."""
    if e.op == "extend":
        return [entries(e.entries)]
    if e.op == "insert":
        return [e.index, entry(e.entries[0])]
    if e.op == "pop":
        return [e.index]
    return []


# --- closing ----------------------------------------------------------------------------------


def close_code(reason: ev.CloseReason) -> int:
    """The ``/ws`` close code for a session-level close."""
    if reason is ev.CloseReason.TAKEN_OVER:
        return CloseCode.SESSION_TAKEN_OVER
    return CloseCode.GOING_AWAY


# --- errors -------------------------------------------------------------------------------------


def error_object(err: AudionodeError) -> ErrorObjectJson:
    return {"code": err.code, "message": err.message}


def ws_error(err: AudionodeError, guild_id: str | None) -> dict[str, JSON]:
    """``d`` of an error reply under the request's op (the socket stays open)."""
    d: dict[str, JSON] = {"error": error_object(err), "traceback": {err.code: err.message}}
    if guild_id is not None:
        d["guild_id"] = guild_id
    return d


def rest_error(status: int, err: AudionodeError) -> RestErrorJson:
    """Every REST error body: ours plus Sanic's fallback keys Discodo's client reads."""
    try:
        description = HTTPStatus(status).phrase
    except ValueError:
        description = "Error"
    return {
        "error": error_object(err),
        "status": status,
        "description": description,
        "message": err.message,
    }
