"""VDP signalling (seed 004) through every front door of the real node: the same command names
on REST, ``/ws`` and ``/rpc``, the seed's refusals as error codes, and validation naming the
field. (The data path is tested end to end in tests/e2e/test_vdp.py.)"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import PASSWORD, NodeFactory, NodeHarness, WsClient
from tests.web.test_rpc import rpc

USER, GUILD, CHANNEL = 6100, 6200, 6300
ROOM = "!qPNOnUsNsZrToFZqxB:half-shot.uk"
OPEN = {"room_id": ROOM, "format": "opus", "version": 1}


async def voice_client(ws: WsClient, channel: int | None) -> str:
    """A voice client in ``channel`` (None: in none) that never connects (no server update)."""
    await ws.identify(USER)
    state = {"guild_id": str(GUILD), "user_id": str(USER), "session_id": "s", "channel_id": None}
    if channel is not None:
        state["channel_id"] = str(channel)
    else:
        await ws.send(
            "DISCORD_EVENT",
            {"t": "VOICE_SERVER_UPDATE", "d": {"guild_id": str(GUILD), "token": "t"}},
        )
    if channel is not None:
        await ws.send("DISCORD_EVENT", {"t": "VOICE_STATE_UPDATE", "d": state})
    vc: str = (await ws.expect("VC_CREATED"))["id"]
    if channel is not None:
        await ws.expect("VC_CHANNEL_EDITED")
    return vc


async def rest(node: NodeHarness, vc: str, method: str, path: str, body: Any = None) -> Any:
    headers = {
        "Authorization": PASSWORD, "User-ID": str(USER), "Guild-ID": str(GUILD),
        "VoiceClient-ID": vc,
    }  # fmt: skip
    async with node.http.request(method, node.url + path, headers=headers, json=body) as r:
        return r.status, await r.json()


def code(reply: tuple[int, Any]) -> tuple[int, str]:
    return reply[0], reply[1]["error"]["code"]


async def test_the_refusals_on_rest_ws_and_rpc(node_factory: NodeFactory) -> None:
    vdp = {"enabled": True, "allowed_peers": ["127.0.0.0/8"]}
    async with node_factory(voice={"receive": True}, vdp=vdp) as node, node.ws() as ws:
        vc = await voice_client(ws, CHANNEL)
        assert code(await rest(node, vc, "POST", "/vdp/channels", OPEN)) == (
            409, "DISCORD_LIMITATION"
        )  # fmt: skip
        wrong = {**OPEN, "format": "pcm"}
        assert code(await rest(node, vc, "POST", "/vdp/channels", wrong)) == (
            422, "NO_CALL_CAPABILITY"
        )  # fmt: skip
        status, body = await rest(node, vc, "POST", "/vdp/channels", {**OPEN, "room_id": ""})
        assert status == 400 and "field `room_id`" in body["error"]["message"]
        status, body = await rest(node, vc, "POST", "/vdp/channels", {"room_id": ROOM})
        assert status == 400 and "field `format` is required" in body["error"]["message"]
        peer = f"/vdp/channels/{quote(ROOM, safe='')}/peer"
        status, body = await rest(node, vc, "POST", peer, {"address": "example.org:5000"})
        assert status == 400 and "names are not resolved" in body["error"]["message"]
        assert code(await rest(node, vc, "POST", peer, {"address": "127.0.0.1:5000"})) == (
            404, "VDP_CHANNEL_NOT_FOUND"
        )  # fmt: skip
        assert code(await rest(node, vc, "DELETE", f"/vdp/channels/{ROOM}", None)) == (
            404, "VDP_CHANNEL_NOT_FOUND"
        )  # fmt: skip
        # /ws: the same name as an op, `d` naming the guild
        await ws.send("openVdpChannel", {"guild_id": str(GUILD), **OPEN})
        reply = await ws.expect("openVdpChannel")
        assert reply["error"]["code"] == "DISCORD_LIMITATION" and reply["guild_id"] == str(GUILD)
        await ws.send("openVdpChannel", {**OPEN})
        reply = await ws.expect("openVdpChannel")
        assert "field `d.guild_id` is required" in reply["error"]["message"]
        # /rpc: the same name as a command
        async with rpc(node) as r:
            keys = {"user_id": str(USER), "guild_id": str(GUILD), "voice_client_id": vc}
            answer = await r.request("openVdpChannel", {**keys, **OPEN})
            assert answer["error"]["code"] == "DISCORD_LIMITATION"
            listed = {cmd["name"]: cmd["args"] for cmd in await r.request("commands")}
            assert listed["setVdpPeer"][-2:] == ["room_id", "address"]


async def test_no_channel_is_not_bridged_and_a_node_without_vdp_cannot_call(
    node_factory: NodeFactory,
) -> None:
    vdp = {"enabled": True, "allowed_peers": ["127.0.0.0/8"]}
    async with node_factory(voice={"receive": True}, vdp=vdp) as node, node.ws() as ws:
        vc = await voice_client(ws, None)
        assert code(await rest(node, vc, "POST", "/vdp/channels", OPEN)) == (409, "NOT_BRIDGED")
    async with node_factory() as node, node.ws() as ws:
        vc = await voice_client(ws, CHANNEL)
        assert code(await rest(node, vc, "POST", "/vdp/channels", OPEN)) == (
            422, "NO_CALL_CAPABILITY"
        )  # fmt: skip
