"""The one place that checks credentials: ``Authorization: <password>`` or ``Bearer <password>``.

Compared in constant time (``hmac.compare_digest`` over bytes) so the password cannot be
guessed from response timing. The header value is never logged.
"""

from __future__ import annotations

import hmac

from audionode.errors import Forbidden, Unauthorized

PUBLIC_PATHS = frozenset({"/", "/health"})
"""Routes that need no credentials (health checks)."""


def check_authorization(header: str | None, password: str) -> None:
    """Raise :class:`Unauthorized` when missing, :class:`Forbidden` when wrong."""
    if not header:
        raise Unauthorized("missing Authorization header")
    supplied = header.strip()
    scheme, _, rest = supplied.partition(" ")
    if scheme.lower() == "bearer" and rest:
        supplied = rest.strip()
    if not hmac.compare_digest(supplied.encode(), password.encode()):
        raise Forbidden("wrong password in Authorization header", code="AUTHENTICATION_FAILED")
