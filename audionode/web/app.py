"""The Sanic application factory: routes, the auth check, the error mapping."""

from __future__ import annotations

import itertools

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from audionode.service import NodeService
from audionode.web import (
    discodo_rest,
    discodo_ws,
    errors,
    lavalink_rest,
    lavalink_ws,
    metrics,
    pages,
    rpc_ws,
    status,
)
from audionode.web.auth import (
    PUBLIC_PATHS,
    PUBLIC_PREFIX,
    SELF_AUTHENTICATED,
    check_authorization,
)

_serial = itertools.count()


async def _require_auth(request: Request) -> HTTPResponse | None:
    # The websockets authenticate themselves so they can answer with their close codes.
    if request.method == "NONE":
        # Sanic's stand-in for a request whose head it could not read (over the size limit):
        # it never reaches a handler; let its own error (413) answer, not a missing header.
        return None
    path = request.path
    if path in PUBLIC_PATHS or path in SELF_AUTHENTICATED or path.startswith(PUBLIC_PREFIX):
        return None
    check_authorization(
        request.headers.get("authorization"), request.app.ctx.service.config.password
    )
    return None


def create_app(service: NodeService) -> Sanic:  # type: ignore[type-arg]
    """Build the app around ``service``. Several apps may live in one process (tests)."""
    app: Sanic = Sanic(f"audionode_{next(_serial)}", configure_logging=False)  # type: ignore[type-arg]
    # TouchUp rewrites Sanic's class methods once per process; with several apps it breaks.
    app.config.TOUCHUP = False
    limits = service.config.control
    app.config.REQUEST_MAX_SIZE = limits.max_body_bytes
    app.config.WEBSOCKET_MAX_SIZE = limits.max_frame_bytes
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.ctx.service = service
    app.on_request(_require_auth)
    errors.install(app)
    app.blueprint(status.bp)
    app.blueprint(discodo_ws.bp)
    app.blueprint(discodo_rest.bp)
    app.blueprint(rpc_ws.bp)
    app.blueprint(lavalink_ws.bp)
    app.blueprint(lavalink_rest.bp)
    metrics.install(app)
    app.blueprint(pages.bp)
    return app
