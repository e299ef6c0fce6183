"""The RPC front door (seed 003) as a state machine: frames in, frames and typed calls out.

Pure: no asyncio, no sockets, the clock is a parameter. The Sanic driver is ``web/rpc_ws.py``.
Every Discodo REST route and websocket op is reachable by its Discodo name through the same
catalogue as the Discodo front (``protocol/discodo_routes.py``); decisions the seed leaves
open are in ``docs/protocols/rpc.md``. Call contract of :class:`RpcSession` (one per socket):

1. ``conn = RpcSession(interval_ms, password_ok, now)``; send :meth:`data_to_send` (HELLO).
2. For every frame: ``for item in conn.receive(data, now)``:

   - :class:`Identify`: bind the connection to the session, answer :meth:`identified` (or
     :meth:`fail`);
   - :class:`Request`: call the service with its key and command, answer :meth:`reply` with
     the typed result or :meth:`fail` with the error (a DISPATCH's answer is dropped);
   - :class:`Close`: send what is queued, then close with its code.

   Then send every string of :meth:`data_to_send`.
3. When no HEARTBEAT arrived by :attr:`deadline`, :meth:`expire` gives :class:`Close` (4003).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from audionode.control.commands import PlayerRef, SessionRef
from audionode.control.views import Identified
from audionode.errors import AudionodeError, BadRequest
from audionode.protocol import discodo as w
from audionode.protocol import discodo_map as m
from audionode.protocol import rpc
from audionode.protocol.discodo_routes import BY_NAME, Route, Scope, argument_fields, build
from audionode.protocol.rpc import CloseCode, Op
from audionode.validation import convert

KEY_FIELDS = ("user_id", "shard_id", "guild_id", "voice_client_id")


def grace(interval: float) -> float:
    """Seconds a heartbeat may be late: the interval again, at most 5 s."""
    return min(interval, 5.0)


class _Keys(msgspec.Struct, kw_only=True):
    user_id: w.Snowflake | None = None
    shard_id: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] | None = None
    guild_id: w.Snowflake | None = None
    voice_client_id: str | None = None


@dataclass(frozen=True, slots=True)
class Identify:
    ref: SessionRef
    nonce: Any
    reply: bool


@dataclass(frozen=True, slots=True)
class Request:
    """A validated call; ``reply`` is False for a DISPATCH (its answer is dropped)."""

    name: str
    route: Route
    key: SessionRef | PlayerRef | None
    command: Any
    nonce: Any
    reply: bool


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


Item = Identify | Request | Close


class RpcSession:
    """One RPC socket's protocol state (see the module docstring)."""

    def __init__(self, interval_ms: int, password_ok: Any, now: float, max_depth: int = 32) -> None:
        self.interval = interval_ms / 1000
        self._password_ok = password_ok
        self.max_depth = max_depth
        self.authenticated = False
        self.ref: SessionRef | None = None
        """The session this connection identified as (it then belongs to the connection)."""
        self._last_heartbeat = now
        self._out: list[str] = [rpc.hello(interval_ms)]

    def data_to_send(self) -> list[str]:
        out, self._out = self._out, []
        return out

    @property
    def deadline(self) -> float:
        return self._last_heartbeat + self.interval + grace(self.interval)

    def expire(self, now: float) -> Close | None:
        if now < self.deadline:
            return None
        return Close(CloseCode.HEARTBEAT_TIMEOUT, "no heartbeat within the interval")

    # --- input -------------------------------------------------------------------------------

    def receive(self, data: str | bytes, now: float) -> list[Item]:
        try:
            op, frame = rpc.decode(data, self.max_depth)
        except rpc.NotAFrame as e:
            return [Close(CloseCode.INVALID_FRAME, str(e)[:120])]
        except BadRequest as e:
            self._out.append(rpc.response(None, {"error": m.error_object(e)}))
            return []
        if op == Op.HELLO_ACK:
            return self._hello_ack(frame)
        if op in (Op.HEARTBEAT, Op.REQUEST, Op.DISPATCH) and not self.authenticated:
            return [Close(CloseCode.NOT_AUTHENTICATED, "send HELLO_ACK with the password first")]
        if op == Op.HEARTBEAT:
            self._last_heartbeat = now
            self._out.append(rpc.heartbeat_ack())
            return []
        if op in (Op.REQUEST, Op.DISPATCH):
            return self._call(frame, reply=op == Op.REQUEST)
        err = AudionodeError(
            f"op {op} is not sent by clients; expected 1, 2, 4 or 6", code="UNKNOWN_OP"
        )
        self._out.append(rpc.response(frame.get("n"), {"error": m.error_object(err)}))
        return []

    def _hello_ack(self, frame: dict[str, Any]) -> list[Item]:
        if self.authenticated:
            return []  # a repeated HELLO_ACK changes nothing
        password = frame.get("password")
        if not isinstance(password, str) or not self._password_ok(password):
            return [Close(CloseCode.AUTHENTICATION_FAILED, "authentication failed")]
        self.authenticated = True
        return []

    def _call(self, frame: dict[str, Any], reply: bool) -> list[Item]:
        nonce = frame.get("n")
        try:
            call = rpc.parse_call(frame)
            item = self._resolve(call, reply)
        except AudionodeError as e:
            if reply:
                self._out.append(rpc.response(nonce, {"error": m.error_object(e)}))
            return []
        return [] if item is None else [item]

    def _resolve(self, call: rpc.Call, reply: bool) -> Item | None:
        if len(call.a) > 1:
            raise BadRequest("field `a`: expected at most one argument, an object")
        arg = call.a[0] if call.a else {}
        if call.w == "HEARTBEAT":
            self._answer(call.n, reply, arg)
            return None
        if call.w == "commands":
            self._answer(call.n, reply, commands())
            return None
        if not isinstance(arg, dict):
            raise BadRequest(f"field `a[0]`: expected an object, got {type(arg).__name__}")
        keys, fields = _split(arg)
        if call.w == "IDENTIFY":
            return Identify(_session(keys), call.n, reply)
        route = BY_NAME.get(call.w)
        if route is None:
            raise AudionodeError(
                f"unknown command {call.w[:64]!r}; `commands` lists them", code="UNKNOWN_COMMAND"
            )
        if route.scope is Scope.GUILD and keys.guild_id is not None:
            fields["guild_id"] = keys.guild_id
        user = keys.user_id
        _, command = build(route, fields, user, "a[0]")
        return Request(call.w, route, _key(route, keys, arg), command, call.n, reply)

    def _answer(self, nonce: Any, reply: bool, result: Any) -> None:
        if reply:
            self._out.append(rpc.response(nonce, result))

    # --- answers -----------------------------------------------------------------------------

    def identified(self, item: Identify, result: Identified) -> None:
        self.ref = item.ref
        body = {
            **m.identified(result),
            "voice_clients": [
                {
                    "guild_id": w.snowflake(v.guild_id),
                    "id": v.voice_client_id,
                    "channel_id": w.snowflake(v.channel_id),
                }
                for v in result.voice_clients
            ],
            "dropped": result.dropped,
        }
        self._answer(item.nonce, item.reply, body)

    def reply(self, item: Request, result: Any) -> None:
        route = item.route
        self._answer(item.nonce, item.reply, None if route.reply is None else route.reply(result))

    def fail(self, item: Identify | Request, err: AudionodeError) -> None:
        self._answer(item.nonce, item.reply, {"error": m.error_object(err)})


