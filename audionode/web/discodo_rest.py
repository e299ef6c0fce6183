"""Discodo's REST routes (docs/discodo.md, "REST") plus what Discodo lacked: one generic handler.

Every route of ``protocol/discodo_routes.py`` that has an HTTP path is served by
:func:`_handler`: parse (headers, body, query and path into the route's typed command), call
the service, map the typed result. Nothing else happens here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty, json

from audionode.protocol import jsonin
from audionode.protocol.discodo_routes import ROUTES, Route, rest_request
from audionode.web.context import service_of

bp = Blueprint("discodo_rest")

Handler = Callable[..., Coroutine[Any, Any, HTTPResponse]]


def _fields(request: Request, route: Route, path: dict[str, str]) -> Any:
    """The route's input: the JSON body with the query arguments and path parameters the
    route takes (a body that is not an object is passed on, to be refused naming it)."""
    max_depth = service_of(request).config.control.max_json_depth
    body: Any = jsonin.decode(request.body, max_depth) if request.body else {}
    if not isinstance(body, dict):
        return body
    takes = {f for f in (route.wire.__struct_fields__ if route.wire else ())}
    args = {k: v[0] for k, v in request.args.items() if k in takes and v}
    return {**body, **args, **path}


def _handler(route: Route) -> Handler:
    async def handle(request: Request, **path: str) -> HTTPResponse:
        ref, command = rest_request(route, request.headers, _fields(request, route, path))
        result = await service_of(request).execute(ref, command)
        return empty() if route.reply is None else json(route.reply(result))

    handle.__name__ = f"rest_{route.name}"
    return handle


for _route in ROUTES:
    if _route.http is not None:
        _method, _path = _route.http
        bp.add_route(
            _handler(_route),
            re.sub(r"<(\w+)>", r"<\1:str>", _path),
            methods=[_method],
            name=_route.name,
        )
