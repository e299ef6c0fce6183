"""``GET /metrics`` (Prometheus text format) and the hooks that count requests and websockets.

Thin: the metrics live in ``audionode/observe/``; this module only feeds them what only the
web layer sees (each answered request's route template and status, each accepted websocket)
and answers the scrape. Auth: the node password, or ``Bearer <metrics_token>`` when that key
is set (docs/OPERATIONS.md).
"""

from __future__ import annotations

from typing import Any

from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse, HTTPResponse, raw

from audionode.observe import NodeMetrics
from audionode.observe.metrics import CONTENT_TYPE
from audionode.web.auth import check_metrics_authorization
from audionode.web.context import service_of

FRONTS = {"/ws": "discodo", "/rpc": "rpc", "/v4/websocket": "lavalink"}
"""Websocket path -> front door label."""


def metrics_of(request: Request) -> NodeMetrics:
    m: Any = request.app.ctx.metrics
    assert isinstance(m, NodeMetrics)
    return m


async def scrape(request: Request) -> HTTPResponse:
    config = service_of(request).config
    check_metrics_authorization(
        request.headers.get("authorization"), config.password, config.metrics_token
    )
    return raw(metrics_of(request).render(), content_type=CONTENT_TYPE)


async def _count_response(request: Request, response: BaseHTTPResponse) -> None:
    route = request.route
    if route is not None and route.extra.websocket:
        return  # counted as websockets (a handshake never ends in a response here)
    # The route's template (bounded), never the raw path: /v4/sessions/<session_id>/...
    template = "unmatched" if route is None else "/" + route.path
    metrics_of(request).request(request.method, template, response.status)


async def _websocket_opened(request: Request, websocket: Any) -> None:
    front = FRONTS.get(request.path, request.path)

    def is_open() -> bool:
        lost = getattr(websocket, "connection_lost_waiter", None)
        return lost is None or not lost.done()

    metrics_of(request).websocket_opened(front, is_open)


def install(app: Sanic) -> None:  # type: ignore[type-arg]
    """Add ``GET /metrics`` and the counting hooks to ``app`` (its own registry)."""
    app.ctx.metrics = NodeMetrics(app.ctx.service)
    app.add_route(scrape, "/metrics", methods=["GET"], name="metrics")
    app.register_middleware(_count_response, "response")
    app.signal("websocket.handler.before")(_websocket_opened)
