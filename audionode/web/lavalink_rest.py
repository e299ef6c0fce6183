"""Lavalink v4's REST routes (docs/LAVALINK.md): parse (``protocol/lavalink.py``), call the
service, map (``protocol/lavalink_map.py``). Every failure, unknown ``/v4/`` paths included,
gets Lavalink's error body (``web/lavalink_errors.py``)."""

from __future__ import annotations

import time
from typing import Any

from sanic import Blueprint, Request
from sanic.exceptions import MethodNotAllowed
from sanic.response import HTTPResponse, empty, json, text

from audionode.control import commands as c
from audionode.errors import AudionodeError, BadRequest, Conflict, NotFound
from audionode.protocol import jsonin
from audionode.protocol import lavalink as ll
from audionode.protocol import lavalink_map as m
from audionode.protocol import lavaplayer_track as lp
from audionode.protocol.lavalink_routes import allowed_methods
from audionode.web.context import service_of
from audionode.web.lavalink_errors import lavalink_error
from audionode.web.lavalink_ws import sockets_of

bp = Blueprint("lavalink_rest")
bp.exception(Exception)(lavalink_error)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _body(request: Request) -> Any:
    depth = service_of(request).config.control.max_json_depth
    return jsonin.decode(request.body, depth) if request.body else None


def _player_ref(request: Request, session_id: str, guild_id: str) -> c.PlayerRef:
    ref = service_of(request).named_session(session_id)
    guild = ll.snowflake(guild_id, "path `guildId`")
    return c.PlayerRef(user_id=ref.user_id, guild_id=guild, session_id=session_id)


# --- the node ---------------------------------------------------------------------------------


@bp.get("/version")
async def version(request: Request) -> HTTPResponse:
    return text(ll.VERSION)


@bp.get("/v4/info")
async def info(request: Request) -> HTTPResponse:
    return json(m.info(await service_of(request).source_names(None, c.GetSources())))


@bp.get("/v4/stats")
async def stats(request: Request) -> HTTPResponse:
    return json(m.stats(await service_of(request).status(None, c.GetStatus())))


# --- tracks -----------------------------------------------------------------------------------


@bp.get("/v4/loadtracks")
async def load_tracks(request: Request) -> HTTPResponse:
    identifier = request.args.get("identifier")
    if identifier is None:
        raise BadRequest("query argument `identifier` is required")
    if not identifier.strip():
        return json({"loadType": "empty", "data": {}})
    resolved = await service_of(request).resolve(None, c.Resolve(query=identifier))
    return json(m.load_result(resolved))


@bp.get("/v4/decodetrack")
async def decode_track(request: Request) -> HTTPResponse:
    given = request.args.get("encodedTrack") or request.args.get("track")
    if not given:
        raise BadRequest("No track to decode provided")
    return json(m.decoded(given, lp.decode(given, "encodedTrack")))


@bp.post("/v4/decodetracks")
async def decode_tracks(request: Request) -> HTTPResponse:
    given = ll.encoded_tracks(_body(request))
    return json([m.decoded(t, lp.decode(t, f"[{i}]")) for i, t in enumerate(given)])


# --- sessions and players ---------------------------------------------------------------------


@bp.patch("/v4/sessions/<session_id:str>")
async def update_session(request: Request, session_id: str) -> HTTPResponse:
    service = service_of(request)
    ref = service.named_session(session_id)
    cmd = ll.session_update(_body(request), service.config.lavalink.max_resume_timeout)
    return json(m.session(await service.configure_session(ref, cmd)))


@bp.get("/v4/sessions/<session_id:str>/players")
async def get_players(request: Request, session_id: str) -> HTTPResponse:
    service = service_of(request)
    views = await service.players(service.named_session(session_id), c.GetPlayers())
    now = _now_ms()
    return json([m.player(v, now) for v in views])


@bp.get("/v4/sessions/<session_id:str>/players/<guild_id:str>")
async def get_player(request: Request, session_id: str, guild_id: str) -> HTTPResponse:
    ref = _player_ref(request, session_id, guild_id)
    return json(m.player(await service_of(request).state(ref, c.GetState()), _now_ms()))


@bp.patch("/v4/sessions/<session_id:str>/players/<guild_id:str>")
async def update_player(request: Request, session_id: str, guild_id: str) -> HTTPResponse:
    service = service_of(request)
    ref = _player_ref(request, session_id, guild_id)
    no_replace = ll.flag(request.args.get("noReplace"), "noReplace")
    plan = ll.player_update(_body(request), ref.guild_id, no_replace)
    for step in plan.steps:
        key = ref.session if step.scope is ll.Scope.SESSION else ref
        try:
            await service.execute(key, step.command)
        except AudionodeError as e:
            if not (step.if_playing and e.code == "NOT_PLAYING"):
                raise
    view = await service.state(ref, c.GetState())
    sock = sockets_of(request.app).get(session_id)
    if sock is not None:
        sock.observe(view, plan.refresh)
    return json(m.player(view, _now_ms()))


@bp.delete("/v4/sessions/<session_id:str>/players/<guild_id:str>")
async def destroy_player(request: Request, session_id: str, guild_id: str) -> HTTPResponse:
    ref = _player_ref(request, session_id, guild_id)
    try:
        await service_of(request).destroy(ref, c.Destroy())
    except NotFound as e:  # Lavalink answers 204 for a player it does not have
        if e.code != "VOICE_CLIENT_NOT_FOUND":
            raise
    return empty()


# --- the route planner: none is configured ------------------------------------------------------
# Lavalink answers the two "free" routes with 500 when it has no route planner; a 500 means a
# fault of the server, and this is none, so they answer 409 with Lavalink's message (clients
# treat any non-2xx as the failure it is: docs/LAVALINK.md).


_NO_PLANNER = "Can't access disabled route planner"


@bp.get("/v4/routeplanner/status")
async def route_planner_status(request: Request) -> HTTPResponse:
    return empty()


@bp.post("/v4/routeplanner/free/address")
async def route_planner_free_address(request: Request) -> HTTPResponse:
    raise Conflict(_NO_PLANNER)


@bp.post("/v4/routeplanner/free/all")
async def route_planner_free_all(request: Request) -> HTTPResponse:
    raise Conflict(_NO_PLANNER)


# --- everything else: Lavalink's 404 and 405 bodies ----------------------------------------------

_METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})
_ROUTES = allowed_methods()  # protocol/lavalink_routes.py: the routes above, described


async def unknown(request: Request, rest: str) -> HTTPResponse:
    raise NotFound(f"no Lavalink route {request.method} {request.path}")


async def wrong_method(request: Request, **_: str) -> HTTPResponse:
    raise MethodNotAllowed(
        f"Method {request.method} not allowed for URL {request.path}", request.method, []
    )


bp.add_route(unknown, "/v4/<rest:path>", methods=sorted(_METHODS))
for _path, _allowed in _ROUTES.items():
    bp.add_route(wrong_method, _path, methods=sorted(_METHODS - _allowed), name=f"405{_path}")
