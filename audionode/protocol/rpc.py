"""Litecord's common protocol (seed 003) as the node's RPC front door: ops, close codes, frames.

Pure codec: JSON text frames ``{"op": <int>, ...}``; no socket here. The state machine is
``protocol/rpc_session.py``; what the node decided where the seed is silent is written down in
``docs/protocols/rpc.md``.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from audionode.protocol import jsonin
from audionode.validation import convert


class Op(enum.IntEnum):
    HELLO = 0
    HELLO_ACK = 1
    HEARTBEAT = 2
    HEARTBEAT_ACK = 3
    REQUEST = 4
    RESPONSE = 5
    DISPATCH = 6


class CloseCode(enum.IntEnum):
    """The seed's three codes, then the node's own (docs/protocols/rpc.md)."""

    GOING_AWAY = 1001
    INVALID_FRAME = 1007
    MESSAGE_TOO_BIG = 1009
    AUTHENTICATION_FAILED = 4001
    NOT_AUTHENTICATED = 4002
    HEARTBEAT_TIMEOUT = 4003
    SESSION_TAKEN_OVER = 4004
    NOT_READING = 4008


class NotAFrame(ValueError):
    """Binary, not JSON, or not an object with an integer ``op``: the socket is closed 1007."""


class _Frame(msgspec.Struct):
    op: int


class Call(msgspec.Struct, kw_only=True):
    """``REQUEST`` (with ``n``) or ``DISPATCH`` (without)."""

    op: int
    w: str
    a: list[Any] = msgspec.field(default_factory=list)
    n: Any = None


def decode(data: str | bytes, max_depth: int) -> tuple[int, dict[str, Any]]:
    """``(op, frame)``; :class:`NotAFrame` or :class:`BadRequest` (too deep, out of range)."""
    try:
        value = jsonin.text_frame(data, max_depth)
    except jsonin.NotJson as e:
        raise NotAFrame(str(e)) from None
    jsonin.check_depth(value, max_depth, "frame")
    try:
        op = msgspec.convert(value, _Frame).op
    except msgspec.ValidationError:
        raise NotAFrame('a frame is a JSON object {"op": <integer>, ...}') from None
    return op, value


def parse_call(frame: dict[str, Any]) -> Call:
    """A REQUEST/DISPATCH frame; :class:`BadRequest` naming the field."""
    return convert(frame, Call)


def hello(interval_ms: int) -> str:
    return _encode({"op": Op.HELLO, "hb_interval": interval_ms})


def heartbeat_ack() -> str:
    return _encode({"op": Op.HEARTBEAT_ACK})


def response(nonce: Any, result: Any) -> str:
    return _encode({"op": Op.RESPONSE, "n": nonce, "r": result})


def _encode(frame: dict[str, Any]) -> str:
    return msgspec.json.encode(frame).decode()
