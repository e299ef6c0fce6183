"""The one place that checks credentials: ``Authorization: <password>`` or ``Bearer <password>``.

Compared in constant time (``hmac.compare_digest`` over bytes) so the password cannot be
guessed from response timing. The header value is never logged.
"""

from __future__ import annotations

import hmac

from audionode.errors import Forbidden, Unauthorized

PUBLIC_PATHS = frozenset({"/", "/health", "/openapi.json", "/docs", "/dashboard"})
"""Routes that need no credentials: health checks, the API description and the two pages
(docs/API.md, "Describing the API": they hold no secret and no state; the dashboard's data
comes through ``/dashboard/ws``, which asks for the password)."""

PUBLIC_PREFIX = "/static/"
"""The pages' scripts and styles (``web/static/``), public like the pages."""

SELF_AUTHENTICATED = frozenset({"/ws", "/rpc", "/dashboard/ws"})
"""Websockets that check credentials themselves, to answer with their protocol's close code."""


def password_matches(supplied: str, password: str) -> bool:
    """Constant-time comparison (every front door's password check ends here)."""
    return hmac.compare_digest(supplied.encode(), password.encode())


def check_authorization(header: str | None, password: str) -> None:
    """Raise :class:`Unauthorized` when missing, :class:`Forbidden` when wrong."""
    if not header:
        raise Unauthorized("missing Authorization header")
    supplied = header.strip()
    scheme, _, rest = supplied.partition(" ")
    if scheme.lower() == "bearer" and rest:
        supplied = rest.strip()
    if not password_matches(supplied, password):
        raise Forbidden("wrong password in Authorization header", code="AUTHENTICATION_FAILED")
