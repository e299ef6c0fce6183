"""Every failure on a Lavalink route answered with Lavalink's error body
(``protocol/lavalink_map.error_body``): ``{timestamp, status, error, message, path}``, plus
``trace`` when the request asked ``?trace=true``."""

from __future__ import annotations

import time

from sanic import Request
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse, json

from audionode.errors import AudionodeError, Unauthorized, for_peer
from audionode.protocol import jsonin
from audionode.protocol.lavalink import flag
from audionode.protocol.lavalink_map import error_body
from audionode.web.retry import retry_headers

WEBSOCKET = "/v4/websocket"


def _error(request: Request, exc: Exception) -> tuple[int, AudionodeError]:
    if isinstance(exc, SanicException):
        return exc.status_code, AudionodeError(str(exc), code="HTTP_ERROR")
    if isinstance(exc, jsonin.NotJson):
        return 400, AudionodeError(str(exc), code="BAD_REQUEST")
    err = for_peer(exc, f"Lavalink {request.method} {request.path}")
    if request.path == WEBSOCKET and err.status == 403:  # Lavalink's handshake says 401
        return 401, Unauthorized(err.message)
    return err.status, err


async def lavalink_error(request: Request, exc: Exception) -> HTTPResponse:
    """The exception handler of the Lavalink blueprints."""
    status, err = _error(request, exc)
    try:
        trace = flag(request.args.get("trace"), "trace")
    except AudionodeError:
        trace = False
    body = error_body(status, err, request.path, int(time.time() * 1000), trace)
    return json(body, status=status, headers=retry_headers(err))
