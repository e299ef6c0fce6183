"""The Discodo front door's wire (seed 002 websocket, Discodo 3 REST), defined once.

Websocket frames are JSON text ``{"op": <string>, "d": <any>}``; ops are case-sensitive
strings, as Discodo had them. Snowflakes are accepted as strings or integers and always sent as
strings (JavaScript clients lose precision on 64-bit integers). REST bodies are JSON objects;
player routes name the voice client with headers (``User-ID``, ``Shard-ID``, ``Guild-ID``,
``VoiceClient-ID``).

This module is pure: it decodes and validates into wire structs, which
``protocol/discodo_routes.py`` turns into the service's typed commands. Validation failures
raise :class:`audionode.errors.BadRequest` naming the field. Ranges come from
``control/commands.py`` so every front validates alike.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, TypeVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

from audionode.control.commands import (
    Crossfade,
    PlayerRef,
    Position,
    QueueIndex,
    RepeatMode,
    SkipCount,
    Volume,
)
from audionode.errors import BadRequest
from audionode.protocol import jsonin
from audionode.validation import convert

_T = TypeVar("_T")

Snowflake = Annotated[int, Meta(ge=0, le=2**63 - 1)]


class CloseCode(enum.IntEnum):
    """Close codes the node sends on ``/ws`` (documented in docs/API.md)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    UNKNOWN_ERROR = 4000
    AUTHENTICATION_FAILED = 4001
    DECODE_ERROR = 4002
    HEARTBEAT_TIMEOUT = 4003
    SESSION_TAKEN_OVER = 4004
    NOT_READING = 4008


class Op:
    """Op names, client → node and node → client."""

    HELLO: Final = "HELLO"
    FORBIDDEN: Final = "FORBIDDEN"
    HEARTBEAT: Final = "HEARTBEAT"
    HEARTBEAT_ACK: Final = "HEARTBEAT_ACK"
    IDENTIFY: Final = "IDENTIFY"
    IDENTIFIED: Final = "IDENTIFIED"
    RESUMED: Final = "RESUMED"
    GET_STATUS: Final = "GET_STATUS"
    STATUS: Final = "STATUS"
    DISCORD_EVENT: Final = "DISCORD_EVENT"
    VC_DESTROY: Final = "VC_DESTROY"
    GET_STATE: Final = "getState"
    GET_QUEUE: Final = "getQueue"
    # events
    VC_CREATED: Final = "VC_CREATED"
    VC_DESTROYED: Final = "VC_DESTROYED"
    VC_CHANNEL_EDITED: Final = "VC_CHANNEL_EDITED"


# --- websocket payloads -------------------------------------------------------------------------


