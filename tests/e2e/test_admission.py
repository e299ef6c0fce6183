"""Issue 17: a node whose workers are full refuses new players on every front, says so in
``/status``, and the player already playing keeps its 50 packets/s.

The budget is made tiny (``engine.admission.max_players_per_worker = 1`` on two workers) so the
refusal is deterministic; the measured limits are unit-tested in tests/engine/test_admission.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from audionode.demo.bot import Bot, DemoError
from audionode.voice import rtp
from audionode.voiceserver.lvsp_client import VoiceGrant
from tests.conftest import PASSWORD, NodeFactory, NodeHarness, eventually
from tests.e2e.chain import chain, decode, dominant, events_until
from tests.web.test_rpc import rpc

ENGINE = {"workers": 2, "admission": {"max_players_per_worker": 1, "retry_after": 7}}


def _state(guild: int, user: int) -> dict[str, str]:
    return {"guild_id": str(guild), "user_id": str(user), "channel_id": "9", "session_id": "s"}


@contextlib.asynccontextmanager
async def _lavalink(node: NodeHarness) -> AsyncIterator[str]:
    """A Lavalink session (its websocket open); yields its id."""
    headers = {"Authorization": PASSWORD, "User-Id": "31337", "Client-Name": "admission/1"}
    async with node.http.ws_connect(f"{node.url}/v4/websocket", headers=headers) as ws:
        ready = json.loads((await ws.receive(timeout=5)).data)
        assert ready["op"] == "ready"
        yield ready["sessionId"]


async def _patch(node: NodeHarness, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
    headers = {"Authorization": PASSWORD}
    async with node.http.patch(f"{node.url}{path}", json=body, headers=headers) as r:
        return r.status, await r.json(), dict(r.headers)


def _rtp_count(packets: list[Any]) -> int:
    return sum(rtp.classify(p.data) is rtp.DatagramKind.RTP for p in packets)


async def test_a_full_node_refuses_new_players_and_keeps_the_playing_one(
    node_factory: NodeFactory,
) -> None:
    async with chain(node_factory, engine=ENGINE) as c:
        # The chain's guild took worker 0 (both empty: the lower slot); it plays.
        await c.load("tone:440?seconds=30")
        await events_until(c.ws, "SOURCE_START")
        # A second guild of the same bot takes the other worker: placed by load, not key.
        await c.ws.send("DISCORD_EVENT", {"t": "VOICE_STATE_UPDATE", "d": _state(1, 4242)})
        await c.ws.expect("VC_CREATED")
        await c.ws.expect("VC_CHANNEL_EDITED")
        status, body = await c.node.get("/status")
        assert status == 200
        admission = body["engine"]["admission"]
        assert [p["placed"] for p in body["engine"]["processes"]] == [1, 1]
        assert admission["at_capacity"] is True and admission["refused"] == 0
        assert admission["placeable"] == 0

        # Discodo websocket: the voice update that would create a player answers the error.
        await c.ws.send("DISCORD_EVENT", {"t": "VOICE_STATE_UPDATE", "d": _state(2, 4242)})
        reply = await c.ws.expect("DISCORD_EVENT")
        assert reply["error"]["code"] == "NODE_AT_CAPACITY"
        assert reply["guild_id"] == "2"  # which guild was refused
        assert "max_players_per_worker 1" in reply["error"]["message"]

        # Lavalink REST: creating a player is a 503 with Retry-After.
        async with _lavalink(c.node) as sid:
            status, err, headers = await _patch(c.node, f"/v4/sessions/{sid}/players/3", {})
        assert status == 503 and headers["Retry-After"] == "7"
        assert err["status"] == 503 and "at capacity" in err["message"]

        # RPC: the request's error object.
        async with rpc(c.node) as r:
            await r.request("IDENTIFY", {"user_id": 999})
            event = {"user_id": 999, "t": "VOICE_STATE_UPDATE", "d": _state(4, 999)}
            refused = await r.request("DISCORD_EVENT", event)
            assert refused["error"]["code"] == "NODE_AT_CAPACITY"

        status, body = await c.node.get("/status")
        assert body["engine"]["admission"]["refused"] == 3
        assert body["engine"]["admission"]["at_capacity"] is True
        assert body["players"] == 2

        # The playing guild never noticed: 50 packets/s over two seconds, still 440 Hz.
        before = _rtp_count(c.listener.packets)
        await asyncio.sleep(2.0)
        rate = (_rtp_count(c.listener.packets) - before) / 2.0
        assert 45 <= rate <= 55, rate
        audio = [f for _, f in c.audio_frames(c.bot_ssrc())[-50:]]
        assert abs(dominant(decode(audio)) - 440) < 5

        # A player that leaves frees its place: the refused guild is taken now.
        await c.ws.send("VC_DESTROY", {"guild_id": "1"})
        await events_until(c.ws, "VC_DESTROYED")
        await eventually(lambda: c.node.node.service.sessions.players == 1, timeout=5)
        await c.ws.send("DISCORD_EVENT", {"t": "VOICE_STATE_UPDATE", "d": _state(2, 4242)})
        created = await events_until(c.ws, "VC_CREATED")
        assert created[-1]["d"]["guild_id"] == "2"


async def test_status_says_when_the_node_has_room(node_factory: NodeFactory) -> None:
    async with node_factory(engine={"workers": 0}) as node:
        status, body = await node.get("/status")
        assert status == 200
        admission = body["engine"]["admission"]
        assert admission["at_capacity"] is False and admission["enabled"] is True
        # no stream measured yet: new players are charged engine.admission.stream_cost each,
        # 0.003 cores, against max_cpu 0.85 -> 283 more
        assert admission["placeable"] == 283
        assert admission["workers"][0]["placed"] == 0 and admission["workers"][0]["full"] is None


async def test_the_bot_kit_says_a_join_was_refused_instead_of_waiting(
    node_factory: NodeFactory,
) -> None:
    # The demo's and benchmarks' bot (audionode/demo/bot.py) used to wait 60 s for a
    # VC_CREATED that a full node never sends (the soak's stalled-bot fault on a loaded box).
    engine = {"workers": 1, "admission": {"max_players_per_worker": 1}}
    async with node_factory(engine=engine) as node:
        bot = await Bot.open(node.http, node.url, PASSWORD, 4242)
        try:
            await bot.send("DISCORD_EVENT", {"t": "VOICE_STATE_UPDATE", "d": _state(1, 4242)})
            await bot.wait("VC_CREATED", guild=1)
            grant = VoiceGrant(4242, 9, 2, "s2", "token", "ws://127.0.0.1:9", {})
            started = asyncio.get_running_loop().time()
            with pytest.raises(DemoError, match="guild 2 refused: NODE_AT_CAPACITY"):
                await bot.join(2, 9, grant, "ws://127.0.0.1:9")
            assert asyncio.get_running_loop().time() - started < 5
        finally:
            await bot.close()
