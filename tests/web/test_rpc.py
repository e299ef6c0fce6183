"""``GET /rpc``: Litecord's common protocol (seed 003) as a front door, against the real node:
every op and close code, and a whole RPC-only session heard at a listener."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from audionode.voice.packetizer import SILENCE_FRAME
from tests.conftest import PASSWORD, NodeFactory, NodeHarness
from tests.e2e.chain import band_level, decode
from tests.transport.listener import Listener
from tests.transport.voiceserver_harness import voice_server

BOT, GUILD = 4141, 5252


class Rpc:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._nonces = itertools.count(1)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
        frame: dict[str, Any] = json.loads(msg.data)
        return frame

    async def closed(self, timeout: float = 5.0) -> int | None:
        while True:
            msg = await self.ws.receive(timeout=timeout)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return self.ws.close_code

    async def hello_ack(self, password: str = PASSWORD) -> None:
        await self.send({"op": 1, "password": password})

    async def request(self, w: str, arg: Any = None) -> Any:
        n = next(self._nonces)
        await self.send({"op": 4, "w": w, "a": [] if arg is None else [arg], "n": n})
        frame = await self.recv()
        assert frame["op"] == 5 and frame["n"] == n, frame
        return frame["r"]

    async def dispatch(self, w: str, arg: Any = None) -> None:
        await self.send({"op": 6, "w": w, "a": [] if arg is None else [arg]})


@contextlib.asynccontextmanager
async def rpc(node: NodeHarness, ack: bool = True) -> AsyncIterator[Rpc]:
    async with node.http.ws_connect(f"{node.url}/rpc", autoclose=False) as ws:
        client = Rpc(ws)
        hello = await client.recv()
        assert hello == {"op": 0, "hb_interval": 15000}
        if ack:
            await client.hello_ack()
        yield client


async def test_wrong_password_closes_4001(node: NodeHarness) -> None:
    async with rpc(node, ack=False) as c:
        await c.hello_ack("nope")
        assert await c.closed() == 4001


async def test_anything_before_hello_ack_closes_4002(node: NodeHarness) -> None:
    for frame in (
        {"op": 2},
        {"op": 4, "w": "commands", "a": [], "n": 1},
        {"op": 6, "w": "x", "a": []},
    ):
        async with rpc(node, ack=False) as c:
            await c.send(frame)
            assert await c.closed() == 4002, frame


async def test_heartbeat_and_its_timeout_4003(node_factory: NodeFactory) -> None:
    async with (
        node_factory(heartbeat_interval=0.3) as node,
        node.http.ws_connect(f"{node.url}/rpc", autoclose=False) as ws,
    ):
        c = Rpc(ws)
        assert await c.recv() == {"op": 0, "hb_interval": 300}
        await c.hello_ack()
        loop = asyncio.get_running_loop()
        for _ in range(4):  # 0.8 s: beyond interval + grace, kept alive by heartbeats
            last = loop.time()
            await c.send({"op": 2})
            assert await c.recv() == {"op": 3}
            await asyncio.sleep(0.2)
        assert await c.closed() == 4003
        assert 0.55 <= loop.time() - last < 2.0  # interval 0.3 s + grace 0.3 s


async def test_requests_answer_with_the_nonce_and_errors_keep_the_socket(node: NodeHarness) -> None:
    async with rpc(node) as c:
        commands = {cmd["name"]: cmd["args"] for cmd in await c.request("commands")}
        assert commands["setOptions"] == [
            "user_id", "shard_id?", "guild_id", "voice_client_id",
            "volume", "crossfade", "autoplay", "filter",
        ]  # fmt: skip
        assert commands["getSource"] == ["query"] and "DISCORD_EVENT" in commands
        assert (await c.request("getStatus"))["sessions"] == 0
        assert await c.request("HEARTBEAT", {"x": 1}) == {"x": 1}
        err = (await c.request("nosuch"))["error"]
        assert err["code"] == "UNKNOWN_COMMAND"
        err = (await c.request("getState", {"guild_id": 1}))["error"]
        assert err == {"code": "BAD_REQUEST", "message": "field `a[0].user_id` is required"}
        err = (await c.request("setOptions", {"user_id": 1, "guild_id": 2, "volume": 1}))["error"]
        assert err["message"] == "field `a[0].voice_client_id` is required"
        await c.send({"op": 4, "w": "getStatus", "a": "x", "n": "abc"})
        frame = await c.recv()
        assert frame["n"] == "abc" and "`a`" in frame["r"]["error"]["message"]
        await c.send({"op": 4, "a": [], "n": 7})
        frame = await c.recv()
        assert frame["n"] == 7 and frame["r"]["error"]["message"] == "field `w` is required"
        await c.send({"op": 3, "n": 8})
        assert (await c.recv())["r"]["error"]["code"] == "UNKNOWN_OP"
        await c.send({"op": 2})
        assert await c.recv() == {"op": 3}


async def test_a_frame_that_is_not_json_closes_1007(node: NodeHarness) -> None:
    async with rpc(node) as c:
        await c.ws.send_str("{nope")
        assert await c.closed() == 1007


async def test_identify_voice_events_and_takeover_4004(node: NodeHarness) -> None:
    async with rpc(node) as c:
        identified = await c.request("IDENTIFY", {"user_id": BOT})
        assert identified == {
            "user_id": str(BOT),
            "shard_id": None,
            "resumed": False,
            "voice_clients": [],
            "dropped": 0,
        }
        state = {"guild_id": str(GUILD), "user_id": str(BOT), "channel_id": "9", "session_id": "s"}
        event = {"user_id": BOT, "t": "VOICE_STATE_UPDATE", "d": state}
        assert await c.request("DISCORD_EVENT", event) is None
        view = await c.request("getState", {"user_id": BOT, "guild_id": GUILD})
        assert view["channel_id"] == "9" and len(view["id"]) == 32
        key = {"user_id": BOT, "guild_id": GUILD, "voice_client_id": view["id"]}
        assert (await c.request("setOptions", {**key, "volume": 0.4}))["volume"] == 0.4
        await c.dispatch("setOptions", {**key, "volume": 9})  # refused, and no reply
        assert (await c.request("getOptions", key))["volume"] == 0.4
        async with node.ws() as ws:  # the Discodo socket takes the session over
            resumed = await ws.identify(BOT)
            assert resumed["resumed"] is True
            assert await c.closed() == 4004


async def test_an_rpc_only_session_is_heard(node_factory: NodeFactory) -> None:
    """Voice events, load, queue, pause and resume by DISPATCH, skip: all over /rpc; a member
    of the channel hears 440 Hz, silence while paused, then 660 Hz after the skip."""
    channel, listener_id = 9393, 9494
    sources = {"plugins": ["tone"]}
    async with voice_server() as vs, node_factory(sources=sources) as node, rpc(node) as c:
        lgrant = await vs.lvsp.grant(listener_id, channel, GUILD)
        listener = Listener(
            vs.endpoint, GUILD, listener_id, channel, lgrant.session_id, lgrant.token
        )
        await listener.connect(vs.http)
        try:
            await run_session(c, await vs.lvsp.grant(BOT, channel, GUILD))
            timed = heard(listener)
        finally:
            await listener.close()
    gaps = [i for i in range(1, len(timed)) if timed[i][0] - timed[i - 1][0] > 0.4]
    assert len(gaps) == 1, "one pause"
    assert [f for _, f in timed[gaps[0] - 5 : gaps[0]]] == [SILENCE_FRAME] * 5
    pcm = decode([f for _, f in timed])
    window = 960 * 10  # 200 ms
    levels = [
        (band_level(pcm[i : i + window], 440), band_level(pcm[i : i + window], 660))
        for i in range(0, len(pcm) - window, window)
    ]
    top_a, top_b = max(a for a, _ in levels), max(b for _, b in levels)
    first_660 = next(i for i, (_, b) in enumerate(levels) if b > top_b / 4)
    before = levels[:first_660]
    assert sum(a > top_a / 4 for a, _ in before) >= 5, "440 Hz before the skip"
    assert all(a < top_a / 20 for a, _ in levels[first_660 + 1 :]), "no 440 Hz after it"


async def run_session(c: Rpc, grant: Any) -> None:
    user = {"user_id": BOT}
    await c.request("IDENTIFY", user)
    state = {"guild_id": str(GUILD), "user_id": str(BOT), "channel_id": str(grant.channel_id),
             "session_id": grant.session_id}  # fmt: skip
    server = {"guild_id": str(GUILD), "token": grant.token, "endpoint": grant.endpoint}
    await c.dispatch("DISCORD_EVENT", {**user, "t": "VOICE_STATE_UPDATE", "d": state})
    await c.request("DISCORD_EVENT", {**user, "t": "VOICE_SERVER_UPDATE", "d": server})
    view = await poll(c, {**user, "guild_id": GUILD}, lambda v: v["state_name"] != "DISCONNECTED")
    key = {**user, "guild_id": GUILD, "voice_client_id": view["id"]}
    first = (await c.request("loadSource", {**key, "query": "tone:440?seconds=20"}))["source"]
    second = (await c.request("loadSource", {**key, "query": "tone:660?seconds=20"}))["source"]
    queue = await c.request("queue", key)
    assert [e["tag"] for e in queue["entries"]] == [second["tag"]]
    await poll(c, {**user, "guild_id": GUILD}, lambda v: v["state_name"] == "PLAYING")
    await asyncio.sleep(1.0)
    await c.dispatch("pause", key)
    await poll(c, {**user, "guild_id": GUILD}, lambda v: v["state_name"] == "PAUSED")
    await asyncio.sleep(0.6)
    await c.dispatch("resume", key)
    await asyncio.sleep(0.8)
    assert await c.request("skip", key) is None
    current = await poll(c, key, lambda v: (v["current"] or {}).get("tag") == second["tag"])
    assert current["current"]["tag"] != first["tag"]
    await asyncio.sleep(1.0)


async def poll(c: Rpc, arg: dict[str, Any], ok: Any, within: float = 10.0) -> Any:
    async with asyncio.timeout(within):
        while True:
            view = await c.request(
                "getState", {k: v for k, v in arg.items() if k != "voice_client_id"}
            )
            assert "error" not in view, view
            if ok(view):
                return view
            await asyncio.sleep(0.05)


def heard(listener: Listener) -> list[tuple[float, bytes]]:
    ssrcs = {p.data[8:12] for p in listener.packets if len(p.data) > 12}
    assert len(ssrcs) == 1, ssrcs
    frames = []
    for at, opened in listener.opened(int.from_bytes(ssrcs.pop(), "big")):
        frame = opened.payload
        if frame.endswith(b"\xfa\xfa"):
            frame = listener.dave_decrypt(BOT, frame)
        frames.append((at, frame))
    assert len(frames) > 100
    return frames
