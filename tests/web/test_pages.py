"""The pages' HTTP side: public pages and assets with a strict CSP, and ``/dashboard/ws``
authenticating by its first frame."""

from __future__ import annotations

import json

import aiohttp

from tests.conftest import PASSWORD, NodeHarness


async def test_pages_and_assets_are_public_with_a_strict_csp(node: NodeHarness) -> None:
    for path, kind in (("/docs", "text/html"), ("/dashboard", "text/html"),
                       ("/static/docs.js", "text/javascript"),
                       ("/static/dashboard.js", "text/javascript"),
                       ("/static/style.css", "text/css")):  # fmt: skip
        async with node.http.get(f"{node.url}{path}") as r:
            assert r.status == 200 and r.content_type == kind, path
            csp = r.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp
            text = await r.text()
            assert "http://" not in text and "https://" not in text, path  # no CDN
    # Assets are looked up by name in what web/static/ held at start (no path is joined).
    status, body = await node.get("/static/..%2Fauth.py", password=None)
    assert status == 404
    status, body = await node.get("/static/nope.js", password=None)
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"


async def test_feed_refuses_a_wrong_password_with_4001(node: NodeHarness) -> None:
    async with node.http.ws_connect(f"{node.url}/dashboard/ws") as ws:
        await ws.send_str(json.dumps({"password": "wrong"}))
        msg = await ws.receive(timeout=5)
        assert json.loads(msg.data) == {"error": "wrong or missing password"}
        closing = await ws.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 4001
    async with node.http.ws_connect(f"{node.url}/dashboard/ws") as ws:
        await ws.send_str("not json")
        assert "error" in json.loads((await ws.receive(timeout=5)).data)


async def test_feed_sends_the_overview_every_second(node: NodeHarness) -> None:
    async with node.ws() as bot:
        await bot.identify(77)
        state = {"guild_id": "55", "user_id": "77", "channel_id": "9", "session_id": "s"}
        await bot.send("DISCORD_EVENT", {"t": "VOICE_STATE_UPDATE", "d": state})
        await bot.expect("VC_CREATED")
        async with node.http.ws_connect(f"{node.url}/dashboard/ws") as ws:
            await ws.send_str(json.dumps({"password": PASSWORD}))
            first = json.loads((await ws.receive(timeout=5)).data)["overview"]
            second = json.loads((await ws.receive(timeout=5)).data)["overview"]
    assert 0.5 < second["at"] - first["at"] < 3
    [session] = first["sessions"]
    assert session["user_id"] == "77" and session["connected"] is True
    [player] = session["players"]
    assert player["guild_id"] == "55" and player["channel_id"] == "9"
    assert player["state"] == "DISCONNECTED" and player["voice_mode"] is None
    assert first["status"]["players"] == 1
    assert PASSWORD not in json.dumps(first)
