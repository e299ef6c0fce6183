"""The Lavalink v4 front's REST routes as data: what ``web/lavalink_rest.py`` serves, described.

Each :class:`LavalinkRoute` names its input (query arguments, the body's wire struct from
``protocol/lavalink.py``) and the ``protocol/lavalink_map.py`` function whose return type is the
reply's shape. The REST driver takes its table of allowed methods (Lavalink's 405s) from here
and ``protocol/openapi.py`` describes every route from it, so the two cannot drift apart; a test
(tests/web/test_openapi.py) checks that the app serves exactly these routes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from audionode.protocol import lavalink as ll
from audionode.protocol import lavalink_map as m


@dataclass(frozen=True, slots=True)
class Query:
    """A query argument; ``schema``: its JSON schema (arguments arrive as text)."""

    name: str
    schema: dict[str, Any]
    required: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class LavalinkRoute:
    name: str
    method: str
    path: str
    """In Sanic's syntax (``<session_id:str>``); ``protocol/openapi.py`` rewrites it."""
    summary: str
    reply: Callable[..., Any] | None = None
    """Its return annotation is the reply's schema; None: 204 No Content."""
    many: bool = False
    """The reply is a JSON array of what ``reply`` returns."""
    body: Any = None
    """The JSON body's type (a wire struct, or e.g. ``list[str]``)."""
    query: tuple[Query, ...] = ()
    text: bool = False
    """The reply is ``text/plain`` (``GET /version``)."""
    errors: tuple[int, ...] = (400, 401, 403, 404)
    """Statuses of the error body this route answers with."""


_BOOL = {"type": "string", "enum": ["true", "false", "True", "False"]}
TRACE = Query("trace", _BOOL, description="`true` adds our error code to error bodies")
SESSION = "/v4/sessions/<session_id:str>"
PLAYER = f"{SESSION}/players/<guild_id:str>"

ROUTES: tuple[LavalinkRoute, ...] = (
    LavalinkRoute("lavalinkVersion", "GET", "/version", "The Lavalink API version (text).",
                  text=True, errors=(401, 403)),
    LavalinkRoute("lavalinkInfo", "GET", "/v4/info", "Versions, sources and filters.", m.info),
    LavalinkRoute("lavalinkStats", "GET", "/v4/stats", "Players, uptime, memory and CPU.",
                  m.stats),
    LavalinkRoute(
        "loadTracks", "GET", "/v4/loadtracks", "Resolve an identifier or a search query.",
        m.load_result,
        query=(Query("identifier", {"type": "string", "maxLength": 2000}, True,
                     "a URL, or a search such as `ytsearch:...`"),),
        errors=(400, 401, 403, 404, 502),
    ),
    LavalinkRoute(
        "decodeTrack", "GET", "/v4/decodetrack", "Decode one encoded track.", m.decoded,
        query=(Query("encodedTrack", {"type": "string", "maxLength": 16384}, True,
                     "Lavaplayer's base64 form (`track` is accepted too)"),),
    ),
    LavalinkRoute("decodeTracks", "POST", "/v4/decodetracks", "Decode encoded tracks.",
                  m.decoded, many=True, body=list[str]),
    LavalinkRoute("updateSession", "PATCH", SESSION, "Set resuming and its timeout (s).",
                  m.session, body=ll.SessionUpdate),
    LavalinkRoute("getPlayers", "GET", f"{SESSION}/players", "The session's players.",
                  m.player, many=True),
    LavalinkRoute("getPlayer", "GET", PLAYER, "One player.", m.player),
    LavalinkRoute(
        "updatePlayer", "PATCH", PLAYER,
        "Create or update a player: voice, track, position, end time, volume, pause, filters.",
        m.player, body=ll.PlayerUpdate,
        query=(Query("noReplace", _BOOL, description="keep a playing track"),),
        errors=(400, 401, 403, 404, 409, 502),
    ),
    LavalinkRoute("destroyPlayer", "DELETE", PLAYER, "Destroy a player (204 if it is absent)."),
    LavalinkRoute("routePlannerStatus", "GET", "/v4/routeplanner/status",
                  "No route planner is configured: 204.", errors=(401, 403)),
    LavalinkRoute("routePlannerFreeAddress", "POST", "/v4/routeplanner/free/address",
                  "Always 409: no route planner is configured (Lavalink answers 500).",
                  errors=(401, 403, 409)),
    LavalinkRoute("routePlannerFreeAll", "POST", "/v4/routeplanner/free/all",
                  "Always 409: no route planner is configured (Lavalink answers 500).",
                  errors=(401, 403, 409)),
)  # fmt: skip


def allowed_methods() -> dict[str, set[str]]:
    """``{path: methods}`` (Lavalink answers 405 for the others)."""
    out: dict[str, set[str]] = {}
    for r in ROUTES:
        out.setdefault(r.path, set()).add(r.method)
    return out
