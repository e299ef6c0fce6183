"""``GET /``, ``GET /health`` (public) and ``GET /status`` (authenticated)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from audionode import __version__
from audionode.web.context import service_of

bp = Blueprint("status")


@bp.get("/")
async def index(request: Request) -> HTTPResponse:
    return json({"name": "audionode", "version": __version__})


@bp.get("/health")
async def health(request: Request) -> HTTPResponse:
    return json({"status": "ok"})


@bp.get("/status")
async def status(request: Request) -> HTTPResponse:
    return json(service_of(request).status())
