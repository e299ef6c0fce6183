"""The one place that maps exceptions to HTTP error bodies (``protocol/discodo_map.rest_error``):
``{"error": {"code", "message"}, "status", "description", "message"}``."""

from __future__ import annotations

from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse, json

from audionode.errors import AudionodeError, for_peer
from audionode.protocol import jsonin
from audionode.protocol.discodo_map import rest_error
from audionode.web.lavalink_errors import lavalink_error
from audionode.web.retry import retry_headers

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


def _as_error(request: Request, exc: Exception) -> tuple[int, AudionodeError]:
    if isinstance(exc, SanicException):
        status = exc.status_code
        return status, AudionodeError(str(exc), code=_SANIC_CODES.get(status, "HTTP_ERROR"))
    if isinstance(exc, jsonin.NotJson):
        return 400, AudionodeError(str(exc), code="BAD_REQUEST")
    err = for_peer(exc, f"HTTP {request.method} {request.path}")
    return err.status, err


def _lavalink_path(path: str) -> bool:
    return path == "/version" or path.startswith("/v4/")


async def _handle(request: Request, exc: Exception) -> HTTPResponse:
    if _lavalink_path(request.path):
        # What the Lavalink blueprints' own handler does not see (the auth check runs before
        # routing) still gets Lavalink's error body: its clients parse no other.
        return await lavalink_error(request, exc)
    status, err = _as_error(request, exc)
    return json(rest_error(status, err), status=status, headers=retry_headers(err))


def install(app: Sanic) -> None:  # type: ignore[type-arg]
    """Route every exception of ``app`` through :func:`_handle`."""
    app.error_handler.add(Exception, _handle)
