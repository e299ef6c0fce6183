"""Typed results and events of the control core → the Lavalink v4 front's JSON (pure).

The one place that knows Lavalink's shapes (docs/LAVALINK.md): track objects with their
Lavaplayer ``encoded`` form, players, load results, stats, info, events and error bodies.
Times on the wire are milliseconds; ids are strings.
"""

from __future__ import annotations

import platform
from http import HTTPStatus
from typing import Any, Literal, NotRequired, TypedDict

import msgspec

from audionode import __version__
from audionode.control.views import (
    CurrentView,
    EntryView,
    FrameStats,
    NodeStatus,
    PlayerState,
    PlayerView,
    Resolved,
    SessionConfig,
    TrackView,
)
from audionode.errors import AudionodeError
from audionode.protocol import lavaplayer_track as lp
from audionode.protocol.filters import Filters
from audionode.protocol.lavalink import FILTERS, VERSION

JSON = Any
FRAMES_PER_MINUTE = 3000
"""What a playing player should send in a minute (one frame per 20 ms), per Lavalink."""
_MESSAGES = {"SESSION_NOT_FOUND": "Session not found", "VOICE_CLIENT_NOT_FOUND": "Player not found"}
"""Our errors whose Lavalink wording clients may look for."""


# --- the shapes of REST replies (their return types below; protocol/openapi.py describes them) --


class TrackInfoJson(TypedDict):
    identifier: str
    isSeekable: bool
    author: str
    length: int
    """Milliseconds; Lavaplayer's ``Long.MAX_VALUE`` for a stream of unknown length."""
    isStream: bool
    position: int
    title: str
    uri: str | None
    sourceName: str
    artworkUrl: str | None
    isrc: str | None


class TrackJson(TypedDict):
    encoded: str
    """Lavaplayer's base64 form of the track."""
    info: TrackInfoJson
    pluginInfo: dict[str, Any]
    userData: dict[str, Any]


class ExceptionJson(TypedDict):
    message: str
    severity: Literal["common", "suspicious", "fault"]
    cause: str
    causeStackTrace: str


class PlaylistInfoJson(TypedDict):
    name: str
    selectedTrack: int


class PlaylistJson(TypedDict):
    info: PlaylistInfoJson
    pluginInfo: dict[str, Any]
    tracks: list[TrackJson]


class LoadTrackJson(TypedDict):
    loadType: Literal["track"]
    data: TrackJson


class LoadSearchJson(TypedDict):
    loadType: Literal["search"]
    data: list[TrackJson]


class LoadPlaylistJson(TypedDict):
    loadType: Literal["playlist"]
    data: PlaylistJson


class LoadErrorJson(TypedDict):
    loadType: Literal["error"]
    data: ExceptionJson


class LoadEmptyJson(TypedDict):
    loadType: Literal["empty"]
    data: dict[str, Any]


LoadResultJson = LoadTrackJson | LoadSearchJson | LoadPlaylistJson | LoadErrorJson | LoadEmptyJson


class PlayerStateJson(TypedDict):
    time: int
    position: int
    connected: bool
    ping: int


class VoiceStateJson(TypedDict):
    token: str
    """Always blank: the node never hands the voice token back."""
    endpoint: str
    sessionId: str
    channelId: str | None


class PlayerJson(TypedDict):
    guildId: str
    track: TrackJson | None
    volume: int
    paused: bool
    state: PlayerStateJson
    voice: VoiceStateJson
    filters: dict[str, Any]


class SessionJson(TypedDict):
    resuming: bool
    timeout: int


class MemoryJson(TypedDict):
    free: int
    used: int
    allocated: int
    reservable: int


class CpuJson(TypedDict):
    cores: int
    systemLoad: float
    lavalinkLoad: float


class AdmissionJson(TypedDict):
    atCapacity: bool
    placeable: int | None
    refused: int


class NodeExtraJson(TypedDict):
    admission: AdmissionJson


class StatsJson(TypedDict):
    players: int
    playingPlayers: int
    uptime: int
    memory: MemoryJson
    cpu: CpuJson
    audionode: NotRequired[NodeExtraJson]
    """Ours, not Lavalink's (docs/LAVALINK.md, "Stats"): clients read the fields they know."""


class SemverJson(TypedDict):
    semver: str
    major: int
    minor: int
    patch: int
    preRelease: str | None
    build: str | None


class GitJson(TypedDict):
    branch: str
    commit: str
    commitTime: int


class InfoJson(TypedDict):
    version: SemverJson
    buildTime: int
    git: GitJson
    jvm: str
    lavaplayer: str
    sourceManagers: list[str]
    filters: list[str]
    plugins: list[Any]


class ErrorJson(TypedDict):
    """Lavalink's error body, on every failure of a Lavalink route."""

    timestamp: int
    status: int
    error: str
    message: str
    path: str
    trace: NotRequired[str]
    """Only with ``?trace=true``: our error code and message (never a Python traceback)."""


