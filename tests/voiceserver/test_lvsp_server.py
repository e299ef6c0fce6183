"""LVSP over a real websocket: every op, RESUME replay, every close code, bad input, stats auth."""

from __future__ import annotations

import json

import aiohttp
import pytest

from audionode.config import VoiceServerConfig
from audionode.voiceserver.app import VoiceServer
from audionode.voiceserver.lvsp_client import LvspClient

from .conftest import TOKEN, LvspFactory

IDENTIFY = json.dumps({"op": 1, "d": {"token": TOKEN}})


async def test_hello_identify_ready_heartbeat(server: VoiceServer, lvsp: LvspFactory) -> None:
    c = await lvsp()
    hello = await c.recv()
    assert hello == {"op": 0, "d": {"heartbeat_interval": 30000}, "s": 0}
    await c.send(1, {"token": TOKEN})
    ready = await c.recv()
    assert ready["op"] == 3 and ready["s"] == 1
    assert ready["d"]["endpoint"] == f"127.0.0.1:{server.port}" and ready["d"]["session_id"]
    assert await c.request(4, {"s": 1}) == {"op": 5, "d": {"s": 1}, "s": 2}


async def test_channels_and_voice_states(server: VoiceServer, lvsp: LvspFactory) -> None:
    c = await lvsp()
    await c.identify()
    reply = await c.request(6, {"type": 0, "info": {"id": "10", "bitrate": 96000}})
    assert reply["op"] == 6 and reply["s"] == 2
    assert reply["d"] == {"type": 0, "info": {"id": "10", "bitrate": 96000, "dave_required": True}}
    reply = await c.request(6, {"type": 0, "info": {"id": "10", "dave_required": False}})
    assert reply["d"]["info"] == {"id": "10", "bitrate": 96000, "dave_required": False}

    vst = await c.request(7, {"user_id": "5", "channel_id": "10", "guild_id": "77"})
    info = vst["d"]["info"]
    assert vst["d"]["type"] == 1
    assert info["user_id"] == "5" and info["channel_id"] == "10" and info["guild_id"] == "77"
    assert len(info["token"]) == 16 and info["session_id"]
    assert info["mute"] is False and info["self_deaf"] is False
    again = await c.request(7, {"user_id": "5", "channel_id": "10", "guild_id": "77"})
    assert again["d"]["info"]["token"] == info["token"]  # same channel: unchanged

    # a call without a guild: server_id is the channel, session id chosen by Litecord
    call = await c.request(7, {"user_id": "6", "channel_id": "11", "session_id": "gw-sess"})
    assert call["d"]["info"]["guild_id"] is None and call["d"]["info"]["session_id"] == "gw-sess"
    assert server.registry.authenticate("11", "6", "gw-sess", call["d"]["info"]["token"])

    moved = await c.request(
        6,
        {
            "type": 1,
            "info": {"user_id": "5", "channel_id": "12", "guild_id": "77", "self_mute": True},
        },
    )
    minfo = moved["d"]["info"]
    assert minfo["channel_id"] == "12" and minfo["self_mute"] is True
    assert minfo["token"] != info["token"]
    assert not server.registry.authenticate("77", "5", info["session_id"], info["token"])

    gone = await c.request(
        6, {"type": 1, "info": {"user_id": "5", "channel_id": None, "guild_id": "77"}}
    )
    assert gone["d"]["info"]["channel_id"] is None and gone["d"]["info"]["guild_id"] == "77"
    assert not server.registry.authenticate("77", "5", minfo["session_id"], minfo["token"])

    deleted = await c.request(6, {"type": 0, "info": {"id": "11", "deleted": True}})
    assert deleted["d"]["info"] == {"id": "11", "deleted": True}
    assert 11 not in server.registry.channels
    assert not server.registry.authenticate("11", "6", "gw-sess", call["d"]["info"]["token"])


async def test_fresh_identify_gets_a_snapshot(server: VoiceServer, lvsp: LvspFactory) -> None:
    c = await lvsp()
    await c.identify()
    await c.request(6, {"type": 0, "info": {"id": "20", "bitrate": 32000}})
    vst = await c.request(7, {"user_id": "1", "channel_id": "20", "guild_id": "2"})
    await c.ws.close()
    d = await lvsp()
    await d.identify()
    snap = [await d.recv(), await d.recv()]
    assert snap[0]["d"] == {
        "type": 0,
        "info": {"id": "20", "bitrate": 32000, "dave_required": True},
    }
    assert snap[1]["d"] == vst["d"] and [m["s"] for m in snap] == [2, 3]


