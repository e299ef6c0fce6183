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

SELF_AUTHENTICATED = frozenset({"/ws", "/rpc", "/dashboard/ws", "/metrics"})
"""Routes that check credentials themselves: the websockets, to answer with their protocol's
close code, and ``/metrics``, which also takes the ``metrics_token`` (web/metrics.py)."""


def password_matches(supplied: str, password: str) -> bool:
    """Constant-time comparison (every front door's password check ends here)."""
    return hmac.compare_digest(supplied.encode(), password.encode())


def check_metrics_authorization(header: str | None, password: str, token: str) -> None:
    """``/metrics``: the password (as everywhere), or ``Bearer <metrics_token>`` when a token
    is configured; both compared in constant time."""
    if header and token:
        scheme, _, rest = header.strip().partition(" ")
        if scheme.lower() == "bearer" and rest and password_matches(rest.strip(), token):
            return
    check_authorization(header, password)


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
