"""The Lavalink v4 front's input side: its wire structs, validated into the service's commands.

Pure (docs/LAVALINK.md describes the protocol). A ``PATCH .../players/{guild}`` body becomes a
:class:`Plan`: the typed commands to run, in Lavalink's order, each with the key it needs.
Everything is validated before anything runs, so a malformed update changes nothing and its
400 names the field (``field `volume`: expected `int` <= 1000``). Unknown top-level fields are
ignored, as Lavalink ignores them (clients send plugin fields); filters are a strict whitelist
(``protocol/filters.py``), except ``pluginFilters``, which is dropped: this node has no filter
plugins. Ranges come from ``control/commands.py`` (positions) and the engine (volume).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

from audionode.control import commands as c
from audionode.errors import BadRequest
from audionode.protocol import lavaplayer_track as lp
from audionode.protocol.filters import parse_filters
from audionode.validation import convert as parse

VERSION = "4.2.1"
"""The Lavalink API version this front speaks (``GET /version``)."""
FILTERS = (
    "volume", "equalizer", "karaoke", "timescale", "tremolo", "vibrato", "distortion",
    "rotation", "channelMix", "lowPass",
)  # fmt: skip
"""Lavalink's filter names, all supported (``GET /v4/info``)."""
MAX_VOLUME = 1000
"""Lavalink's range, 0-1000 % (the engine applies up to 10x)."""

Millis = Annotated[float, Meta(ge=0, le=c.MAX_POSITION * 1000)]
Snowflake = Annotated[int, Meta(gt=0, le=2**63 - 1)]


def snowflake(raw: str, what: str) -> int:
    """A guild or user id from a path or a header (a positive 64-bit integer)."""
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 0 < value < 2**63:
        raise BadRequest(f"{what}: expected a Discord id (a positive integer), got {raw[:32]!r}")
    return value


def flag(raw: str | None, what: str) -> bool:
    """A boolean query argument in any capitalisation (wavelink sends ``True``/``False``)."""
    if raw is None:
        return False
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise BadRequest(f"query argument `{what}`: expected true or false, got {raw[:16]!r}")
    return value == "true"


# --- wire structs ----------------------------------------------------------------------------


class VoiceIn(msgspec.Struct, rename="camel", kw_only=True):
    token: str = ""
    endpoint: str = ""
    session_id: str = ""
    channel_id: str | None = None


class TrackIn(msgspec.Struct, rename="camel", kw_only=True):
    encoded: str | UnsetType | None = UNSET
    identifier: str | UnsetType = UNSET
    user_data: dict[str, Any] | UnsetType = UNSET


class PlayerUpdate(msgspec.Struct, rename="camel", kw_only=True):
    encoded_track: str | UnsetType | None = UNSET
    identifier: str | UnsetType = UNSET
    track: TrackIn | UnsetType = UNSET
    position: Millis | UnsetType = UNSET
    end_time: Millis | UnsetType | None = UNSET
    volume: Annotated[int, Meta(ge=0, le=MAX_VOLUME)] | UnsetType = UNSET
    paused: bool | UnsetType = UNSET
    filters: dict[str, Any] | UnsetType = UNSET
    voice: VoiceIn | UnsetType = UNSET


class SessionUpdate(msgspec.Struct, kw_only=True):
    resuming: bool | UnsetType = UNSET
    timeout: Annotated[float, Meta(ge=0)] | UnsetType = UNSET


# --- the player update ------------------------------------------------------------------------


class Scope(enum.Enum):
    SESSION = "session"
    PLAYER = "player"


@dataclass(frozen=True, slots=True)
class Step:
    """One command of a plan; ``if_playing``: skipped when nothing plays (Lavalink applies a
    position, an end time or user data only to a track that is there)."""

    scope: Scope
    command: Any
    if_playing: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    steps: tuple[Step, ...]
    refresh: bool
    """The update moved the playhead or changed what plays: send a ``playerUpdate``."""


_NEW, _STOP, _NONE = "new", "stop", "none"


def player_update(body: Any, guild_id: int, no_replace: bool) -> Plan:
    """``PATCH /v4/sessions/{sessionId}/players/{guildId}`` as the commands to run, in
    Lavalink's order: voice, then (without a new track) pause, user data, volume, seek, end
    time, then filters, then the track (played, or stopped by ``encoded: null``)."""
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object (a Lavalink player update)")
    up = parse(body, PlayerUpdate)
    if not isinstance(up.end_time, UnsetType) and up.end_time is not None and up.end_time <= 0:
        raise BadRequest("End time must be greater than 0")
    track = _track_of(up)
    filters = None
    if not isinstance(up.filters, UnsetType):
        plugin = {k: v for k, v in up.filters.items() if k != "pluginFilters"}
        filters = parse_filters(plugin)
    kind = _NONE if track is None else (_STOP if track[0] is None else _NEW)
    steps = [Step(Scope.PLAYER, c.EnsurePlayer()), *_voice(up.voice, guild_id)]
    if kind == _NONE:
        steps += _without_track(up)
    if not isinstance(up.volume, UnsetType):
        steps.append(Step(Scope.PLAYER, c.SetOptions(volume=up.volume / 100)))
    if kind == _NONE:
        steps += _playhead(up)
    if filters is not None:
        steps.append(Step(Scope.PLAYER, c.SetOptions(filters=filters)))
    if kind == _STOP:  # paused first, as Lavalink does, so nothing lingers after the stop
        steps += [*_pause(up), Step(Scope.PLAYER, c.Stop()), Step(Scope.PLAYER, c.Clear())]
    elif kind == _NEW and track is not None:
        steps.append(Step(Scope.PLAYER, _play(up, track, no_replace)))
    refresh = kind != _NONE or not isinstance(up.position, UnsetType) or filters is not None
    return Plan(tuple(steps), refresh)


