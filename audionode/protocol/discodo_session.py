"""The Discodo control websocket (seed 002) as a state machine: frames in, frames and requests out.

Pure: no asyncio, no sockets, the clock is a parameter. The Sanic driver is
``web/discodo_ws.py``. Call contract of :class:`DiscodoSession` (one per socket):

1. ``conn = DiscodoSession(heartbeat_interval, version, now)``; then :meth:`hello` (or
   :meth:`forbid`, whose :class:`Close` ends the socket after the queued frames).
2. For every frame: ``for item in conn.receive(data, now)``:

   - :class:`Identify`: call the service; answer :meth:`identified` (or :meth:`fail`);
   - :class:`Request`: call the service with ``request.key`` and ``request.command``; answer
     :meth:`reply` with the typed result, or :meth:`fail` with the error;
   - :class:`Close`: send what is queued, then close with its code.

   After each call, send every string of :meth:`data_to_send`, in order.
3. A session event for this socket: send ``conn.event(event)`` (a frame's text).
4. When nothing arrived by :attr:`deadline`, :meth:`expire` gives the :class:`Close` (4003).

Frames are handled one at a time in arrival order (Discodo ran each op as its own task, so
replies could overtake each other).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from audionode.control.commands import PlayerRef, SessionRef
from audionode.control.events import ControlEvent
from audionode.control.views import Identified as IdentifiedView
from audionode.errors import AudionodeError, NotIdentified
from audionode.protocol import discodo as w
from audionode.protocol import discodo_hearing as h
from audionode.protocol import discodo_map as m
from audionode.protocol.discodo import CloseCode, Op
from audionode.protocol.discodo_routes import WS_OPS, Route, Scope, build

GRACE = 1.0
"""Seconds beyond 2 x heartbeat_interval before a silent socket is closed with 4003."""


@dataclass(frozen=True, slots=True)
class Identify:
    """The bot asks to bind this socket to a session."""

    ref: SessionRef


@dataclass(frozen=True, slots=True)
class Request:
    """A validated op for the service; ``guild`` is echoed in an error reply."""

    op: str
    route: Route
    key: SessionRef | PlayerRef | None
    command: Any
    guild: str | None


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


Item = Identify | Request | Close


class DiscodoSession:
    """One control socket's protocol state (see the module docstring)."""

    def __init__(
        self, heartbeat_interval: float, version: str, now: float, max_depth: int = 32
    ) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.version = version
        self.max_depth = max_depth
        self.ref: SessionRef | None = None
        self._last = now
        self._out: list[str] = []

    # --- output ------------------------------------------------------------------------------

    def _send(self, op: str | None, d: Any) -> None:
        self._out.append(w.encode(op, d))

    def data_to_send(self) -> list[str]:
        out, self._out = self._out, []
        return out

    @property
    def deadline(self) -> float:
        """The time by which a frame must arrive (2 x heartbeat_interval + grace)."""
        return self._last + 2 * self.heartbeat_interval + GRACE

    def hello(self) -> None:
        self._send(
            Op.HELLO, {"heartbeat_interval": self.heartbeat_interval, "version": self.version}
        )

    def forbid(self, message: str) -> Close:
        """Wrong or missing credentials: ``FORBIDDEN``, then close 4001."""
        self._send(Op.FORBIDDEN, message)
        return Close(CloseCode.AUTHENTICATION_FAILED, message)

    def expire(self, now: float) -> Close | None:
        if now < self.deadline:
            return None
        return Close(CloseCode.HEARTBEAT_TIMEOUT, "no message within 2 x heartbeat_interval")

    def event(self, event: ControlEvent) -> str:
        """The frame of one session event."""
        return w.encode(*m.event(event))

    # --- input -------------------------------------------------------------------------------

    def receive(self, data: str | bytes, now: float) -> list[Item]:
        """Take one frame; errors in it are answered here (the socket stays open), except a
        frame that is not JSON text, which closes it with 4002."""
        self._last = now
        try:
            op, d = w.decode_frame(data, self.max_depth)
        except w.DecodeError as e:
            return [Close(CloseCode.DECODE_ERROR, str(e)[:120])]
        except w.FrameError as e:
            self.fail(e.op, e, e.guild)
            return []
        try:
            item = self._dispatch(op, d)
        except AudionodeError as e:
            self.fail(op, e, w.echo_guild(d))
            return []
        return [] if item is None else [item]

    def _dispatch(self, op: str, d: Any) -> Item | None:
        if op == Op.HEARTBEAT:
            self._send(Op.HEARTBEAT_ACK, d)
            return None
        if op == Op.IDENTIFY:
            if self.ref is not None:
                raise AudionodeError(
                    "this connection already identified", code="ALREADY_IDENTIFIED"
                )
            ident = w.parse(d, w.Identify)
            return Identify(SessionRef(user_id=ident.user_id, shard_id=ident.shard_id))
        route = WS_OPS.get(op)
        if route is None:
            known = ", ".join(sorted([Op.HEARTBEAT, Op.IDENTIFY, *WS_OPS]))
            raise AudionodeError(
                f"unknown op {op[:64]!r}; expected one of {known}", code="UNKNOWN_OP"
            )
        if self.ref is None:
            raise NotIdentified("send IDENTIFY first")
        if route.scope is Scope.PLAYER:
            return self._player_op(op, route, d)
        wire, command = build(route, d, self.ref.user_id, "d")
        return Request(op, route, self._key(route, wire), command, w.echo_guild(d))

    def _player_op(self, op: str, route: Route, d: Any) -> Request:
        """A REST player route as an op: ``d`` names the guild (and, optionally, the voice
        client's id) besides the route's body fields."""
        assert self.ref is not None
        keys, fields = h.split_keys(d)
        named = w.parse(keys, h.PlayerKeys, "d")
        _, command = build(route, fields, self.ref.user_id, "d")
        key = PlayerRef(
            user_id=self.ref.user_id,
            shard_id=self.ref.shard_id,
            guild_id=named.guild_id,
            voice_client_id=named.voice_client_id,
        )
        return Request(op, route, key, command, w.echo_guild(d))

    def _key(self, route: Route, wire: Any) -> SessionRef | PlayerRef | None:
        assert self.ref is not None
        if route.scope is Scope.GUILD:
            return PlayerRef(
                user_id=self.ref.user_id, shard_id=self.ref.shard_id, guild_id=wire.guild_id
            )
        return self.ref if route.scope is Scope.SESSION else None

    # --- answers -----------------------------------------------------------------------------

    def identified(self, result: IdentifiedView) -> None:
        """``IDENTIFIED`` and, on a resume, ``RESUMED`` plus ``VC_CREATED`` per voice client.
        Kept events follow through :meth:`event`."""
        self.ref = SessionRef(user_id=result.user_id, shard_id=result.shard_id)
        self._send(Op.IDENTIFIED, m.identified(result))
        if result.resumed:
            for op, d in m.resume_frames(result):
                self._send(op, d)

    def reply(self, request: Request, result: Any) -> None:
        route = request.route
        if route.ws_reply is not None and route.reply is not None:
            self._send(route.ws_reply, route.reply(result))

    def fail(self, op: str | None, err: AudionodeError, guild: str | None) -> None:
        """An error reply under the request's op, with our error object and Discodo's
        ``traceback``; the socket stays open."""
        self._send(op, m.ws_error(err, guild))
