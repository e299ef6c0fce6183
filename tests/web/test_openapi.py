"""``GET /openapi.json``: generated from the routes, public, complete (every route the Sanic app
really serves is described, and nothing else), and it reveals no secret."""

from __future__ import annotations

import json
import re
from typing import Any

from audionode import __version__
from audionode.protocol.discodo_routes import ROUTES
from audionode.service import NodeService
from audionode.web.app import create_app
from tests.conftest import PASSWORD, NodeHarness, make_config

EXCLUDED_HANDLERS = {
    # Lavalink's 404 for any unknown /v4/ path and its 405 for a wrong method on a known path:
    # they exist to answer what is *not* an operation, with Lavalink's error body.
    "unknown": "catch-all /v4/<rest:path>: Lavalink's 404 body for paths it does not have",
    "wrong_method": "Lavalink's 405 body for the methods a described path does not take",
}


def _normal(path: str) -> str:
    """``/queue/<key:str>`` and ``/queue/{key}`` alike: ``/queue/{}``."""
    path = re.sub(r"<[^>]+>", "{}", path)
    return re.sub(r"{[^}]*}", "{}", path)


async def _served() -> tuple[set[tuple[str, str]], list[str]]:
    """(method, normalised path) of every route of a real app, and the excluded ones."""
    service = NodeService(make_config())
    try:
        app = create_app(service)
        served, excluded = set(), []
        for route in app.router.routes:
            name = route.handler.__name__
            if name in EXCLUDED_HANDLERS:
                excluded.append(f"{sorted(route.methods)} /{route.path}")
                continue
            for method in route.methods:
                served.add((method, _normal("/" + route.path)))
        return served, excluded
    finally:
        await service.close()


async def _spec(node: NodeHarness) -> tuple[int, dict[str, Any], str]:
    async with node.http.get(f"{node.url}/openapi.json") as r:  # no Authorization
        text = await r.text()
        return r.status, json.loads(text), text


async def test_every_served_route_is_described_and_nothing_else(node: NodeHarness) -> None:
    served, excluded = await _served()
    status, spec, _ = await _spec(node)
    assert status == 200 and spec["openapi"] == "3.1.0"
    described = {
        (method.upper(), _normal(path))
        for path, ops in spec["paths"].items()
        for method in ops
    }
    assert served - described == set(), "served but not described"
    assert described - served == set(), "described but not served"
    assert len(described) == len(served) > 50
    # The exclusions are only Lavalink's error-answering routes, each named.
    assert excluded and all("v4" in e or "version" in e for e in excluded)
    print(f"\n{len(described)} operations described; excluded (error-answering routes):")
    for e in sorted(excluded):
        print("  ", e)


async def test_description_is_public_and_holds_no_secret(node: NodeHarness) -> None:
    status, spec, text = await _spec(node)
    assert status == 200
    assert PASSWORD not in text
    assert spec["info"]["version"] == __version__
    assert spec["components"]["securitySchemes"]["password"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": spec["components"]["securitySchemes"]["password"]["description"],
    }
    assert spec["security"] == [{"password": []}]
    public = {
        p for p, ops in spec["paths"].items() for op in ops.values() if op.get("security") == []
    }
    assert {"/", "/health", "/openapi.json", "/docs", "/dashboard"} <= public
    assert "/status" not in public and "/v4/info" not in public


async def test_operations_carry_inputs_replies_and_error_bodies(node: NodeHarness) -> None:
    _, spec, _ = await _spec(node)
    paths = spec["paths"]
    schemas = spec["components"]["schemas"]
    # Discodo player routes: the four headers, body from the wire struct, reply from the map.
    seek = paths["/seek"]["post"]
    headers = {p["name"]: p["required"] for p in seek["parameters"] if p["in"] == "header"}
    assert headers == {"User-ID": True, "Guild-ID": True, "Shard-ID": False,
                       "VoiceClient-ID": True}  # fmt: skip
    body = seek["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/SeekBody"}
    offset = schemas["SeekBody"]["properties"]["offset"]
    assert offset["minimum"] == 0 and offset["maximum"] > 0  # the command's bounds
    assert "204" in seek["responses"]
    assert seek["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RestErrorJson"
    }
    assert set(schemas["RestErrorJson"]["required"]) == {"error", "status", "description",
                                                         "message"}  # fmt: skip
    # A path parameter leaves the body: POST /queue/{key} takes no `key` in its body.
    item = paths["/queue/{key}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "key" not in item["properties"] and "index" in item["properties"]
    # GET routes take their fields as query arguments.
    query = paths["/getSource"]["get"]["parameters"]
    assert [(p["name"], p["in"], p["required"]) for p in query] == [("query", "query", True)]
    # Lavalink: camelCase path parameters, its error body.
    player = paths["/v4/sessions/{sessionId}/players/{guildId}"]["patch"]
    assert {p["name"] for p in player["parameters"]} == {"sessionId", "guildId", "noReplace"}
    err = player["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
    assert err.endswith("/ErrorJson")
    assert set(schemas["ErrorJson"]["required"]) == {"timestamp", "status", "error", "message",
                                                     "path"}  # fmt: skip
    # Websockets: GET answering 101.
    for ws in ("/ws", "/rpc", "/v4/websocket", "/dashboard/ws"):
        assert "101" in paths[ws]["get"]["responses"]


async def test_every_discodo_route_of_the_catalogue_is_an_operation(node: NodeHarness) -> None:
    _, spec, _ = await _spec(node)
    ids = {op["operationId"] for ops in spec["paths"].values() for op in ops.values()}
    assert {r.name for r in ROUTES if r.http is not None} <= ids


async def test_fuzz_findings_stay_fixed(node: NodeHarness) -> None:
    """What the schemathesis run found: a Lavalink route refused by the auth check answered
    with the Discodo body, and a request head over Sanic's limit answered 401 (not 413)."""
    async with node.http.get(f"{node.url}/v4/info") as r:
        body = await r.json()
    assert r.status == 401 and body["path"] == "/v4/info" and body["error"] == "Unauthorized"
    long_url = f"{node.url}/v4/decodetrack?encodedTrack={'0' * 9000}"
    async with node.http.get(long_url, headers={"Authorization": PASSWORD}) as r:
        body = await r.json()
    assert r.status == 413 and body["error"]["code"] == "PAYLOAD_TOO_LARGE"
