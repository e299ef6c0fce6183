"""``GET /metrics`` on a real node: auth (password or ``metrics_token``), REST counters by
route template and status, websocket gauges per front door (docs/OPERATIONS.md)."""

from __future__ import annotations

import asyncio

from tests.conftest import PASSWORD, NodeFactory, NodeHarness, eventually
from tests.observe.scrape import scrape, total, value
from tests.web.test_rpc import rpc

TOKEN = "scrape-only-token"


async def _status(node: NodeHarness, path: str, auth: str | None) -> int:
    headers = {} if auth is None else {"Authorization": auth}
    async with node.http.get(f"{node.url}{path}", headers=headers) as r:
        return r.status


async def test_metrics_need_the_password(node: NodeHarness) -> None:
    assert await _status(node, "/metrics", None) == 401
    assert await _status(node, "/metrics", "wrong") == 403
    assert await _status(node, "/metrics", PASSWORD) == 200
    assert await _status(node, "/metrics", f"Bearer {PASSWORD}") == 200
    # Without a metrics_token configured, a bearer token is just a wrong password.
    assert await _status(node, "/metrics", f"Bearer {TOKEN}") == 403


async def test_the_metrics_token_reads_metrics_and_nothing_else(
    node_factory: NodeFactory,
) -> None:
    async with node_factory(metrics_token=TOKEN) as node:
        assert await _status(node, "/metrics", f"Bearer {TOKEN}") == 200
        assert await _status(node, "/metrics", f"bearer  {TOKEN} ") == 200
        assert await _status(node, "/metrics", PASSWORD) == 200
        assert await _status(node, "/metrics", TOKEN) == 403  # a token is sent as Bearer
        assert await _status(node, "/metrics", f"Bearer {TOKEN}x") == 403
        assert await _status(node, "/metrics", None) == 401
        assert await _status(node, "/status", f"Bearer {TOKEN}") == 403


async def test_rest_requests_are_counted_by_route_template_and_status(
    node: NodeHarness,
) -> None:
    for _ in range(3):
        assert await _status(node, "/status", PASSWORD) == 200
    assert await _status(node, "/status", "wrong") == 403
    assert await _status(node, "/no/such/route/123", PASSWORD) == 404
    for session in ("aaaa", "bbbb"):  # two raw paths, one route
        assert await _status(node, f"/v4/sessions/{session}/players", PASSWORD) == 404
    samples = await scrape(node.http, node.url)
    name = "audionode_http_requests_total"
    assert value(samples, name, method="GET", route="/status", status="200") == 3
    assert value(samples, name, method="GET", route="/status", status="403") == 1
    assert value(samples, name, method="GET", route="unmatched", status="404") == 1
    routes = {dict(ls)["route"] for n, ls in samples if n == name}
    assert "/v4/sessions/<session_id:str>/players" in routes, routes
    assert not any("aaaa" in r or "bbbb" in r or "123" in r for r in routes), routes
    assert total(samples, name, route="/v4/sessions/<session_id:str>/players") == 2
    # The scrape itself is counted once it has been answered.
    again = await scrape(node.http, node.url)
    assert value(again, name, method="GET", route="/metrics", status="200") == 1


async def test_websockets_are_gauged_per_front_door(node: NodeHarness) -> None:
    gauge = "audionode_websocket_connections"
    opened = "audionode_websocket_connections_opened_total"
    lavalink = {"Authorization": PASSWORD, "User-Id": "77", "Client-Name": "metrics-test/1"}
    async with (
        node.ws() as _discodo,
        rpc(node) as _rpc,
        node.http.ws_connect(f"{node.url}/v4/websocket", headers=lavalink) as _lavalink,
        node.ws() as _second,
    ):
        samples = await scrape(node.http, node.url)
        assert value(samples, gauge, front="discodo") == 2
        assert value(samples, gauge, front="rpc") == 1
        assert value(samples, gauge, front="lavalink") == 1
        assert value(samples, opened, front="discodo") == 2
        await _second.ws.close()

        async def discodo_open() -> float:
            return value(await scrape(node.http, node.url), gauge, front="discodo")

        for _ in range(100):
            if await discodo_open() == 1:
                break
            await asyncio.sleep(0.05)
        assert await discodo_open() == 1
    for _ in range(100):
        samples = await scrape(node.http, node.url)
        if total(samples, gauge) == 0:
            break
        await asyncio.sleep(0.05)
    assert total(samples, gauge) == 0, samples
    assert value(samples, opened, front="discodo") == 2  # a counter: it stays
    assert value(samples, opened, front="lavalink") == 1


async def test_sessions_and_players_are_gauged(node: NodeHarness) -> None:
    async with node.ws() as ws:
        await ws.identify(1234)
        state = {"guild_id": "55", "user_id": "1234", "channel_id": "66", "session_id": "s"}
        await ws.send("DISCORD_EVENT", {"t": "VOICE_STATE_UPDATE", "d": state})
        await ws.expect("VC_CREATED")
        samples = await scrape(node.http, node.url)
        assert value(samples, "audionode_sessions", state="attached") == 1
        assert value(samples, "audionode_players", state="disconnected") == 1
        assert total(samples, "audionode_players") == 1
    await eventually(lambda: not any(s.sink for s in node.node.service.sessions.by_ref.values()))
    samples = await scrape(node.http, node.url)
    assert value(samples, "audionode_sessions", state="attached") == 0
    assert value(samples, "audionode_sessions", state="detached") == 1
