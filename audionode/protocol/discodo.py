"""The Discodo-style control websocket (seed 002) and its payloads, defined once.

Wire format: JSON text frames ``{"op": <string>, "d": <any>}``. Ops are case-sensitive
strings, as Discodo had them. Snowflakes are accepted as strings or integers and always sent
as strings (JavaScript clients lose precision on 64-bit integers).

This module is pure: it decodes and validates frames and encodes replies; it never touches a
socket. Validation failures raise :class:`audionode.errors.BadRequest` naming the field.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Final, Literal, TypeVar

import msgspec

from audionode.errors import BadRequest
from audionode.validation import explain

_T = TypeVar("_T")


class CloseCode(enum.IntEnum):
    """Close codes the node sends on ``/ws`` (documented in docs/API.md)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNKNOWN_ERROR = 4000
    AUTHENTICATION_FAILED = 4001
    DECODE_ERROR = 4002
    HEARTBEAT_TIMEOUT = 4003
    SESSION_TAKEN_OVER = 4004


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


# --- inbound payloads -------------------------------------------------------------------


class Identify(msgspec.Struct, kw_only=True):
    user_id: int
    shard_id: int | None = None


class GuildRequest(msgspec.Struct, kw_only=True):
    """``d`` of ``VC_DESTROY``, ``getState`` and ``getQueue``."""

    guild_id: int


class DiscordDispatch(msgspec.Struct, kw_only=True):
    """``d`` of ``DISCORD_EVENT``: the bot's raw gateway dispatch; only ``t`` and ``d`` matter."""

    t: str | None = None
    d: Any = None


class VoiceStateUpdate(msgspec.Struct, kw_only=True):
    guild_id: int
    user_id: int
    session_id: str
    channel_id: int | None = None


class VoiceServerUpdate(msgspec.Struct, kw_only=True):
    guild_id: int
    token: str
    endpoint: str | None = None


class Frame(msgspec.Struct):
    op: Any = None
    d: Any = None


class DecodeError(Exception):
    """The frame is not JSON text: the socket is closed with 4002."""


_frame_decoder = msgspec.json.Decoder(Frame)


def decode_frame(data: str | bytes) -> tuple[str, Any]:
    """Split a text frame into ``(op, d)``.

    Raises :class:`DecodeError` when it is not a JSON value and :class:`BadRequest` when it is
    JSON but not an object with a string ``op``.
    """
    if isinstance(data, bytes):
        raise DecodeError("binary frames are not accepted; send JSON text")
    try:
        frame = _frame_decoder.decode(data)
    except msgspec.ValidationError:
        raise BadRequest('a frame must be a JSON object {"op": <string>, "d": <any>}') from None
    except msgspec.DecodeError as e:
        raise DecodeError(f"frame is not valid JSON: {e}") from None
    if not isinstance(frame.op, str):
        raise BadRequest("field `op` is required and must be a string")
    return frame.op, frame.d


def parse(payload: Any, typ: type[_T], what: str = "d") -> _T:
    """Validate ``payload`` as ``typ``; errors name the field as ``<what>.<field>``.

    Integers may arrive as strings (snowflakes), so conversion is lax on scalars only.
    ``what=""`` names top-level fields bare (REST bodies: ``field `volume```).
    """
    try:
        return msgspec.convert(payload, typ, strict=False)
    except msgspec.ValidationError as e:
        field, problem = explain(e, typ, what)
        sep = " " if problem.startswith("is ") else ": "
        raise BadRequest(f"field `{field or 'body'}`{sep}{problem}") from None


def encode(op: str, d: Any = None) -> str:
    """Encode one node → client frame."""
    return msgspec.json.encode({"op": op, "d": d}).decode()


def error_payload(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The ``d`` of an error reply: ``{"error": {"code", "message"}, ...}``."""
    return {"error": {"code": code, "message": message}, **extra}


def snowflake(value: int | None) -> str | None:
    """Ids leave the node as strings."""
    return None if value is None else str(value)


# --- REST bodies (discodo-reference.md §3.2) ------------------------------------------------

Volume = Annotated[float, msgspec.Meta(ge=0, le=5)]
Crossfade = Annotated[float, msgspec.Meta(ge=0, le=30)]
Position = Annotated[float, msgspec.Meta(ge=0)]


class ContextBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    context: dict[str, Any]


class OptionsBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    volume: Volume | msgspec.UnsetType = msgspec.UNSET
    crossfade: Crossfade | msgspec.UnsetType = msgspec.UNSET
    autoplay: bool | msgspec.UnsetType = msgspec.UNSET
    filter: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class SeekBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    offset: Position


class SkipBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    offset: Annotated[int, msgspec.Meta(ge=1)] = 1


class RepeatBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    mode: Literal["off", "track", "queue"]


class QueueItemBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /queue/<index or tag>``: move it, set its context, set its start position."""

    index: Annotated[int, msgspec.Meta(ge=0)] | msgspec.UnsetType = msgspec.UNSET
    context: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    start_position: Position | msgspec.UnsetType = msgspec.UNSET


class QueryBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    query: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class TrackRef(msgspec.Struct, kw_only=True):
    """A track the node issued, as a client sends it back: the whole AudioData dict may be
    echoed; only ``encoded`` (and the client's ``context``/``start_position``) are read."""

    encoded: str
    context: dict[str, Any] = msgspec.field(default_factory=dict)
    start_position: Position = 0.0


class PutSourceBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /putSource`` and ``POST /queue``: one track or a list; ``index`` inserts there."""

    source: TrackRef | list[TrackRef]
    index: Annotated[int, msgspec.Meta(ge=0)] | msgspec.UnsetType = msgspec.UNSET