def ms(seconds: float | None) -> int:
    return 0 if seconds is None else max(0, round(seconds * 1000))


# --- tracks -------------------------------------------------------------------------------------


def encoded(t: TrackView, position: float = 0.0) -> str:
    """The track's Lavaplayer form (``details``: the probe hint ``http`` and ``local`` carry)."""
    return lp.encode(
        lp.LavaplayerTrack(
            title=t.title,
            author=t.author,
            length=lp.UNKNOWN_LENGTH if t.duration is None else ms(t.duration),
            identifier=t.id,
            is_stream=t.is_live,
            uri=t.uri or None,
            artwork_url=t.artwork,
            source_name=t.source,
            details=lp.probe_details() if t.source in lp.PROBE_SOURCES else b"",
            position=ms(position),
        )
    )


def track(
    t: TrackView, position: float = 0.0, user_data: dict[str, JSON] | None = None
) -> TrackJson:
    """A Lavalink track object: ``encoded``, ``info`` with every field, ``pluginInfo``,
    ``userData``."""
    info: TrackInfoJson = {
        "identifier": t.id,
        "isSeekable": t.seekable,
        "author": t.author,
        "length": lp.UNKNOWN_LENGTH if t.duration is None else ms(t.duration),
        "isStream": t.is_live,
        "position": ms(position),
        "title": t.title,
        "uri": t.uri or None,
        "sourceName": t.source,
        "artworkUrl": t.artwork,
        "isrc": None,
    }
    return {
        "encoded": encoded(t, position),
        "info": info,
        "pluginInfo": {},
        "userData": user_data or {},
    }


def entry_track(e: EntryView, position: float | None = None) -> TrackJson:
    """A queue entry's track; the entry's context is the track's ``userData``."""
    at = e.start_position if position is None else position
    return track(e.track, at, e.context)


def current_track(cur: CurrentView) -> TrackJson:
    return entry_track(cur.entry, cur.position)


def decoded(text: str, t: lp.LavaplayerTrack) -> TrackJson:
    """``decodetrack``: the fields of an encoded track, the text handed back as it came."""
    return {
        "encoded": text,
        "info": {
            "identifier": t.identifier,
            "isSeekable": not t.is_stream and t.length != lp.UNKNOWN_LENGTH,
            "author": t.author,
            "length": t.length,
            "isStream": t.is_stream,
            "position": t.position,
            "title": t.title,
            "uri": t.uri,
            "sourceName": t.source_name,
            "artworkUrl": t.artwork_url,
            "isrc": t.isrc,
        },
        "pluginInfo": {},
        "userData": {},
    }


def exception(message: str, severity: Literal["common", "suspicious"]) -> ExceptionJson:
    """Lavalink's exception object (there is no Java stack: ``cause`` repeats the message)."""
    return {"message": message, "severity": severity, "cause": message, "causeStackTrace": ""}


def load_result(r: Resolved) -> LoadResultJson:
    """``GET /v4/loadtracks``: ``loadType`` and its ``data``."""
    tracks = [track(t) for t in r.tracks]
    if r.kind == "track":
        return {"loadType": "track", "data": tracks[0]}
    if r.kind == "search":
        return {"loadType": "search", "data": tracks}
    if r.kind == "playlist":
        info: PlaylistInfoJson = {"name": r.playlist or "", "selectedTrack": r.selected}
        return {"loadType": "playlist", "data": {"info": info, "pluginInfo": {}, "tracks": tracks}}
    if r.kind == "error":
        return {"loadType": "error", "data": exception(r.error or "loading failed", "common")}
    return {"loadType": "empty", "data": {}}


# --- players ----------------------------------------------------------------------------------


def filters(f: Filters | None) -> JSON:
    """The player's filters as Lavalink shows them: the ones that are set."""
    if f is None:
        return {}
    raw: dict[str, JSON] = msgspec.to_builtins(f)
    out = {k: v for k, v in raw.items() if k in FILTERS and v not in (None, [])}
    if out.get("volume") == 1.0:
        del out["volume"]
    return out


def state(p: PlayerView, now_ms: int) -> PlayerStateJson:
    """The player state (``ping`` is -1: the voice latency is not measured)."""
    position = 0 if p.current is None else ms(p.current.position)
    connected = p.state is not PlayerState.DISCONNECTED
    return {"time": now_ms, "position": position, "connected": connected, "ping": -1}