def _track_of(up: PlayerUpdate) -> tuple[Any, str] | None:
    """``(encoded or TrackQuery or None, field)`` of the update's track, if it names one."""
    top = not isinstance(up.encoded_track, UnsetType) or not isinstance(up.identifier, UnsetType)
    if not isinstance(up.track, UnsetType) and top:
        raise BadRequest("Cannot specify both track and encodedTrack/identifier")
    if not isinstance(up.track, UnsetType):
        encoded, ident, where = up.track.encoded, up.track.identifier, "track."
    else:
        encoded, ident, where = up.encoded_track, up.identifier, ""
    if not isinstance(encoded, UnsetType) and not isinstance(ident, UnsetType):
        raise BadRequest("Cannot specify both encodedTrack and identifier")
    if not isinstance(encoded, UnsetType):
        return encoded, f"{where}encoded" if where else "encodedTrack"
    if not isinstance(ident, UnsetType):
        return c.TrackQuery(query=ident, field=f"{where}identifier"), f"{where}identifier"
    return None


def _user_data(up: PlayerUpdate) -> dict[str, Any] | None:
    if isinstance(up.track, UnsetType) or isinstance(up.track.user_data, UnsetType):
        return None
    return up.track.user_data


def _voice(voice: VoiceIn | UnsetType, guild_id: int) -> list[Step]:
    if isinstance(voice, UnsetType):
        return []
    if not (voice.token and voice.endpoint and voice.session_id and voice.channel_id):
        raise BadRequest(
            "token, endpoint, sessionId and channelId must be provided in voice state"
        )
    channel = snowflake(voice.channel_id, "field `voice.channelId`")
    state = c.VoiceState(guild_id=guild_id, session_id=voice.session_id, channel_id=channel)
    server = c.VoiceServer(guild_id=guild_id, token=voice.token, endpoint=voice.endpoint)
    return [Step(Scope.SESSION, state), Step(Scope.SESSION, server)]


def _pause(up: PlayerUpdate) -> list[Step]:
    if isinstance(up.paused, UnsetType):
        return []
    return [Step(Scope.PLAYER, c.Pause() if up.paused else c.Resume())]


def _without_track(up: PlayerUpdate) -> list[Step]:
    steps = _pause(up)
    user_data = _user_data(up)
    if user_data is not None:
        steps.append(Step(Scope.PLAYER, c.SetCurrentContext(context=user_data), True))
    return steps


def _playhead(up: PlayerUpdate) -> list[Step]:
    steps = []
    if not isinstance(up.position, UnsetType):
        steps.append(Step(Scope.PLAYER, c.Seek(position=up.position / 1000), True))
    if not isinstance(up.end_time, UnsetType):
        end = None if up.end_time is None else up.end_time / 1000
        steps.append(Step(Scope.PLAYER, c.SetEnd(end_position=end)))
    return steps


def _play(up: PlayerUpdate, track: tuple[Any, str], no_replace: bool) -> c.Play:
    what, field = track
    context = _user_data(up) or {}
    if isinstance(what, c.TrackQuery):
        chosen: c.ClaimedTrack | c.TrackQuery = c.TrackQuery(
            query=what.query, field=field, context=context
        )
    else:
        chosen = claim(lp.decode(what, field), field, context)
    start = 0.0 if isinstance(up.position, UnsetType) else up.position / 1000
    end = None if isinstance(up.end_time, UnsetType) or up.end_time is None else up.end_time
    if end is not None and end / 1000 <= start:
        where = f"expected > {start * 1000:g} (the position)"
        raise BadRequest(f"field `endTime`: {where}, got {end:g}")
    return c.Play(
        track=chosen,
        start_position=start,
        end_position=None if end is None else end / 1000,
        replace=not no_replace,
        paused=False if isinstance(up.paused, UnsetType) else up.paused,
        start_field="position",
        end_field="endTime",
    )


def claim(track: lp.LavaplayerTrack, field: str, context: dict[str, Any]) -> c.ClaimedTrack:
    """A decoded track as the service's unsigned description of it."""
    known = track.length != lp.UNKNOWN_LENGTH and track.length >= 0
    return c.ClaimedTrack(
        source=track.source_name,
        id=track.identifier,
        title=track.title,
        uri=track.uri or "",
        author=track.author,
        duration=track.length / 1000 if known else None,
        is_live=track.is_stream,
        artwork=track.artwork_url,
        field=field,
        context=context,
    )


# --- sessions -------------------------------------------------------------------------------


def session_update(body: Any, max_timeout: float) -> c.ConfigureSession:
    """``PATCH /v4/sessions/{sessionId}``: ``resuming`` and ``timeout`` (seconds)."""
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object (a Lavalink session update)")
    up = parse(body, SessionUpdate)
    timeout = None if isinstance(up.timeout, UnsetType) else up.timeout
    if timeout is not None and timeout > max_timeout:
        raise BadRequest(
            f"field `timeout`: expected <= {max_timeout:g} (lavalink.max_resume_timeout), "
            f"got {timeout:g}"
        )
    resumable = None if isinstance(up.resuming, UnsetType) else up.resuming
    return c.ConfigureSession(resumable=resumable, timeout=timeout)


def encoded_tracks(body: Any) -> list[str]:
    """``POST /v4/decodetracks``: a JSON array of encoded tracks, at least one."""
    tracks = parse(body, list[str])
    if not tracks:
        raise BadRequest("No tracks to decode provided")
    return tracks
