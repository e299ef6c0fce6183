"""Signed track tokens: how ``putSource`` knows a track was issued by this node.

A track the node hands out (``getSource``, ``searchSources``, queue listings) carries
``encoded = base64url(msgpack(info)) "." base64url(HMAC-SHA256(key, payload)[:16])``. The key is
derived from the node password, so tokens survive a restart but cannot be forged by anyone
without the password, and a client can never make the node open an arbitrary URL or file
through ``putSource`` (discodo-reference.md §8.2, "putSource ... SSRF").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import msgspec

from audionode.errors import BadRequest

_TAG_BYTES = 16
_MAX_TOKEN = 16 * 1024


def derive_key(password: str) -> bytes:
    """A key for track tokens that is not the password itself."""
    return hmac.new(password.encode(), b"audionode track token v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(info: dict[str, Any], key: bytes) -> str:
    """Encode and sign the track's info."""
    payload = msgspec.msgpack.encode(info)
    mac = hmac.new(key, payload, hashlib.sha256).digest()[:_TAG_BYTES]
    return f"{_b64(payload)}.{_b64(mac)}"


def verify(token: Any, key: bytes, field: str = "encoded") -> dict[str, Any]:
    """Return the info of a token this node signed; :class:`BadRequest` naming ``field``
    otherwise (the same answer for malformed and forged tokens)."""
    refusal = BadRequest(f"field `{field}`: expected a track token issued by this node")
    if not isinstance(token, str) or len(token) > _MAX_TOKEN or token.count(".") != 1:
        raise refusal
    body, _, tag = token.partition(".")
    try:
        payload, mac = _unb64(body), _unb64(tag)
    except ValueError:
        raise refusal from None
    expected = hmac.new(key, payload, hashlib.sha256).digest()[:_TAG_BYTES]
    if not hmac.compare_digest(mac, expected):
        raise refusal
    info = msgspec.msgpack.decode(payload)
    if not isinstance(info, dict):
        raise refusal
    return info
