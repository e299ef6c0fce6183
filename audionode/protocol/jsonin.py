"""Decoding JSON from strangers, bounded: every front door's bodies and frames come through here.

Size is bounded before decoding (by the server: ``control.max_body_bytes``,
``control.max_frame_bytes``); nesting depth is bounded here (``control.max_json_depth``), so a
``[[[[...]]]]`` body cannot exhaust the stack of anything that walks the value later.
"""

from __future__ import annotations

from typing import Any

import msgspec

from audionode.errors import BadRequest


class NotJson(ValueError):
    """The input is not JSON text (a front may treat it as a protocol error, e.g. close 4002)."""


def decode(data: str | bytes, max_depth: int, what: str = "body") -> Any:
    """Decode ``data``; :class:`NotJson` when it is not JSON, :class:`BadRequest` when a
    number is out of range or it nests deeper than ``max_depth``."""
    value = decode_unchecked(data, max_depth, what)
    check_depth(value, max_depth, what)
    return value


def decode_unchecked(data: str | bytes, max_depth: int, what: str = "body") -> Any:
    """:func:`decode` without the depth check (for a caller that reads a field first)."""
    try:
        return msgspec.json.decode(data)
    except RecursionError:
        raise BadRequest(f"{what}: JSON nested deeper than {max_depth} levels") from None
    except msgspec.ValidationError:  # valid JSON text, but a number beyond float64/int64
        raise BadRequest(f"{what}: a number is out of range") from None
    except msgspec.DecodeError as e:
        raise NotJson(f"{what}: expected JSON ({e})") from None


def text_frame(data: str | bytes, max_depth: int) -> Any:
    """A websocket frame's JSON (depth unchecked); :class:`NotJson` for a binary frame too."""
    if isinstance(data, bytes):
        raise NotJson("binary frames are not accepted; send JSON text")
    return decode_unchecked(data, max_depth, "frame")


def check_depth(value: Any, max_depth: int, what: str = "body") -> None:
    if too_deep(value, max_depth):
        raise BadRequest(f"{what}: JSON nested deeper than {max_depth} levels")


def too_deep(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays/objects more than ``limit`` levels (iterative walk)."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((x, depth + 1) for x in children if isinstance(x, dict | list))
    return False
