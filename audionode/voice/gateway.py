"""The voice gateway protocol, sans-I/O, for both ends (docs/discord-voice.md §1.2-§1.6).

``VoiceGateway(Side.CLIENT)``: one per voice connection (it survives websocket reconnects: call
:meth:`VoiceGateway.new_connection` for each new socket, then :meth:`identify` or :meth:`resume`).
``feed(message)`` takes a received text (``str``) or binary (``bytes``) frame and returns events:
the payload structs of :mod:`~audionode.voice.opcodes` (``Hello``, ``Ready``,
``SessionDescription``, ``Speaking``, ``HeartbeatAck``, ``ClientsConnect``, ``ClientDisconnect``,
``DavePrepareTransition``, ``DaveExecuteTransition``, ``DavePrepareEpoch``) plus
:class:`~audionode.voice.wire.Resumed` and :class:`~audionode.voice.wire.BinaryMessage` (ops
25/27/29/30). Unmodelled ops (12, 14-20...) yield nothing. Builders return the frame to send
(``str`` = text frame, ``bytes`` = binary frame). ``seq_ack`` counts JSON ``seq`` and the u16
prefix of server binary frames alike (§1.4).

``VoiceGateway(Side.SERVER)``: one per client voice session; see :mod:`.gateway_server`.
``VoiceGateway`` is a factory so that both ends share one entry point and mypy still knows the
concrete type (:class:`ClientGateway` or :class:`ServerGateway`) from the ``side`` literal.
"""

from __future__ import annotations

import enum
from typing import Final, Literal, overload

import msgspec

from audionode.voice.gateway_server import ServerGateway, ServerState
from audionode.voice.opcodes import (
    BINARY_OPS,
    Heartbeat,
    Hello,
    Identify,
    Op,
    Outgoing,
    Ready,
    Resume,
    SelectProtocol,
    SelectProtocolData,
    SessionDescription,
    Speaking,
)
from audionode.voice.wire import (
    BinaryMessage,
    GatewayError,
    InvalidState,
    Resumed,
    Side,
    decode_envelope,
    decode_payload,
    encode_binary,
    encode_json,
    split_server_binary,
)

__all__ = [
    "ClientGateway",
    "ClientState",
    "GatewayError",
    "InvalidState",
    "ServerGateway",
    "ServerState",
    "Side",
    "VoiceGateway",
]

SPEAKING_MICROPHONE: Final = 1

_CLIENT_EVENT_OPS: Final = frozenset(
    {
        Op.HELLO,
        Op.READY,
        Op.SESSION_DESCRIPTION,
        Op.SPEAKING,
        Op.HEARTBEAT_ACK,
        Op.CLIENTS_CONNECT,
        Op.CLIENT_DISCONNECT,
        Op.DAVE_PREPARE_TRANSITION,
        Op.DAVE_EXECUTE_TRANSITION,
        Op.DAVE_PREPARE_EPOCH,
    }
)


class ClientState(enum.Enum):
    CONNECTING = "connecting"
    """New socket, nothing sent yet: call identify() or resume()."""
    IDENTIFYING = "identifying"
    """op 0 sent, waiting for op 2 Ready."""
    READY = "ready"
    """op 2 received: do IP discovery, then select_protocol()."""
    SELECTING = "selecting"
    """op 1 sent, waiting for op 4."""
    ACTIVE = "active"
    """op 4 (or op 9 after a resume) received: speaking and media allowed."""
    RESUMING = "resuming"
    """op 7 sent, waiting for op 9."""


@overload
def VoiceGateway(side: Literal[Side.CLIENT] = ...) -> ClientGateway: ...
@overload
def VoiceGateway(side: Literal[Side.SERVER], *, replay_capacity: int = ...) -> ServerGateway: ...


def VoiceGateway(
    side: Side = Side.CLIENT, *, replay_capacity: int = 1024
) -> ClientGateway | ServerGateway:
    """Build the gateway of one end: a :class:`ClientGateway` or a :class:`ServerGateway`
    (``replay_capacity`` = numbered messages kept for resume, server only)."""
    if side is Side.SERVER:
        return ServerGateway(replay_capacity=replay_capacity)
    return ClientGateway()