class _In(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every inbound struct: an unknown field is named in the error."""


class Identify(msgspec.Struct, kw_only=True):
    user_id: Snowflake
    shard_id: Annotated[int, Meta(ge=0, le=1_000_000)] | None = None


class GuildRequest(msgspec.Struct, kw_only=True):
    """``d`` of ``VC_DESTROY``, ``getState`` and ``getQueue`` (Discodo's client adds fields)."""

    guild_id: Snowflake


class DiscordDispatch(msgspec.Struct, kw_only=True):
    """``d`` of ``DISCORD_EVENT``: the bot's raw gateway dispatch; only ``t`` and ``d`` matter."""

    t: str | None = None
    d: Any = None


class VoiceStateUpdate(msgspec.Struct, kw_only=True):
    guild_id: Snowflake
    user_id: Snowflake
    session_id: Annotated[str, Meta(max_length=256)]
    channel_id: Snowflake | None = None


class VoiceServerUpdate(msgspec.Struct, kw_only=True):
    guild_id: Snowflake
    token: Annotated[str, Meta(max_length=1024)]
    endpoint: Annotated[str, Meta(max_length=1024)] | None = None


class Frame(msgspec.Struct):
    op: Any = None
    d: Any = None


class DecodeError(Exception):
    """The frame is not JSON text: the socket is closed with 4002."""


class FrameError(BadRequest):
    """A JSON frame that cannot be taken; ``op`` and ``guild`` (when it had them) are echoed in
    the error reply."""

    def __init__(self, message: str, op: str | None = None, guild: str | None = None) -> None:
        super().__init__(message)
        self.op = op
        self.guild = guild


def decode_frame(data: str | bytes, max_depth: int = 32) -> tuple[str, Any]:
    """Split a text frame into ``(op, d)``.

    Raises :class:`DecodeError` when it is not a JSON value and :class:`BadRequest` when it is
    JSON but not an object with a string ``op`` (or nests deeper than ``max_depth``).
    """
    try:
        value = jsonin.text_frame(data, max_depth)
    except jsonin.NotJson as e:
        raise DecodeError(str(e)) from None
    except BadRequest as e:
        raise FrameError(e.message) from None
    try:
        frame = msgspec.convert(value, Frame)
    except msgspec.ValidationError:
        raise FrameError('a frame must be a JSON object {"op": <string>, "d": <any>}') from None
    if not isinstance(frame.op, str):
        raise FrameError("field `op` is required and must be a string")
    try:
        jsonin.check_depth(frame.d, max_depth - 1, "frame")
    except BadRequest:
        raise FrameError(
            f"frame: JSON nested deeper than {max_depth} levels", frame.op[:64], echo_guild(frame.d)
        ) from None
    return frame.op, frame.d


def parse(payload: Any, typ: type[_T], what: str = "d") -> _T:
    """Validate ``payload`` as ``typ``; errors name the field as ``<what>.<field>``.

    Integers may arrive as strings (snowflakes), so conversion is lax on scalars only.
    ``what=""`` names top-level fields bare (REST bodies: ``field `volume```).
    """
    return convert(payload, typ, what)


def encode(op: str | None, d: Any = None) -> str:
    """Encode one node → client frame."""
    return msgspec.json.encode({"op": op, "d": d}).decode()


def snowflake(value: int | None) -> str | None:
    """Ids leave the node as strings."""
    return None if value is None else str(value)


def echo_guild(d: Any) -> str | None:
    """The request's ``guild_id`` as Discodo's client compares it (a string), if it had one;
    for ``DISCORD_EVENT``, the forwarded event's (so a refused voice update names its guild)."""
    if isinstance(d, dict) and isinstance(d.get("guild_id"), int | str):
        return str(d["guild_id"])[:32]
    if isinstance(d, dict) and "t" in d and isinstance(d.get("d"), dict):
        return echo_guild(d["d"])
    return None


# --- REST headers -------------------------------------------------------------------------------


def _header_int(headers: Mapping[str, str], name: str, required: bool) -> int | None:
    raw = headers.get(name)
    if raw is None or raw == "":
        if required:
            raise BadRequest(f"header `{name}` is required")
        return None
    if not re.fullmatch(r"\d{1,19}", raw.strip()) or int(raw) >= 2**63:
        raise BadRequest(f"header `{name}`: expected an integer id, got {raw[:40]!r}")
    return int(raw)


def player_ref(headers: Mapping[str, str]) -> PlayerRef:
    """The voice client a REST request names by its headers (``Shard-ID`` optional: Discodo's
    own client never sends it, and the node then finds the user's session holding the guild)."""
    user_id = _header_int(headers, "User-ID", True)
    guild_id = _header_int(headers, "Guild-ID", True)
    shard_id = _header_int(headers, "Shard-ID", False)
    vc_id = headers.get("VoiceClient-ID")
    if not vc_id:
        raise BadRequest("header `VoiceClient-ID` is required")
    assert user_id is not None and guild_id is not None
    return PlayerRef(
        user_id=user_id,
        guild_id=guild_id,
        shard_id=shard_id,
        shard_given=shard_id is not None,
        voice_client_id=vc_id[:128],
    )


def queue_key(raw: int | str) -> int | str:
    """``/queue/<index>`` or ``/queue/<tag>`` (tags are 32 hex digits, never all digits)."""
    if isinstance(raw, int):
        return raw
    return int(raw) if re.fullmatch(r"-?\d{1,9}", raw) else raw[:128]


# --- REST bodies (docs/discodo.md, "REST") --------------------------------------------------------


class NoBody(_In):
    """Routes that take nothing (an empty body or ``{}``)."""


class QueryIn(_In):
    query: Annotated[str, Meta(min_length=1, max_length=2000)]


class ContextBody(_In):
    context: dict[str, Any]


class OptionsBody(_In):
    volume: Volume | UnsetType = UNSET
    crossfade: Crossfade | UnsetType = UNSET
    autoplay: bool | UnsetType = UNSET
    filter: dict[str, Any] | UnsetType = UNSET


class SeekBody(_In):
    offset: Position


class SkipBody(_In):
    offset: SkipCount = 1


class RepeatBody(_In):
    mode: RepeatMode


QueueKey = Annotated[int, Meta(ge=-1_000_000, le=1_000_000)] | Annotated[str, Meta(max_length=128)]


class QueueKeyIn(_In):
    key: QueueKey


class QueueItemBody(_In):
    """``POST /queue/<index or tag>``: move it, set its context, set its start position."""

    key: QueueKey
    index: QueueIndex | UnsetType = UNSET
    context: dict[str, Any] | UnsetType = UNSET
    start_position: Position | UnsetType = UNSET


class TrackRef(msgspec.Struct, kw_only=True):
    """A track the node issued, as a client sends it back: the whole AudioData dict may be
    echoed; only ``encoded`` (and the client's ``context``/``start_position``) are read."""

    encoded: Annotated[str, Meta(max_length=16384)]
    context: dict[str, Any] = msgspec.field(default_factory=dict)
    start_position: Position = 0.0
    type: str = msgspec.field(default="", name="_type")
    position: Position | None = None
    """The playhead of a current track (``_type: "AudioSource"``) handed back, as Discodo's
    ``moveTo`` does: it resumes there."""

    @property
    def start(self) -> float:
        if self.type == "AudioSource" and self.position is not None:
            return self.position
        return self.start_position


class PutSourceBody(_In):
    """``POST /putSource`` and ``POST /queue``: one track or a list; ``index`` inserts there."""

    source: TrackRef | list[TrackRef]
    index: QueueIndex | UnsetType = UNSET
