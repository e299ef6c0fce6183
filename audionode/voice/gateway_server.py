"""The server end of the voice gateway, sans-I/O (docs/discord-voice.md "Serving the other side").

One :class:`ServerGateway` per client *voice session* (it outlives a websocket: resume attaches
a new socket to it). ``feed(frame)`` returns events: ``Identify``, ``Resume``, ``SelectProtocol``,
``Heartbeat``, ``Speaking``, ``DaveTransitionReady``, ``DaveInvalidCommitWelcome``,
:class:`~audionode.voice.wire.BinaryMessage` (op 26 key package, op 28 commit/welcome) and
:class:`~audionode.voice.wire.Other` (12, 14-20, 32). A protocol violation raises
:class:`~audionode.voice.wire.GatewayError`; close the socket with its ``close_code``.

Credentials are the caller's business: on ``Identify`` check them (else close 4004), then call
:meth:`ServerGateway.ready`. On ``Resume`` find the session's gateway, call
:meth:`ServerGateway.resume_connection` and send what it returns (``None`` → close 4006).
Numbered messages (everything but Hello, Heartbeat ACK and Resumed) get the next ``seq`` and are
kept for replay.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Final

import msgspec

from audionode.voice.opcodes import (
    BINARY_OPS,
    ClientDisconnect,
    ClientsConnect,
    CloseCode,
    HeartbeatAck,
    Hello,
    Identify,
    Op,
    Outgoing,
    Ready,
    SelectProtocol,
    SessionDescription,
    Speaking,
)
from audionode.voice.wire import (
    BinaryMessage,
    GatewayError,
    InvalidState,
    Other,
    ReplayBuffer,
    Side,
    decode_envelope,
    decode_payload,
    encode_binary,
    encode_json,
    split_client_binary,
)

DEFAULT_HEARTBEAT_INTERVAL_MS: Final = 13750
_CLIENT_BINARY: Final = frozenset({Op.DAVE_MLS_KEY_PACKAGE, Op.DAVE_MLS_COMMIT_WELCOME})
_IGNORED: Final = frozenset({12, 14, 15, 16, 17, 18, 19, 20, 32})
_SERVER_ONLY: Final = frozenset({2, 4, 6, 8, 9, 11, 13, 21, 22, 24})
_AFTER_AUTH: Final = frozenset(
    {Op.SELECT_PROTOCOL, Op.SPEAKING, Op.DAVE_TRANSITION_READY, Op.DAVE_MLS_INVALID_COMMIT_WELCOME}
)


class ServerState(enum.Enum):
    CONNECTED = "connected"
    """Socket open, Hello sent: waiting for op 0 or op 7."""
    IDENTIFIED = "identified"
    """Ready sent: waiting for op 1 Select Protocol."""
    SESSION = "session"
    """Session Description sent (or resumed): media and DAVE flow."""


class ServerGateway:
    """The server end for one client session; build with ``VoiceGateway(Side.SERVER)``."""

    side: Final = Side.SERVER

    def __init__(self, *, replay_capacity: int = 1024) -> None:
        self.state = ServerState.CONNECTED
        self.identity: Identify | None = None
        """The op 0 of this session (once fed)."""
        self.ssrc: int | None = None
        self.modes: list[str] = []
        self.mode: str | None = None
        """The mode chosen by op 1 (validated against ``modes``)."""
        self._buffer = ReplayBuffer(replay_capacity)

    @property
    def last_seq(self) -> int:
        """Seq of the last numbered message sent (-1 before any)."""
        return self._buffer.last_seq

    # --- receiving -------------------------------------------------------------------------

    def feed(self, message: str | bytes) -> list[msgspec.Struct]:
        """Decode one client frame into events; :class:`GatewayError` carries the close code."""
        if isinstance(message, bytes):
            op, payload = split_client_binary(message)
            if op not in _CLIENT_BINARY:
                raise GatewayError(CloseCode.UNKNOWN_OPCODE, f"binary op {op} not accepted")
            self._authenticated(op)
            return [BinaryMessage(Op(op), payload)]
        env = decode_envelope(message)
        if env.op in _IGNORED:
            return [Other(env.op, bytes(env.d))]
        if env.op in _SERVER_ONLY or env.op in BINARY_OPS:
            raise GatewayError(CloseCode.BAD_REQUEST, f"op {env.op} is not a client JSON op")
        try:
            op = Op(env.op)
        except ValueError:
            raise GatewayError(CloseCode.UNKNOWN_OPCODE, f"unknown opcode {env.op}") from None
        if op in (Op.IDENTIFY, Op.RESUME) and self.state is not ServerState.CONNECTED:
            raise GatewayError(CloseCode.ALREADY_AUTHENTICATED, f"op {op} after authentication")
        if op in _AFTER_AUTH:
            self._authenticated(op)
        event = decode_payload(op, env.d)
        self._check(event)
        return [event]

    def _authenticated(self, op: int) -> None:
        if self.state is ServerState.CONNECTED:
            raise GatewayError(CloseCode.NOT_AUTHENTICATED, f"op {op} before identify")

    def _check(self, event: msgspec.Struct) -> None:
        if isinstance(event, Identify):
            self.identity = event
        elif isinstance(event, SelectProtocol):
            if event.protocol != "udp":
                raise GatewayError(CloseCode.UNKNOWN_PROTOCOL, f"protocol {event.protocol!r}")
            if event.data.mode not in self.modes:
                raise GatewayError(
                    CloseCode.UNKNOWN_ENCRYPTION_MODE,
                    f"mode {event.data.mode!r} not offered (offered: {self.modes})",
                )
            self.mode = event.data.mode
        elif isinstance(event, Speaking) and event.ssrc != self.ssrc:
            raise GatewayError(
                CloseCode.BAD_REQUEST, f"speaking ssrc {event.ssrc} is not ours ({self.ssrc})"
            )

    # --- unnumbered messages -----------------------------------------------------------------

    def hello(self, heartbeat_interval_ms: float = DEFAULT_HEARTBEAT_INTERVAL_MS) -> str:
        """op 8, sent first on every new socket (unnumbered)."""
        return encode_json(Op.HELLO, Hello(heartbeat_interval_ms))

    def heartbeat_ack(self, t: int) -> str:
        """op 6 echoing the heartbeat's ``t`` (unnumbered)."""
        return encode_json(Op.HEARTBEAT_ACK, HeartbeatAck(t))

    # --- session lifecycle -------------------------------------------------------------------

    def ready(self, ssrc: int, ip: str, port: int, modes: Iterable[str]) -> str:
        """op 2 after an accepted Identify; records the SSRC and offered modes."""
        if self.state is not ServerState.CONNECTED or self.identity is None:
            raise InvalidState("ready() needs a fed Identify on a fresh session")
        self.ssrc, self.modes, self.state = ssrc, list(modes), ServerState.IDENTIFIED
        return self._numbered(Outgoing(Op.READY, Ready(ssrc, ip, port, self.modes)))

    def session_description(
        self, secret_key: bytes, dave_protocol_version: int, media_session_id: str | None = None
    ) -> str:
        """op 4 for the mode op 1 chose; after it, send op 25 when DAVE is on."""
        if self.state is not ServerState.IDENTIFIED or self.mode is None:
            raise InvalidState("session_description() needs a fed Select Protocol")
        self.state = ServerState.SESSION
        d = SessionDescription(self.mode, list(secret_key), dave_protocol_version, "opus")
        if media_session_id is not None:
            d.media_session_id = media_session_id
        return self._numbered(Outgoing(Op.SESSION_DESCRIPTION, d))

    def resume_connection(self, seq_ack: int) -> list[str | bytes] | None:
        """A new socket sent op 7 for this session (fed to any gateway, e.g. a fresh one used
        to read the socket's first message): return op 9 plus every numbered message after
        ``seq_ack`` to send on the new socket, then feed that socket's frames to *this* gateway.
        ``None`` when there is no session yet or the buffer lost some of them (close 4006)."""
        if self.state is ServerState.CONNECTED:
            return None
        replay = self._buffer.replay_after(seq_ack)
        if replay is None:
            return None
        return [encode_json(Op.RESUMED, None), *replay]

    def replay_after(self, seq_ack: int) -> list[str | bytes] | None:
        """The buffered numbered frames after ``seq_ack`` (without op 9); ``None`` if lost."""
        return self._buffer.replay_after(seq_ack)

    # --- numbered messages -------------------------------------------------------------------

    def send(self, message: Outgoing) -> str | bytes:
        """Frame any server message with the next seq (op 5 relay, 11, 13, 21-25, 27, 29, 30):
        ``str`` for JSON ops, ``bytes`` (``[seq][op][payload]``) for binary ones."""
        return self._frame(message)

    def clients_connect(self, user_ids: Iterable[int | str]) -> str:
        d = ClientsConnect([str(u) for u in user_ids])
        return self._numbered(Outgoing(Op.CLIENTS_CONNECT, d))

    def client_disconnect(self, user_id: int | str) -> str:
        return self._numbered(Outgoing(Op.CLIENT_DISCONNECT, ClientDisconnect(str(user_id))))

    def speaking(self, user_id: int | str, ssrc: int, flags: int) -> str:
        """Relay another member's op 5 to this client."""
        return self._numbered(Outgoing(Op.SPEAKING, Speaking(flags, ssrc, user_id=str(user_id))))

    def _numbered(self, message: Outgoing) -> str:
        out = self._frame(message)
        assert isinstance(out, str)
        return out

    def _frame(self, message: Outgoing) -> str | bytes:
        seq = self._buffer.next_seq()
        if message.op in BINARY_OPS:
            if not isinstance(message.payload, bytes):
                raise TypeError(f"op {message.op} needs bytes, got {type(message.payload)}")
            frame: str | bytes = encode_binary(message.op, message.payload, seq)
        elif isinstance(message.payload, bytes):
            raise TypeError(f"op {message.op} is JSON, got bytes")
        else:
            frame = encode_json(message.op, message.payload, seq)
        self._buffer.store(frame)
        return frame
