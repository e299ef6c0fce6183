"""HTTP front: public health routes, the one auth check, the uniform error body."""

from __future__ import annotations

from audionode import __version__
from tests.conftest import PASSWORD, NodeHarness


async def test_public_routes_need_no_auth(node: NodeHarness) -> None:
    assert await node.get("/", password=None) == (
        200,
        {"name": "audionode", "version": __version__},
    )
    assert await node.get("/health", password=None) == (200, {"status": "ok"})


async def test_status_requires_auth(node: NodeHarness) -> None:
    status, body = await node.get("/status", password=None)
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"
    status, body = await node.get("/status", password="wrong")
    assert status == 403 and body["error"] == {
        "code": "AUTHENTICATION_FAILED",
        "message": "wrong password in Authorization header",
    }
    status, body = await node.get("/status", password=f"Bearer {PASSWORD}")
    assert status == 200


async def test_status_reports_node_figures(node: NodeHarness) -> None:
    async with node.ws() as ws:
        await ws.identify(5)
        status, body = await node.get("/status")
    assert status == 200
    assert body["version"] == __version__ and body["uptime"] >= 0
    assert body["memory"]["rss"] > 10_000_000 and body["cpu"]["cores"] >= 1
    assert body["sessions"] == 1 and body["connected_sessions"] == 1 and body["players"] == 0


async def test_unknown_route_gets_uniform_404(node: NodeHarness) -> None:
    status, body = await node.get("/no/such/route")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"


async def test_wrong_method_gets_uniform_405(node: NodeHarness) -> None:
    async with node.http.post(f"{node.url}/status", headers={"Authorization": PASSWORD}) as r:
        assert r.status == 405
        assert (await r.json())["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_unknown_route_without_auth_is_refused_first(node: NodeHarness) -> None:
    status, body = await node.get("/no/such/route", password=None)
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"
