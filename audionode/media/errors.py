"""Turning libav exceptions into one-line messages for end users."""

from __future__ import annotations

import av


def describe_av_error(exc: BaseException) -> str:
    """``Server returned 403 Forbidden``, ``Connection refused``, ``Invalid data found ...``.

    libav's messages carry the URL (which may hold a signed token), so only the reason is kept.
    """
    if isinstance(exc, av.error.FFmpegError):
        reason = exc.strerror or type(exc).__name__
        return str(reason).rstrip(".")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
