"""The one place that maps exceptions to wire errors: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging

from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse, json

from audionode.errors import AudionodeError

log = logging.getLogger(__name__)

_SANIC_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT",
    413: "PAYLOAD_TOO_LARGE",
    503: "SERVICE_UNAVAILABLE",
}


def error_response(status: int, code: str, message: str) -> HTTPResponse:
    """Every error body of every route has this shape."""
    return json({"error": {"code": code, "message": message}}, status=status)


async def _handle(request: Request, exc: Exception) -> HTTPResponse:
    if isinstance(exc, AudionodeError):
        return error_response(exc.status, exc.code, exc.message)
    if isinstance(exc, SanicException):
        status = exc.status_code
        if status >= 500:
            log.error("HTTP %s %s failed: %s", request.method, request.path, exc)
        return error_response(status, _SANIC_CODES.get(status, "HTTP_ERROR"), str(exc))
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return error_response(500, "INTERNAL", "internal error; see the node's log")


def install(app: Sanic) -> None:  # type: ignore[type-arg]
    """Route every exception of ``app`` through :func:`_handle`."""
    app.error_handler.add(Exception, _handle)
