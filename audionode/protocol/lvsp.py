"""LVSP, the Litecord Voice Server Protocol (seeds 000/001): enums, wire structs, codec.

Pure: no asyncio, no sockets. The server's per-socket state machine and resumable sessions are
in :mod:`audionode.protocol.lvsp_session`; the asyncio driver is
``audionode/voiceserver/lvsp_server.py``. The decisions taken where the seeds are silent are
written down in ``docs/protocols/lvsp.md`` (cited below as "lvsp.md §n").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Any, Final

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

# --- enums (seed 001 "OP code table", "Error codes", "IntoType Enum") -------------------------


class Op(enum.IntEnum):
    HELLO = 0
    IDENTIFY = 1
    RESUME = 2
    READY = 3
    HEARTBEAT = 4
    HEARTBEAT_ACK = 5
    INFO = 6
    VST_REQUEST = 7


class InfoType(enum.IntEnum):
    CHANNEL = 0
    VST = 1


class CloseCode(enum.IntEnum):
    GENERAL = 4000
    """General error, reconnect (seed); also our heartbeat timeout (lvsp.md §4)."""
    AUTH_FAILED = 4001
    """Wrong token, or an op other than IDENTIFY/RESUME before authenticating."""
    DECODE_ERROR = 4002
    """Not JSON, not an object, an unknown or misplaced op, a missing or mistyped field."""
    INVALID_SESSION = 4003
    """Our addition (lvsp.md §3): RESUME cannot be honoured; IDENTIFY afresh."""


CLIENT_OPS: Final = frozenset({Op.IDENTIFY, Op.RESUME, Op.HEARTBEAT, Op.INFO, Op.VST_REQUEST})

Snowflake = Annotated[str, Meta(pattern=r"^[0-9]{1,20}$")]
"""A Discord snowflake: a string of digits (seed 001 "Message structure")."""
Bitrate = Annotated[int, Meta(ge=8000, le=512000)]

# --- payload structs ----------------------------------------------------------------------------


class _Payload(Struct, omit_defaults=True, forbid_unknown_fields=False):
    pass


class Identify(_Payload):
    token: str


class Resume(_Payload):
    token: str
    seq: Annotated[int, Meta(ge=0)]
    session_id: str | UnsetType = UNSET
    """Our addition (lvsp.md §3): which session; omitted = the most recently detached one."""


class Heartbeat(_Payload):
    s: Annotated[int, Meta(ge=0)]
    """The last ``s`` the client received (0: none yet); lets the server trim its buffer."""


class ChannelInfo(_Payload):
    """INFO type 0. From the client, unset fields keep their value (lvsp.md §5)."""

    id: Snowflake
    bitrate: Bitrate | UnsetType = UNSET
    dave_required: bool | UnsetType = UNSET
    deleted: bool | UnsetType = UNSET
    """Our addition: ``true`` destroys the channel and disconnects its clients."""


class VoiceInfo(_Payload):
    """INFO type 1. ``channel_id: null`` from the client removes the voice state (lvsp.md §6)."""

    user_id: Snowflake
    channel_id: Snowflake | None
    guild_id: Snowflake | UnsetType | None = UNSET
    session_id: str | UnsetType = UNSET
    token: str | UnsetType = UNSET
    deaf: bool | UnsetType = UNSET
    mute: bool | UnsetType = UNSET
    self_deaf: bool | UnsetType = UNSET
    self_mute: bool | UnsetType = UNSET
    suppress: bool | UnsetType = UNSET


class VstRequest(_Payload):
    user_id: Snowflake
    channel_id: Snowflake
    guild_id: Snowflake | UnsetType | None = UNSET
    session_id: str | UnsetType = UNSET


@dataclass(frozen=True, slots=True)
class Info:
    """A decoded INFO: ``type`` says which struct ``info`` is."""

    type: InfoType
    info: ChannelInfo | VoiceInfo


class _Envelope(Struct, forbid_unknown_fields=False):
    op: int
    d: Any = None


class _InfoEnvelope(Struct, forbid_unknown_fields=False):
    type: InfoType
    info: dict[str, Any]


ClientMessage = Identify | Resume | Heartbeat | Info | VstRequest

_PAYLOADS: Final[dict[Op, type[Struct]]] = {
    Op.IDENTIFY: Identify,
    Op.RESUME: Resume,
    Op.HEARTBEAT: Heartbeat,
    Op.VST_REQUEST: VstRequest,
}


class LvspError(Exception):
    """A message broke the protocol; ``code`` is the close code, ``reason`` names the field."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _convert(data: Any, typ: type[Struct], op: Op, where: str) -> Any:
    try:
        return msgspec.convert(data, typ)
    except msgspec.ValidationError as e:
        # msgspec says "Object missing required field `token`" (+ " - at `$.x`" below the root):
        # re-root the path at the field of the frame and lead with the op, one line.
        msg = str(e)
        msg = msg.replace("`$", f"`{where}") if " - at `$" in msg else f"{msg} - at `{where}`"
        raise LvspError(CloseCode.DECODE_ERROR, f"{op.name}: {msg}") from None


def decode_client(raw: str | bytes) -> tuple[Op, ClientMessage]:
    """Parse one client frame; raise :class:`LvspError` (4002) naming what was wrong."""
    try:
        env = msgspec.json.decode(raw, type=_Envelope)
    except msgspec.ValidationError as e:
        raise LvspError(CloseCode.DECODE_ERROR, f"bad envelope: {e}") from None
    except msgspec.DecodeError:
        raise LvspError(CloseCode.DECODE_ERROR, "message is not valid JSON") from None
    except RecursionError:  # msgspec's depth guard; no LVSP message nests beyond 3 levels
        raise LvspError(CloseCode.DECODE_ERROR, "message is nested too deeply") from None
    if env.op not in CLIENT_OPS:
        raise LvspError(CloseCode.DECODE_ERROR, f"op {env.op} is not a client op")
    op = Op(env.op)
    if op is Op.INFO:
        head = _convert(env.d, _InfoEnvelope, op, "d")
        typ = ChannelInfo if head.type is InfoType.CHANNEL else VoiceInfo
        return op, Info(head.type, _convert(head.info, typ, op, "d.info"))
    return op, _convert(env.d, _PAYLOADS[op], op, "d")


def encode_server(op: Op, d: Any, s: int) -> str:
    """A server frame: ``{"op", "d", "s"}`` (every server message carries ``s``, lvsp.md §2)."""
    return msgspec.json.encode({"op": int(op), "d": d, "s": s}).decode()
