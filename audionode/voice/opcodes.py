"""Discord voice gateway v8: opcodes, close codes, JSON payload structs, close-code policy.

Shared by the voice client (``VoiceGateway(side=CLIENT)``) and the built-in voice server
(``side=SERVER``). Facts: ``docs/discord-voice.md`` §1.3 (ops and fields), §1.7 (close codes),
§2.2 (JSON DAVE ops). Snowflakes stay ``str`` here because that is how they travel; convert to
``int`` at the edge that needs numbers (DAVE, maps).

Structs accept unknown fields (clients add ``video``, ``streams``, ``codecs``...). Fields with a
plain default are always encoded (peers such as discord.py index ``d['dave_protocol_version']``
directly); truly optional fields default to ``msgspec.UNSET`` and are left out when unset, so
nothing ever goes out as ``null``.
"""

from __future__ import annotations

import enum
from typing import Final, NamedTuple

import msgspec


class Op(enum.IntEnum):
    """Voice gateway opcodes (§1.3). 25-30 travel as binary websocket frames."""

    IDENTIFY = 0
    SELECT_PROTOCOL = 1
    READY = 2
    HEARTBEAT = 3
    SESSION_DESCRIPTION = 4
    SPEAKING = 5
    HEARTBEAT_ACK = 6
    RESUME = 7
    HELLO = 8
    RESUMED = 9
    CLIENTS_CONNECT = 11
    VIDEO = 12
    CLIENT_DISCONNECT = 13
    SESSION_UPDATE = 14
    MEDIA_SINK_WANTS = 15
    VOICE_BACKEND_VERSION = 16
    CHANNEL_OPTIONS_UPDATE = 17
    CLIENT_FLAGS = 18
    SPEED_TEST = 19
    CLIENT_PLATFORM = 20
    DAVE_PREPARE_TRANSITION = 21
    DAVE_EXECUTE_TRANSITION = 22
    DAVE_TRANSITION_READY = 23
    DAVE_PREPARE_EPOCH = 24
    DAVE_MLS_EXTERNAL_SENDER = 25
    DAVE_MLS_KEY_PACKAGE = 26
    DAVE_MLS_PROPOSALS = 27
    DAVE_MLS_COMMIT_WELCOME = 28
    DAVE_MLS_ANNOUNCE_COMMIT_TRANSITION = 29
    DAVE_MLS_WELCOME = 30
    DAVE_MLS_INVALID_COMMIT_WELCOME = 31
    NO_ROUTE = 32


BINARY_OPS: Final = frozenset(
    {
        Op.DAVE_MLS_EXTERNAL_SENDER,
        Op.DAVE_MLS_KEY_PACKAGE,
        Op.DAVE_MLS_PROPOSALS,
        Op.DAVE_MLS_COMMIT_WELCOME,
        Op.DAVE_MLS_ANNOUNCE_COMMIT_TRANSITION,
        Op.DAVE_MLS_WELCOME,
    }
)
"""Ops carried in binary frames (§2.2; op 29 is binary despite userdoccers)."""

GATEWAY_VERSION: Final = 8
"""The ``?v=`` we speak (§1.1)."""