def _split(arg: dict[str, Any]) -> tuple[_Keys, dict[str, Any]]:
    keys = {k: arg[k] for k in KEY_FIELDS if k in arg}
    fields = {k: v for k, v in arg.items() if k not in KEY_FIELDS}
    return convert(keys, _Keys, "a[0]"), fields


def _required(value: Any, name: str) -> Any:
    if value is None:
        raise BadRequest(f"field `a[0].{name}` is required")
    return value


def _session(keys: _Keys) -> SessionRef:
    return SessionRef(user_id=_required(keys.user_id, "user_id"), shard_id=keys.shard_id)


def _key(route: Route, keys: _Keys, arg: dict[str, Any]) -> SessionRef | PlayerRef | None:
    if route.scope is Scope.NODE:
        return None
    if route.scope is Scope.SESSION:
        return _session(keys)
    return PlayerRef(
        user_id=_required(keys.user_id, "user_id"),
        guild_id=_required(keys.guild_id, "guild_id"),
        shard_id=keys.shard_id,
        shard_given="shard_id" in arg,
        voice_client_id=(
            _required(keys.voice_client_id, "voice_client_id")
            if route.scope is Scope.PLAYER
            else None
        ),
    )


def commands() -> list[dict[str, Any]]:
    """``w: "commands"``: every command with the fields of its ``a[0]``."""
    keys = {
        Scope.NODE: [],
        Scope.SESSION: ["user_id", "shard_id?"],
        Scope.GUILD: ["user_id", "shard_id?", "guild_id"],
        Scope.PLAYER: ["user_id", "shard_id?", "guild_id", "voice_client_id"],
    }
    out: list[dict[str, Any]] = [
        {"name": "IDENTIFY", "args": ["user_id", "shard_id?"]},
        {"name": "HEARTBEAT", "args": ["<any>"]},
        {"name": "commands", "args": []},
    ]
    for route in BY_NAME.values():
        fields = [f for f in argument_fields(route) if f not in KEY_FIELDS]
        out.append({"name": route.name, "args": keys[route.scope] + fields})
    return out
