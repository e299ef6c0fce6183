"""The node's OpenAPI 3.1 description, generated (pure): nothing here is a second copy of a route.

Sources, each the one place its facts live:
- the Discodo front's catalogue (``protocol/discodo_routes.py``): method and path, the input's
  wire struct (query arguments of GET routes, the JSON body of the others, minus path
  parameters), the player headers of player routes, and the reply function whose return type
  (a ``TypedDict`` of ``protocol/discodo_map.py``, or a view struct) is the reply's schema;
- the Lavalink front's table (``protocol/lavalink_routes.py``) the same way;
- :data:`NODE_ROUTES` here: the node's own routes (health, this description, the docs page,
  the dashboard and the websockets).

Schemas come from ``msgspec.json.schema_components`` over all those types at once, so bounds
(``Meta(ge=..., le=...)``), enums and required fields are the ones validation enforces.
``tests/web/test_openapi.py`` checks every route the app serves is described here, and a
schemathesis run checks the node's answers against it.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypedDict

import msgspec

from audionode.protocol import discodo_map as dm
from audionode.protocol import lavalink_map as lm
from audionode.protocol.discodo_routes import ROUTES as DISCODO_ROUTES
from audionode.protocol.discodo_routes import Route, Scope
from audionode.protocol.lavalink_routes import ROUTES as LAVALINK_ROUTES

REF = "#/components/schemas/{name}"
JSON_TYPE = "application/json"


class IndexJson(TypedDict):
    """``GET /``."""

    name: str
    version: str


class HealthJson(TypedDict):
    """``GET /health``."""

    status: str


@dataclass(frozen=True, slots=True)
class NodeRoute:
    """One of the node's own routes."""

    name: str
    method: str
    path: str
    summary: str
    reply: Any = None
    """The reply's type (JSON), or None (see ``content``)."""
    content: str = JSON_TYPE
    public: bool = False
    websocket: bool = False
    """A websocket: described as ``GET`` answering ``101 Switching Protocols``."""
    params: tuple[dict[str, Any], ...] = ()


NODE_ROUTES: tuple[NodeRoute, ...] = (
    NodeRoute("index", "GET", "/", "Name and version.", IndexJson, public=True),
    NodeRoute("health", "GET", "/health", "Liveness: always ok.", HealthJson, public=True),
    NodeRoute("openapi", "GET", "/openapi.json",
              "This description (public: it holds no secret and no state).",
              dict[str, Any], public=True),
    NodeRoute("docs", "GET", "/docs", "The API reference page (renders /openapi.json).",
              content="text/html", public=True),
    NodeRoute("dashboard", "GET", "/dashboard",
              "The live dashboard page (its data needs the password: /dashboard/ws).",
              content="text/html", public=True),
    NodeRoute("staticAsset", "GET", "/static/{name}",
              "The pages' scripts and styles, served by the node itself (no CDN).",
              content="text/plain", public=True,
              params=({"name": "name", "in": "path", "required": True,
                       "schema": {"type": "string", "maxLength": 64}},)),
    NodeRoute("metrics", "GET", "/metrics",
              "Prometheus metrics (text format 0.0.4; docs/OPERATIONS.md). The password, or "
              "'Bearer <metrics_token>' when metrics_token is set.",
              content="text/plain"),
    NodeRoute("discodoWebsocket", "GET", "/ws",
              "The Discodo control websocket (docs/API.md); Authorization on the upgrade.",
              websocket=True),
    NodeRoute("rpcWebsocket", "GET", "/rpc",
              "The RPC websocket (docs/API.md, seed 003); Authorization on the upgrade.",
              websocket=True),
    NodeRoute("lavalinkWebsocket", "GET", "/v4/websocket",
              "Lavalink's websocket: Authorization, User-Id, Client-Name, Session-Id headers.",
              websocket=True),
    NodeRoute("dashboardWebsocket", "GET", "/dashboard/ws",
              "The dashboard's live feed: the first text frame is {\"password\": ...}; then "
              "a status frame every second.", websocket=True, public=True),
)  # fmt: skip

PLAYER_HEADERS: tuple[tuple[str, bool, str], ...] = (
    ("User-ID", True, "the bot's user id"),
    ("Guild-ID", True, "the guild of the voice client"),
    ("Shard-ID", False, "the bot's shard (optional: the node finds the session)"),
    ("VoiceClient-ID", True, "the voice client's id (VC_CREATED)"),
)
"""The headers naming a Discodo voice client (``protocol/discodo.py``, ``player_ref``)."""

_ID = {"type": "string", "pattern": r"^[0-9]{1,19}$"}


@dataclass
class _Builder:
    """Collects types to turn into components, then fills their references in."""

    types: list[Any] = field(default_factory=list)
    slots: list[tuple[dict[str, Any], str]] = field(default_factory=list)

    def schema(self, typ: Any) -> dict[str, Any]:
        """A placeholder filled with ``typ``'s schema by :meth:`finish`."""
        holder: dict[str, Any] = {}
        members = _union_members(typ)
        if members is None:
            self.types.append(typ)
            self.slots.append((holder, "self"))
            return holder
        holder["anyOf"] = [self.schema(m) for m in members]
        return holder

    def finish(self) -> dict[str, Any]:
        refs, components = msgspec.json.schema_components(self.types, ref_template=REF)
        for (holder, _), ref in zip(self.slots, refs, strict=True):
            holder.update(ref)
        return components