class CloseCode(enum.IntEnum):
    """Websocket close codes of the voice gateway (§1.7)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    ABNORMAL = 1006
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    UNKNOWN_OPCODE = 4001
    DECODE_ERROR = 4002
    NOT_AUTHENTICATED = 4003
    AUTHENTICATION_FAILED = 4004
    ALREADY_AUTHENTICATED = 4005
    SESSION_NO_LONGER_VALID = 4006
    SESSION_TIMEOUT = 4009
    SERVER_NOT_FOUND = 4011
    UNKNOWN_PROTOCOL = 4012
    WEBRTC_CRASHED = 4013
    DISCONNECTED = 4014
    VOICE_SERVER_CRASHED = 4015
    UNKNOWN_ENCRYPTION_MODE = 4016
    DAVE_REQUIRED = 4017
    BAD_REQUEST = 4020
    RATE_LIMITED = 4021
    CALL_TERMINATED = 4022


CLOSE_REASONS: Final[dict[int, str]] = {
    CloseCode.NORMAL: "Normal closure",
    CloseCode.UNKNOWN_OPCODE: "Unknown opcode",
    CloseCode.DECODE_ERROR: "Failed to decode payload",
    CloseCode.NOT_AUTHENTICATED: "Not authenticated",
    CloseCode.AUTHENTICATION_FAILED: "Authentication failed",
    CloseCode.ALREADY_AUTHENTICATED: "Already authenticated",
    CloseCode.SESSION_NO_LONGER_VALID: "Session no longer valid",
    CloseCode.SESSION_TIMEOUT: "Session timeout",
    CloseCode.SERVER_NOT_FOUND: "Server not found",
    CloseCode.UNKNOWN_PROTOCOL: "Unknown protocol",
    CloseCode.DISCONNECTED: "Disconnected",
    CloseCode.VOICE_SERVER_CRASHED: "Voice server crashed",
    CloseCode.UNKNOWN_ENCRYPTION_MODE: "Unknown encryption mode",
    CloseCode.DAVE_REQUIRED: "E2EE/DAVE protocol required",
    CloseCode.BAD_REQUEST: "Bad request",
    CloseCode.RATE_LIMITED: "Rate limited",
    CloseCode.CALL_TERMINATED: "Call terminated",
}
"""Human-readable close reasons a server puts in its close frame."""


class CloseAction(enum.Enum):
    """What a voice client does after its websocket closed (§1.7)."""

    DONE = "done"
    """Normal closure we asked for: nothing to do."""
    RESUME = "resume"
    """Open a new websocket to the same endpoint and send op 7; keep UDP, key, DAVE, counters."""
    RECONNECT = "reconnect"
    """A bug on one side: log it, reconnect fresh (op 0) with back-off, same credentials."""
    DISCONNECT = "disconnect"
    """Session is dead: drop it, report to the bot, wait for a new VOICE_SERVER_UPDATE."""
    STOP = "stop"
    """Do not reconnect at all (rate limited); report to the bot."""


_POLICY: Final[dict[int, CloseAction]] = {
    CloseCode.NORMAL: CloseAction.DONE,
    CloseCode.ABNORMAL: CloseAction.RESUME,
    CloseCode.WEBRTC_CRASHED: CloseAction.RESUME,
    CloseCode.VOICE_SERVER_CRASHED: CloseAction.RESUME,
    CloseCode.AUTHENTICATION_FAILED: CloseAction.DISCONNECT,
    CloseCode.SESSION_NO_LONGER_VALID: CloseAction.DISCONNECT,
    CloseCode.SESSION_TIMEOUT: CloseAction.DISCONNECT,
    CloseCode.SERVER_NOT_FOUND: CloseAction.DISCONNECT,
    # 4014/4022: a move arrives as a new VOICE_SERVER_UPDATE; the old token must not be reused.
    CloseCode.DISCONNECTED: CloseAction.DISCONNECT,
    CloseCode.CALL_TERMINATED: CloseAction.DISCONNECT,
    CloseCode.RATE_LIMITED: CloseAction.STOP,
}

BUG_CODES: Final = frozenset(
    {
        CloseCode.UNKNOWN_OPCODE,
        CloseCode.DECODE_ERROR,
        CloseCode.NOT_AUTHENTICATED,
        CloseCode.ALREADY_AUTHENTICATED,
        CloseCode.UNKNOWN_PROTOCOL,
        CloseCode.UNKNOWN_ENCRYPTION_MODE,
        CloseCode.DAVE_REQUIRED,
        CloseCode.BAD_REQUEST,
    }
)
"""Codes that mean one side violated the protocol (§1.7 "bug"): log loudly."""


def close_action(code: int | None) -> CloseAction:
    """The single close-code policy of the project (§1.7).

    ``code`` is the close code received, or ``None`` when the socket died without a close frame
    (treated like 1006). Codes outside the table: other 1xxx codes are transport-level hiccups
    (going away, restart) after which the session may still live, so RESUME (a dead session
    answers 4006, which then DISCONNECTs); unknown 4xxx codes are treated like bugs: RECONNECT.
    """
    if code is None:
        return CloseAction.RESUME
    action = _POLICY.get(code)
    if action is not None:
        return action
    if code in BUG_CODES:
        return CloseAction.RECONNECT
    if 1000 <= code < 2000:
        return CloseAction.RESUME
    return CloseAction.RECONNECT


def is_bug(code: int | None) -> bool:
    """True when ``code`` says that one side broke the protocol (worth an error log)."""
    return code in BUG_CODES


MAX_ATTEMPTS: Final = 6
"""Consecutive failed resumes/reconnects before a client gives up (back-off 0, .5, 1, 2, 4, 8 s)."""


def backoff(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt`` (1-based) of a resume or reconnect."""
    return 0.0 if attempt <= 1 else min(0.5 * 2 ** (attempt - 2), 8.0)


class CloseDecision(NamedTuple):
    """What one voice client does about one closed socket (see :func:`decide_close`)."""

    action: CloseAction
    retry: bool
    """True for RESUME and RECONNECT: a new socket is opened after :attr:`delay` seconds."""
    delay: float
    gave_up: bool
    """True when a retry was due but :data:`MAX_ATTEMPTS` (or the caller's limit) ran out."""


def decide_close(
    code: int | None, *, resumable: bool, failures: int, max_attempts: int = MAX_ATTEMPTS
) -> CloseDecision:
    """The close-code policy applied to one session: :func:`close_action` (§1.7), except that a
    socket lost before the first op 4 has nothing to resume (RECONNECT instead), and that the
    ``failures``-th consecutive failed attempt (this one included) beyond ``max_attempts``
    gives up. Used by :class:`~audionode.voice.client.VoiceClient`; nothing else decides."""
    action = close_action(code)
    if action is CloseAction.RESUME and not resumable:
        action = CloseAction.RECONNECT
    if action not in (CloseAction.RESUME, CloseAction.RECONNECT):
        return CloseDecision(action, False, 0.0, False)
    if failures > max_attempts:
        return CloseDecision(action, False, 0.0, True)
    return CloseDecision(action, True, backoff(failures), False)


