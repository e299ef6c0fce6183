"""The ``Retry-After`` header of errors that say when to come back, for every front's errors."""

from __future__ import annotations

from audionode.errors import AudionodeError, Unavailable


def retry_headers(err: AudionodeError) -> dict[str, str]:
    """``Retry-After`` for an error that says when to come back (a node at capacity)."""
    if isinstance(err, Unavailable):
        return {"Retry-After": str(err.retry_after)}
    return {}