def _union_members(typ: Any) -> list[Any] | None:
    """A top-level union of several dict-like types (msgspec refuses those as one type)."""
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        args = typing.get_args(typ)
        if sum(1 for a in args if _is_dict_like(a)) > 1:
            return list(args)
    return None


def _is_dict_like(typ: Any) -> bool:
    return typing.is_typeddict(typ) or (isinstance(typ, type) and issubclass(typ, msgspec.Struct))


def reply_type(reply: Callable[..., Any]) -> Any:
    """The reply's schema type: the map function's return annotation; for
    ``Annotated[dict, SomeStruct]`` the struct (the function returns its builtins)."""
    hint = typing.get_type_hints(reply, include_extras=True)["return"]
    if typing.get_origin(hint) is typing.Annotated:
        shape = next((a for a in hint.__metadata__ if isinstance(a, type)), None)
        if shape is not None:
            return shape
        return typing.get_args(hint)[0]
    return hint


def openapi_path(path: str) -> str:
    """``/queue/<key>`` or ``/x/<id:str>`` → ``/queue/{key}``."""
    return re.sub(r"<(\w+)(?::\w+)?>", r"{\1}", path)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {JSON_TYPE: {"schema": schema}}}


def _errors(statuses: Iterable[int], schema_name: str, what: str) -> dict[str, Any]:
    ref = {"$ref": REF.format(name=schema_name)}
    return {str(s): {"description": f"{what} error body", **_json(ref)} for s in statuses}


TOO_LARGE = {
    "description": "a body over control.max_body_bytes (Lavalink's body), or a request head "
    "over Sanic's limit: its path unread, the node's own body",
    **_json({"anyOf": [{"$ref": REF.format(name="ErrorJson")},
                       {"$ref": REF.format(name="RestErrorJson")}]}),
}  # fmt: skip
DISCODO_ERRORS = (400, 401, 403, 404, 409, 413, 422)
"""Every status our errors carry besides 5xx (``audionode/errors.py``)."""


def _discodo_operation(b: _Builder, route: Route) -> tuple[str, str, dict[str, Any]]:
    assert route.http is not None
    method, raw_path = route.http
    path = openapi_path(raw_path)
    in_path = re.findall(r"{(\w+)}", path)
    fields = [] if route.wire is None else list(msgspec.structs.fields(route.wire))
    params: list[dict[str, Any]] = []
    body_fields = []
    wire_schema = b.schema(route.wire) if route.wire is not None else None
    for f in fields:
        if f.encode_name in in_path:
            params.append({"name": f.encode_name, "in": "path", "required": True,
                           "schema": b.schema(f.type)})  # fmt: skip
        elif method == "GET":
            params.append({"name": f.encode_name, "in": "query", "required": f.required,
                           "schema": b.schema(f.type)})  # fmt: skip
        else:
            body_fields.append(f)
    if route.scope is Scope.PLAYER:
        for name, required, text in PLAYER_HEADERS:
            params.append(
                {"name": name, "in": "header", "required": required, "description": text,
                 "schema": _ID if name != "VoiceClient-ID" else {"type": "string",
                                                                  "maxLength": 128}}
            )  # fmt: skip
    op: dict[str, Any] = {
        "operationId": route.name,
        "tags": ["Discodo"],
        "summary": (route.build.__doc__ or "").strip().split("\n")[0] or route.name,
        "parameters": params,
    }
    if body_fields and wire_schema is not None:
        body = {"$path_fields": in_path, "$wire": wire_schema}
        required = any(f.required for f in body_fields if f.encode_name not in in_path)
        op["requestBody"] = {"required": required, **_json(body)}
    ok: dict[str, Any]
    if route.reply is None:
        ok = {"204": {"description": "done"}}
    else:
        ok = {"200": {"description": "the reply", **_json(b.schema(reply_type(route.reply)))}}
    op["responses"] = {**ok, **_errors((*DISCODO_ERRORS, 502), "RestErrorJson", "Discodo")}
    return method, path, op


