"""The package's LVSP client against the real voice server: grants in flight at once,
heartbeats, RESUME after a dropped socket, IDENTIFY afresh when the server lost the session."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from audionode.config import VoiceServerConfig
from audionode.voiceserver.app import VoiceServer
from audionode.voiceserver.lvsp_client import LvspClient, LvspClosed

from .conftest import TOKEN


async def test_many_grants_in_flight_are_each_matched(
    server: VoiceServer, http: aiohttp.ClientSession
) -> None:
    lvsp = await LvspClient.open(http, server.lvsp_url, TOKEN)
    grants = await asyncio.gather(*(lvsp.grant(100 + i, 500 + i, 900 + i) for i in range(40)))
    assert [(g.user_id, g.channel_id, g.guild_id) for g in grants] == [
        (100 + i, 500 + i, 900 + i) for i in range(40)
    ]
    assert len({g.token for g in grants}) == 40
    assert all(g.endpoint == f"ws://127.0.0.1:{server.port}" for g in grants)
    for g in grants[:3]:
        assert server.registry.authenticate(str(g.guild_id), str(g.user_id), g.session_id, g.token)
    # a call (no guild) and a move (new channel in the same guild: new token)
    call = await lvsp.grant(7, 8)
    assert call.guild_id is None and call.info["guild_id"] is None
    moved = await lvsp.grant(100, 999, 900)
    assert moved.channel_id == 999 and moved.token != grants[0].token
    await lvsp.close()
    with pytest.raises(LvspClosed):
        await lvsp.grant(1, 2, 3)


@pytest.mark.parametrize(
    "server_config",
    [VoiceServerConfig(port=0, lvsp_token=TOKEN, lvsp_heartbeat_interval=0.1)],
)
async def test_heartbeats_keep_an_idle_client_connected(
    server: VoiceServer, http: aiohttp.ClientSession
) -> None:
    lvsp = await LvspClient.open(http, server.lvsp_url, TOKEN)
    await asyncio.sleep(0.6)  # 4 x the 0.15 s the server allows between heartbeats
    assert lvsp.close_code is None and not lvsp.ws.closed
    assert (await lvsp.grant(1, 2, 3)).user_id == 1
    await lvsp.close()


async def test_reconnect_resumes_then_identifies_when_the_session_is_gone(
    server_config: VoiceServerConfig, http: aiohttp.ClientSession
) -> None:
    server = VoiceServer(server_config)
    await server.start()
    lvsp = await LvspClient.open(http, server.lvsp_url, TOKEN)
    first = lvsp.session_id
    await lvsp.grant(1, 2, 3)
    assert await lvsp.reconnect(http) is True
    assert lvsp.session_id == first
    # the server restarts on the same port: the session is gone (4003), so IDENTIFY afresh
    port = server.port
    await server.stop()
    server = VoiceServer(VoiceServerConfig(host="127.0.0.1", port=port, lvsp_token=TOKEN))
    await server.start()
    try:
        assert await lvsp.reconnect(http) is False
        assert lvsp.session_id != first
        assert (await lvsp.grant(1, 2, 3)).token
    finally:
        await lvsp.close()
        await server.stop()
