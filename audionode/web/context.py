"""Typed access to what the app factory stored on the Sanic app."""

from __future__ import annotations

from typing import Any

from sanic import Request

from audionode.service import NodeService


def service_of(request: Request) -> NodeService:
    svc: Any = request.app.ctx.service
    assert isinstance(svc, NodeService)
    return svc