# --- JSON payload structs (§1.3, §2.2). Fields named exactly as on the wire. ---------------------


class _Payload(msgspec.Struct):
    pass


UNSET: Final = msgspec.UNSET
Unset = msgspec.UnsetType


class Identify(_Payload):
    """op 0, C→S. ``max_dave_protocol_version`` 0 means no DAVE (closed with 4017 nowadays)."""

    server_id: str
    user_id: str
    session_id: str
    token: str
    max_dave_protocol_version: int = 0
    channel_id: str | Unset = UNSET  # v9 only


class SelectProtocolData(_Payload):
    address: str
    port: int
    mode: str


class SelectProtocol(_Payload):
    """op 1, C→S."""

    protocol: str
    data: SelectProtocolData


class Ready(_Payload):
    """op 2, S→C. Its ``heartbeat_interval`` (when present) is bogus and not modelled (§1.3)."""

    ssrc: int
    ip: str
    port: int
    modes: list[str]
    experiments: list[str] = msgspec.field(default_factory=list)


class Heartbeat(_Payload):
    """op 3, C→S (v8): ``t`` unix ms, ``seq_ack`` last server seq seen or -1 (§1.4)."""

    t: int
    seq_ack: int = -1


class SessionDescription(_Payload):
    """op 4, S→C. ``secret_key`` is 32 ints."""

    mode: str
    secret_key: list[int]
    dave_protocol_version: int = 0
    audio_codec: str = "opus"
    video_codec: str | Unset = UNSET
    media_session_id: str | Unset = UNSET


class Speaking(_Payload):
    """op 5, both ways. C→S carries ``delay``; S→C carries ``user_id`` (SSRC→user map)."""

    speaking: int
    ssrc: int
    delay: int | Unset = UNSET
    user_id: str | Unset = UNSET


class HeartbeatAck(_Payload):
    """op 6, S→C: echoes the heartbeat's ``t``."""

    t: int


class Resume(_Payload):
    """op 7, C→S."""

    server_id: str
    session_id: str
    token: str
    seq_ack: int = -1
    channel_id: str | Unset = UNSET  # v9 only


class Hello(_Payload):
    """op 8, S→C. ``heartbeat_interval`` in ms."""

    heartbeat_interval: float
    v: int = GATEWAY_VERSION


class ClientsConnect(_Payload):
    """op 11, S→C: users present in the channel (feeds DAVE's recognized set)."""

    user_ids: list[str]


class ClientDisconnect(_Payload):
    """op 13, S→C."""

    user_id: str


class DavePrepareTransition(_Payload):
    """op 21, S→C."""

    transition_id: int
    protocol_version: int


class DaveExecuteTransition(_Payload):
    """op 22, S→C."""

    transition_id: int


class DaveTransitionReady(_Payload):
    """op 23, C→S."""

    transition_id: int


class DavePrepareEpoch(_Payload):
    """op 24, S→C. ``epoch == 1`` means (re)create the group."""

    protocol_version: int
    epoch: int


class DaveInvalidCommitWelcome(_Payload):
    """op 31, C→S."""

    transition_id: int


PAYLOAD_TYPES: Final[dict[Op, type[msgspec.Struct]]] = {
    Op.IDENTIFY: Identify,
    Op.SELECT_PROTOCOL: SelectProtocol,
    Op.READY: Ready,
    Op.HEARTBEAT: Heartbeat,
    Op.SESSION_DESCRIPTION: SessionDescription,
    Op.SPEAKING: Speaking,
    Op.HEARTBEAT_ACK: HeartbeatAck,
    Op.RESUME: Resume,
    Op.HELLO: Hello,
    Op.CLIENTS_CONNECT: ClientsConnect,
    Op.CLIENT_DISCONNECT: ClientDisconnect,
    Op.DAVE_PREPARE_TRANSITION: DavePrepareTransition,
    Op.DAVE_EXECUTE_TRANSITION: DaveExecuteTransition,
    Op.DAVE_TRANSITION_READY: DaveTransitionReady,
    Op.DAVE_PREPARE_EPOCH: DavePrepareEpoch,
    Op.DAVE_MLS_INVALID_COMMIT_WELCOME: DaveInvalidCommitWelcome,
}
"""The ``d`` struct of each JSON op we model; others (9 Resumed = null, 12, 14-20, 32) are not."""


class Outgoing(NamedTuple):
    """A message some sans-I/O component wants sent on a voice websocket.

    ``payload`` is the ``d`` struct for JSON ops (``None`` for a ``null`` d) and the raw payload
    bytes (after the opcode byte) for binary ops in :data:`BINARY_OPS`. The gateway of the
    sending side frames it (and, on the server side, assigns the ``seq``).
    """

    op: Op
    payload: msgspec.Struct | bytes | None