def player(p: PlayerView, now_ms: int) -> PlayerJson:
    """A Lavalink player; the voice ``token`` is never sent back (it is blank)."""
    if p.current is not None:
        playing: TrackJson | None = current_track(p.current)
    else:
        playing = None if p.opening is None else entry_track(p.opening)
    channel = None if p.channel_id is None else str(p.channel_id)
    return {
        "guildId": str(p.guild_id),
        "track": playing,
        "volume": round(p.options.volume * 100),
        "paused": p.paused,
        "state": state(p, now_ms),
        "voice": {
            "token": "",
            "endpoint": p.voice.endpoint or "",
            "sessionId": p.voice.session_id or "",
            "channelId": channel,
        },
        "filters": filters(p.options.filters),
    }


def player_update(p: PlayerView, now_ms: int) -> JSON:
    return {"op": "playerUpdate", "guildId": str(p.guild_id), "state": state(p, now_ms)}


def session(cfg: SessionConfig) -> SessionJson:
    return {"resuming": cfg.resumable, "timeout": round(cfg.timeout)}


# --- the node -----------------------------------------------------------------------------------


def stats(s: NodeStatus) -> StatsJson:
    """``GET /v4/stats`` (the ``stats`` op adds ``frameStats``: :func:`stats_op`), with the
    node's admission state under our own key ``audionode`` when an engine runs."""
    cores = int(s.cpu.get("cores") or 1)
    total, used = int(s.memory.get("system_total", 0)), int(s.memory.get("system_used", 0))
    rss = int(s.memory.get("rss", 0))
    out: StatsJson = {
        "players": s.players,
        "playingPlayers": s.playing,
        "uptime": ms(s.uptime),
        "memory": {
            "free": max(0, total - used),
            "used": rss,
            "allocated": rss,
            "reservable": total,
        },
        "cpu": {
            "cores": cores,
            "systemLoad": _load(float(s.cpu.get("system", 0.0)) / 100),
            "lavalinkLoad": _load(float(s.cpu.get("process", 0.0)) / 100 / cores),
        },
    }
    admission = s.engine.get("admission")
    if isinstance(admission, dict):
        out["audionode"] = {
            "admission": {
                "atCapacity": bool(admission.get("at_capacity")),
                "placeable": admission.get("placeable"),
                "refused": int(admission.get("refused") or 0),
            }
        }
    return out


def stats_op(s: NodeStatus, frames: FrameStats | None) -> JSON:
    """The ``stats`` op: ``frameStats`` null when no playing player has a minute of counters."""
    return {"op": "stats", **stats(s), "frameStats": frame_stats(frames)}


def _load(value: float) -> float:
    return round(min(1.0, max(0.0, value)), 4)


def frame_stats(f: FrameStats | None) -> JSON:
    """Lavalink's arithmetic: the per-minute frames of the ``players`` counted, summed, then
    per player with integer division: ``sent``, ``nulled``, and ``deficit`` = (3000 per
    player minus all sent and nulled) / players (truncated toward zero, as Lavalink's Java
    ``int`` division). ``null`` with no player counted."""
    if f is None or f.players <= 0:
        return None
    n, sent, nulled = f.players, max(0, round(f.sent)), max(0, round(f.nulled))
    missing = n * FRAMES_PER_MINUTE - sent - nulled
    deficit = missing // n if missing >= 0 else -(-missing // n)
    return {"sent": sent // n, "nulled": nulled // n, "deficit": deficit}


def info(sources: tuple[str, ...]) -> InfoJson:
    """``GET /v4/info``: the Lavalink API version, and what really runs in its other fields."""
    major, minor, patch = (int(x) for x in VERSION.split("."))
    return {
        "version": {
            "semver": VERSION,
            "major": major,
            "minor": minor,
            "patch": patch,
            "preRelease": None,
            "build": None,
        },
        "buildTime": 0,
        "git": {"branch": "audionode", "commit": __version__, "commitTime": 0},
        "jvm": f"Python {platform.python_version()}",
        "lavaplayer": f"audionode {__version__}",
        "sourceManagers": list(sources),
        "filters": list(FILTERS),
        "plugins": [],
    }


# --- events -----------------------------------------------------------------------------------


def event(kind: str, guild_id: int, **fields: JSON) -> JSON:
    return {"op": "event", "type": kind, "guildId": str(guild_id), **fields}


def ready(resumed: bool, session_id: str) -> JSON:
    return {"op": "ready", "resumed": resumed, "sessionId": session_id}


# --- errors -----------------------------------------------------------------------------------


def error_message(err: AudionodeError) -> str:
    return _MESSAGES.get(err.code, err.message)


def error_body(
    status: int, err: AudionodeError, path: str, now_ms: int, trace: bool = False
) -> ErrorJson:
    """Lavalink's error body; ``trace`` (``?trace=true``) adds our error code and message
    (never a Python traceback)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body: ErrorJson = {
        "timestamp": now_ms,
        "status": status,
        "error": phrase,
        "message": error_message(err),
        "path": path,
    }
    if trace:
        body["trace"] = f"{err.code}: {err.message}"
    return body
