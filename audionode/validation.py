"""One way to turn a msgspec validation failure into one clear line naming the field.

Used by the config loader and by every wire-format parser, so a user sees the same style of
message everywhere: ``field `volume`: expected `float` <= 5.0``.
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypeVar, get_args, get_origin

import msgspec

from audionode.errors import BadRequest

_T = TypeVar("_T")
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def _resolve(root: Any, path: str) -> Any:
    """The declared type at a dotted path under ``root`` (None when it cannot be followed)."""
    typ = root
    for part in filter(None, path.split(".")):
        if not (isinstance(typ, type) and issubclass(typ, msgspec.Struct)):
            return None
        typ = {f.encode_name: f.type for f in msgspec.structs.fields(typ)}.get(part)
    return typ


def _literal_choices(typ: Any) -> list[str]:
    for arg in (typ, *get_args(typ)):
        if get_origin(arg) is Literal:
            return [str(v) for v in get_args(arg)]
    return []


def explain(err: msgspec.ValidationError, root: Any, prefix: str = "") -> tuple[str, str]:
    """Return ``(field, problem)`` for ``err`` raised while converting to ``root``."""
    m = _AT.match(str(err))
    msg, path = (m.group("msg"), m.group("path") or "") if m else (str(err), "")
    path = path.lstrip(".")
    here = _resolve(root, path)
    join = ".".join(p for p in (prefix, path) if p)
    if msg.startswith(("Object missing required field", "Object contains unknown field")):
        name = msg.split("`")[1]
        field = ".".join(p for p in (join, name) if p)
        if msg.startswith("Object missing"):
            return field, "is required"
        known = (
            ", ".join(f.encode_name for f in msgspec.structs.fields(here))
            if isinstance(here, type) and issubclass(here, msgspec.Struct)
            else ""
        )
        return field, f"is unknown (expected one of: {known})" if known else "is unknown"
    if msg.startswith("Invalid enum value") and (choices := _literal_choices(here)):
        return join, f"expected one of {', '.join(choices)}, got {msg.split(' ', 3)[3]}"
    return join, f"{msg[0].lower()}{msg[1:]}"


def convert(payload: Any, typ: type[_T], what: str = "", *, strict: bool = False) -> _T:
    """``payload`` as ``typ`` or :class:`BadRequest` naming the field as ``<what>.<field>``
    (``what=""`` names top-level fields bare). Lax by default: snowflakes arrive as strings."""
    try:
        return msgspec.convert(payload, typ, strict=strict)
    except msgspec.ValidationError as e:
        field, problem = explain(e, typ, what)
        sep = " " if problem.startswith("is ") else ": "
        raise BadRequest(f"field `{field or what or 'body'}`{sep}{problem}") from None
