"""The API description and the two pages: ``/openapi.json``, ``/docs``, ``/dashboard`` and the
assets they load from ``/static/`` (``web/static/``, installed with the package: no CDN, no
build step), plus ``/dashboard/ws``, the dashboard's live feed.

``/openapi.json``, the pages and their assets are public (docs/API.md, "Describing the API"):
they hold no secret and no state. The feed asks for the password in its first frame, never in
the URL (a query string ends up in access logs), and sends the service's overview
(``service/overview.py``) once a second.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import msgspec
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json, raw
from sanic.server.websockets.impl import WebsocketImplProtocol
from websockets.exceptions import ConnectionClosed

from audionode import __version__
from audionode.errors import AudionodeError, NotFound
from audionode.protocol import jsonin
from audionode.protocol.openapi import build_spec
from audionode.web.auth import password_matches
from audionode.web.context import service_of

bp = Blueprint("pages")

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The pages load nothing but the node's own assets (a test of the page would notice a CDN)."""
FEED_INTERVAL = 1.0
"""Seconds between two overviews on ``/dashboard/ws``."""
AUTH_TIMEOUT = 10.0
"""Seconds a dashboard socket has to send its password."""
CLOSE_AUTH_FAILED = 4001


@functools.cache
def _assets() -> dict[str, tuple[bytes, str]]:
    """Every file of ``web/static/`` by name, read once."""
    folder = resources.files("audionode.web") / "static"
    out = {}
    for item in folder.iterdir():
        suffix = "." + item.name.rsplit(".", 1)[-1]
        if item.is_file() and suffix in _TYPES:
            out[item.name] = (item.read_bytes(), _TYPES[suffix])
    return out


@functools.cache
def spec() -> dict[str, Any]:
    """The OpenAPI description (``protocol/openapi.py``), built once."""
    return build_spec(__version__)


def _asset(name: str) -> HTTPResponse:
    found = _assets().get(name)
    if found is None:
        raise NotFound(f"no asset {name[:64]!r}")
    body, content_type = found
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
               "Cache-Control": "no-cache"}  # fmt: skip
    return raw(body, content_type=content_type, headers=headers)


@bp.get("/openapi.json")
async def openapi(request: Request) -> HTTPResponse:
    return json(spec())


@bp.get("/docs")
async def docs(request: Request) -> HTTPResponse:
    return _asset("docs.html")


@bp.get("/dashboard")
async def dashboard(request: Request) -> HTTPResponse:
    return _asset("dashboard.html")


@bp.get("/static/<name:str>")
async def static(request: Request, name: str) -> HTTPResponse:
    return _asset(name)


def _password(frame: str | bytes | None, max_depth: int) -> str | None:
    """The password of the feed's first frame ``{"password": "..."}``, or None."""
    if frame is None:
        return None
    try:
        value = jsonin.decode(frame.encode() if isinstance(frame, str) else frame, max_depth)
    except (jsonin.NotJson, AudionodeError):
        return None
    password = value.get("password") if isinstance(value, dict) else None
    return password if isinstance(password, str) else None


async def feed(request: Request, ws: WebsocketImplProtocol) -> None:
    service = service_of(request)
    try:
        first = await ws.recv(timeout=AUTH_TIMEOUT)
    except ConnectionClosed:
        return
    supplied = _password(first, service.config.control.max_json_depth)
    if supplied is None or not password_matches(supplied, service.config.password):
        await ws.send(msgspec.json.encode({"error": "wrong or missing password"}).decode())
        await ws.close(CLOSE_AUTH_FAILED, "authentication failed")
        return
    try:
        while True:
            view = await service.overview()
            await ws.send(msgspec.json.encode({"overview": view}).decode())
            # A frame from the page is ignored; its silence is the wait.
            await ws.recv(timeout=FEED_INTERVAL)
    except ConnectionClosed:
        return


bp.add_websocket_route(feed, "/dashboard/ws")
