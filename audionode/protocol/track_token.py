"""Signed track tokens: how ``putSource`` knows a track was issued by this node, recently.

A track the node hands out (``getSource``, ``searchSources``, queue listings, events) carries
``encoded = base64url(msgpack(claims)) "." base64url(HMAC-SHA256(secret, payload)[:16])`` with
``claims = {"v": 2, "iss": <node id>, "exp": <unix seconds>, "t": <track info>}``.

- The secret is random and kept in the node's state file (``state.path``), never derived from
  the password: knowing the password does not let anyone mint tokens, and changing it does not
  invalidate queues.
- Tokens expire (``control.token_ttl``): a leaked token stops opening its URL after a while.
  Tokens are signed afresh every time a track is described, so a live queue never goes stale.
- ``iss`` names the issuing node, so a token from another node is refused with a message that
  says so rather than "forged".

A client can never make the node open an arbitrary URL or file through ``putSource``
(docs/discodo.md: Discodo trusted whatever dict it was given).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import msgspec

from audionode.errors import BadRequest

VERSION = 2
_TAG_BYTES = 16
_MAX_TOKEN = 16 * 1024


class _Claims(msgspec.Struct, frozen=True):
    v: int
    iss: str
    exp: int
    t: dict[str, Any]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:_TAG_BYTES]


def sign(info: dict[str, Any], key: bytes, *, issuer: str, expires: float) -> str:
    """Encode and sign the track's info, valid until ``expires`` (unix seconds)."""
    claims = _Claims(v=VERSION, iss=issuer, exp=int(expires), t=info)
    payload = msgspec.msgpack.encode(claims)
    return f"{_b64(payload)}.{_b64(_mac(key, payload))}"


def verify(
    token: Any, key: bytes, *, issuer: str, now: float | None = None, field: str = "encoded"
) -> dict[str, Any]:
    """Return the info of a token this node signed and that has not expired.

    Raises :class:`BadRequest` naming ``field``: one answer for malformed and forged tokens,
    a precise one for another node's token or an expired one.
    """
    refusal = BadRequest(f"field `{field}`: expected a track token issued by this node")
    if not isinstance(token, str) or len(token) > _MAX_TOKEN or token.count(".") != 1:
        raise refusal
    body, _, tag = token.partition(".")
    try:
        payload, mac = _unb64(body), _unb64(tag)
    except ValueError:
        raise refusal from None
    claims = _decode(payload)
    if not hmac.compare_digest(mac, _mac(key, payload)):
        if claims is not None and claims.iss != issuer:
            raise BadRequest(
                f"field `{field}`: the track token was issued by node {claims.iss[:64]!r}, "
                f"not by this node ({issuer!r}); load the track on this node"
            )
        raise refusal
    if claims is None:
        raise refusal
    if claims.exp < (time.time() if now is None else now):
        raise BadRequest(
            f"field `{field}`: the track token expired "
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(claims.exp))}; load the track again"
        )
    return claims.t


def _decode(payload: bytes) -> _Claims | None:
    try:
        return msgspec.msgpack.decode(payload, type=_Claims)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