async def test_resume_replays_then_ready(lvsp: LvspFactory) -> None:
    c = await lvsp()
    ready = await c.identify()
    await c.send(4, {"s": 1})
    assert (await c.recv())["op"] == 5
    replies = [await c.request(7, {"user_id": str(u), "channel_id": "30"}) for u in (1, 2)]
    await c.ws.close()  # the client lost the last reply, say: resume from before it
    r = await lvsp()
    await r.recv()  # HELLO
    await r.send(2, {"token": TOKEN, "seq": replies[0]["s"]})
    replayed, again = await r.recv(), await r.recv()
    assert replayed == replies[1]
    assert again["op"] == 3 and again["s"] == replies[1]["s"] + 1
    assert again["d"]["session_id"] == ready["d"]["session_id"]
    # and by explicit session id, taking over a socket that is still open
    t = await lvsp()
    await t.recv()
    await t.send(2, {"token": TOKEN, "seq": again["s"], "session_id": ready["d"]["session_id"]})
    assert (await t.recv())["op"] == 3
    assert await r.closed() == (4000, "session resumed elsewhere")


@pytest.mark.parametrize(
    ("frames", "code", "reason"),
    [
        (['{"op": 1, "d": {"token": "wrong"}}'], 4001, "authentication failed: wrong token"),
        (['{"op": 4, "d": {"s": 0}}'], 4001, "HEARTBEAT before IDENTIFY/RESUME"),
        (["this is not json"], 4002, "message is not valid JSON"),
        (['{"op": 1, "d": {}}'], 4002, "IDENTIFY: Object missing required field `token` - at `d`"),
        (['{"op": 1}'], 4002, "IDENTIFY: Expected `object`, got `null` - at `d`"),
        (['{"op": 42, "d": {}}'], 4002, "op 42 is not a client op"),
        ([b"\x01\x02"], 4002, "binary frames are not LVSP"),
        (
            [json.dumps({"op": 2, "d": {"token": TOKEN, "seq": 0}})],
            4003,
            "no session to resume: IDENTIFY instead",
        ),
        (
            [IDENTIFY, '{"op": 7, "d": {"user_id": "1"}}'],
            4002,
            "VST_REQUEST: Object missing required field `channel_id` - at `d`",
        ),
        (
            [IDENTIFY, '{"op": 6, "d": {"type": 0, "info": {"id": "1", "bitrate": "high"}}}'],
            4002,
            "INFO: Expected `int`, got `str` - at `d.info.bitrate`",
        ),
    ],
)
async def test_close_codes(
    lvsp: LvspFactory, frames: list[str | bytes], code: int, reason: str
) -> None:
    c = await lvsp()
    await c.recv()
    for f in frames:
        await (c.ws.send_bytes(f) if isinstance(f, bytes) else c.ws.send_str(f))
    assert await c.closed() == (code, reason)


@pytest.mark.parametrize(
    "server_config", [VoiceServerConfig(port=0, lvsp_token=TOKEN, lvsp_heartbeat_interval=0.2)]
)
async def test_heartbeat_timeout_is_4000_and_resumable(lvsp: LvspFactory) -> None:
    c = await lvsp()
    await c.identify()
    assert await c.closed() == (4000, "no HEARTBEAT within 0.3s")
    r = await lvsp()
    await r.recv()
    await r.send(2, {"token": TOKEN, "seq": 1})
    assert (await r.recv())["op"] == 3


async def test_stats_route_requires_the_token(
    server: VoiceServer, lvsp: LvspFactory, http: aiohttp.ClientSession
) -> None:
    c: LvspClient = await lvsp()
    await c.identify()
    await c.request(7, {"user_id": "1", "channel_id": "40"})
    url = f"http://127.0.0.1:{server.port}/stats"
    for headers in ({}, {"Authorization": "nope"}, {"Authorization": TOKEN + "x"}):
        async with http.get(url, headers=headers) as resp:
            assert resp.status == 401
            assert (await resp.json())["code"] == "UNAUTHORIZED"
    async with http.get(url, headers={"Authorization": TOKEN}) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["channels"]["40"] == {
        "members": 0,
        "voice_states": 1,
        "bitrate": 64000,
        "dave_required": True,
    }


async def test_shutdown_closes_lvsp_with_1001(
    server_config: VoiceServerConfig, http: aiohttp.ClientSession
) -> None:
    srv = VoiceServer(server_config)
    await srv.start()
    try:
        c = await LvspClient.connect(http, srv.lvsp_url, TOKEN)
        await c.identify()
    finally:
        await srv.stop()
    assert await c.closed() == (1001, "voice server shutting down")