class ClientGateway:
    """The client end of one voice connection (see the module docstring for the flow)."""

    side: Final = Side.CLIENT

    def __init__(self) -> None:
        self.state = ClientState.CONNECTING
        self.seq_ack = -1
        """Last server seq seen (JSON or binary), -1 before any."""
        self.ssrc: int | None = None
        self.modes: list[str] = []
        self.heartbeat_interval_ms: float | None = None
        self.resumable = False
        """True once a session exists (op 4 seen): a lost socket may then be resumed."""

    # --- receiving -------------------------------------------------------------------------

    def feed(self, message: str | bytes) -> list[msgspec.Struct]:
        """Decode one received frame into events; raises :class:`GatewayError` on garbage
        (state is unchanged then, so the caller may log and carry on)."""
        if isinstance(message, bytes):
            seq, op, payload = split_server_binary(message)
            self.seq_ack = seq
            if op not in BINARY_OPS:
                return []
            return [BinaryMessage(Op(op), payload)]
        env = decode_envelope(message)
        if env.seq is not None:
            self.seq_ack = env.seq
        if env.op == Op.RESUMED:
            self._expect(ClientState.RESUMING, "op 9 Resumed")
            self.state = ClientState.ACTIVE
            return [Resumed()]
        if env.op not in _CLIENT_EVENT_OPS:
            return []
        event = decode_payload(Op(env.op), env.d)
        self._on_event(event)
        return [event]

    def _on_event(self, event: msgspec.Struct) -> None:
        if isinstance(event, Ready):
            self._expect(ClientState.IDENTIFYING, "op 2 Ready")
            self.state, self.ssrc, self.modes = ClientState.READY, event.ssrc, event.modes
        elif isinstance(event, SessionDescription):
            if self.state not in (ClientState.SELECTING, ClientState.ACTIVE):
                raise GatewayError(4002, f"op 4 Session Description in state {self.state.value}")
            self.state, self.resumable = ClientState.ACTIVE, True
        elif isinstance(event, Hello):
            self.heartbeat_interval_ms = event.heartbeat_interval

    def _expect(self, state: ClientState, what: str) -> None:
        if self.state is not state:
            raise GatewayError(4002, f"{what} received in state {self.state.value}")

    def _require(self, what: str, *states: ClientState) -> None:
        if self.state not in states:
            allowed = " or ".join(s.value for s in states)
            raise InvalidState(f"{what} is only valid when {allowed}, not {self.state.value}")

    # --- sending ---------------------------------------------------------------------------

    def new_connection(self) -> None:
        """A new websocket replaces the old one; seq_ack, SSRC and session survive for resume."""
        self.state = ClientState.CONNECTING

    def identify(
        self,
        server_id: int | str,
        user_id: int | str,
        session_id: str,
        token: str,
        max_dave_protocol_version: int,
    ) -> str:
        """op 0 on a fresh connection (a new session: resets seq_ack)."""
        self._require("identify()", ClientState.CONNECTING)
        self.state, self.seq_ack, self.resumable = ClientState.IDENTIFYING, -1, False
        d = Identify(str(server_id), str(user_id), session_id, token, max_dave_protocol_version)
        return encode_json(Op.IDENTIFY, d)

    def resume(self, server_id: int | str, session_id: str, token: str) -> str:
        """op 7 with the current ``seq_ack`` on a new socket of a resumable session (§1.6)."""
        self._require("resume()", ClientState.CONNECTING)
        if not self.resumable:
            raise InvalidState("resume() before any op 4: there is no session to resume")
        self.state = ClientState.RESUMING
        return encode_json(Op.RESUME, Resume(str(server_id), session_id, token, self.seq_ack))

    def select_protocol(self, address: str, port: int, mode: str) -> str:
        """op 1 after IP discovery; ``mode`` must be one of Ready's ``modes``."""
        self._require("select_protocol()", ClientState.READY)
        if mode not in self.modes:
            raise InvalidState(f"mode {mode!r} was not offered (offered: {self.modes})")
        self.state = ClientState.SELECTING
        data = SelectProtocolData(address, port, mode)
        return encode_json(Op.SELECT_PROTOCOL, SelectProtocol("udp", data))

    def heartbeat(self, t_ms: int) -> str:
        """op 3 ``{"t": t_ms, "seq_ack": last seq}`` (v8)."""
        return encode_json(Op.HEARTBEAT, Heartbeat(t_ms, self.seq_ack))

    def speaking(self, flags: int = SPEAKING_MICROPHONE) -> str:
        """op 5 with our SSRC; flags 0 = stopped (send after the silence frames)."""
        self._require("speaking()", ClientState.ACTIVE)
        assert self.ssrc is not None  # ACTIVE implies Ready was seen
        return encode_json(Op.SPEAKING, Speaking(flags, self.ssrc, delay=0))

    def send(self, message: Outgoing) -> str | bytes:
        """Frame a message produced by ``DaveState`` (op 23/31 JSON, op 26/28 binary)."""
        if message.op in BINARY_OPS:
            if not isinstance(message.payload, bytes):
                raise TypeError(f"op {message.op} needs bytes, got {type(message.payload)}")
            return encode_binary(message.op, message.payload)
        if isinstance(message.payload, bytes):
            raise TypeError(f"op {message.op} is JSON, got bytes")
        return encode_json(message.op, message.payload)