def _lavalink_operations(b: _Builder) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for r in LAVALINK_ROUTES:
        path = openapi_path(r.path)
        params: list[dict[str, Any]] = [
            {"name": _camel(p), "in": "path", "required": True,
             "schema": {"type": "string", "maxLength": 128}}
            for p in re.findall(r"{(\w+)}", path)
        ]  # fmt: skip
        path = re.sub(r"{(\w+)}", lambda mt: "{" + _camel(mt.group(1)) + "}", path)
        for q in r.query:
            params.append({"name": q.name, "in": "query", "required": q.required,
                           "description": q.description, "schema": q.schema})  # fmt: skip
        op: dict[str, Any] = {
            "operationId": r.name,
            "tags": ["Lavalink"],
            "summary": r.summary,
            "parameters": params,
        }
        if r.body is not None:
            op["requestBody"] = {"required": True, **_json(b.schema(r.body))}
        ok: dict[str, Any]
        if r.text:
            ok = {"200": {"description": "the reply",
                          "content": {"text/plain": {"schema": {"type": "string"}}}}}  # fmt: skip
        elif r.reply is None:
            ok = {"204": {"description": "done"}}
        else:
            shape = b.schema(reply_type(r.reply))
            schema = {"type": "array", "items": shape} if r.many else shape
            ok = {"200": {"description": "the reply", **_json(schema)}}
        op["responses"] = {**ok, **_errors(r.errors, "ErrorJson", "Lavalink"), "413": TOO_LARGE}
        out.append((r.method, path, op))
    return out


def _node_operations(b: _Builder) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for r in NODE_ROUTES:
        op: dict[str, Any] = {"operationId": r.name, "tags": ["Node"], "summary": r.summary}
        if r.params:
            op["parameters"] = list(r.params)
        if r.public:
            op["security"] = []
        if r.websocket:
            op["x-websocket"] = True
            op["responses"] = {"101": {"description": "switching to the websocket protocol"}}
            if not r.public:
                op["responses"].update(_errors((401,), "RestErrorJson", "handshake"))
        elif r.content == JSON_TYPE:
            op["responses"] = {"200": {"description": "the reply", **_json(b.schema(r.reply))}}
        else:
            content = {r.content: {"schema": {"type": "string"}}}
            op["responses"] = {"200": {"description": "the page", "content": content}}
            if "parameters" in op:
                op["responses"].update(_errors((404,), "RestErrorJson", "Discodo"))
        if not r.public:
            op["responses"].update(_errors((401, 403), "RestErrorJson", "auth"))
        out.append((r.method, r.path, op))
    return out


def _short_names(components: dict[str, Any]) -> dict[str, str]:
    """msgspec qualifies clashing names with their module; the fronts' names read better."""
    prefix = {"discodo_map": "Discodo", "lavalink_map": "Lavalink"}
    renames = {}
    for name in components:
        if "." in name:
            module, short = name.rsplit(".", 1)
            renames[name] = prefix.get(module.rsplit(".", 1)[-1], "") + short
    return renames


def _rewrite(value: Any, renames: dict[str, str], components: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        if "$wire" in value:  # a body without its path parameters
            return _without(value["$wire"], value["$path_fields"], components)
        out = {}
        for k, v in value.items():
            if k == "$ref" and isinstance(v, str):
                name = v.rsplit("/", 1)[-1]
                v = REF.format(name=renames.get(name, name))
            out[k] = _rewrite(v, renames, components)
        return out
    if isinstance(value, list):
        return [_rewrite(v, renames, components) for v in value]
    return value


def _without(ref: dict[str, Any], names: list[str], components: dict[str, Any]) -> Any:
    """A body struct's schema minus the fields a path parameter gives (the path wins)."""
    if not names:
        return ref
    schema = dict(components[ref["$ref"].rsplit("/", 1)[-1]])
    schema["properties"] = {k: v for k, v in schema["properties"].items() if k not in names}
    schema["required"] = [k for k in schema.get("required", ()) if k not in names]
    schema["title"] = f"{schema['title']} (body)"
    return schema


def build_spec(version: str, components_extra: Iterable[Any] = ()) -> dict[str, Any]:
    """The whole description; ``version``: the node's."""
    b = _Builder()
    b.schema(dm.RestErrorJson)
    b.schema(lm.ErrorJson)
    for extra in components_extra:
        b.schema(extra)
    operations = [_discodo_operation(b, r) for r in DISCODO_ROUTES if r.http is not None]
    operations += _lavalink_operations(b)
    operations += _node_operations(b)
    components = b.finish()
    paths: dict[str, dict[str, Any]] = {}
    for method, path, op in operations:
        paths.setdefault(path, {})[method.lower()] = op
    renames = _short_names(components)
    spec = {
        "openapi": "3.1.0",
        "info": {
            "title": "audionode",
            "version": version,
            "description": (
                "An audio node for Discord bots: the Discodo front (REST here, websocket /ws), "
                "the Lavalink v4 front (/v4/...), and the node's own routes. Generated from "
                "the node's typed routes and their msgspec schemas; docs/API.md explains them."
            ),
        },
        "security": [{"password": []}],
        "tags": [
            {"name": "Discodo", "description": "Discodo 3's REST routes and ours in its style"},
            {"name": "Lavalink", "description": "Lavalink v4's REST routes"},
            {"name": "Node", "description": "Health, this description, pages, websockets"},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "password": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "The node's password, bare or as `Bearer <password>`.",
                }
            },
            "schemas": {renames.get(k, k): v for k, v in components.items()},
        },
    }
    result: dict[str, Any] = _rewrite(spec, renames, components)
    return result
