"""``GET /`` and ``GET /health``: public (``GET /status`` is a route of the catalogue)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from audionode import __version__

bp = Blueprint("status")


@bp.get("/")
async def index(request: Request) -> HTTPResponse:
    return json({"name": "audionode", "version": __version__})


@bp.get("/health")
async def health(request: Request) -> HTTPResponse:
    return json({"status": "ok"})
