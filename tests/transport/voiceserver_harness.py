"""The built-in voice server on loopback, and the LVSP calls that create voice states on it.

Used by ``test_e2e.py`` and ``bench/pacing.py``. LVSP as the voice server speaks it:
``docs/protocols/lvsp.md`` (IDENTIFY with the shared token, VST_REQUEST → INFO(VST) carrying
the token the voice client must present; asking for another channel is a move: new token, and
the client still connected with the old one is closed with 4014).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from audionode.config import VoiceServerConfig
from audionode.voiceserver.app import VoiceServer

LVSP_TOKEN = "transport-e2e-lvsp"


@dataclass(frozen=True)
class VoiceGrant:
    """What a bot would get from VOICE_STATE_UPDATE + VOICE_SERVER_UPDATE."""

    guild_id: int
    user_id: int
    channel_id: int
    session_id: str
    token: str
    endpoint: str


class Lvsp:
    """The "Litecord" side: creates and moves voice states over a real LVSP websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, endpoint: str) -> None:
        self.ws = ws
        self.endpoint = endpoint

    async def _recv(self) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.TEXT, f"LVSP: expected a text frame, got {msg}"
        data: dict[str, Any] = json.loads(msg.data)
        return data

    async def identify(self) -> None:
        assert (await self._recv())["op"] == 0  # HELLO
        await self.ws.send_str(json.dumps({"op": 1, "d": {"token": LVSP_TOKEN}}))
        ready = await self._recv()
        assert ready["op"] == 3, ready

    async def grant(self, user_id: int, channel_id: int, guild_id: int) -> VoiceGrant:
        """VST_REQUEST: a voice state for ``user_id`` in ``channel_id`` (a move if it has one
        elsewhere in the guild)."""
        d = {"user_id": str(user_id), "channel_id": str(channel_id), "guild_id": str(guild_id)}
        await self.ws.send_str(json.dumps({"op": 7, "d": d}))
        while True:
            frame = await self._recv()
            info = frame["d"].get("info", {}) if frame["op"] == 6 else {}
            if info.get("user_id") == str(user_id) and info.get("channel_id") == str(channel_id):
                return VoiceGrant(
                    guild_id, user_id, channel_id, info["session_id"], info["token"], self.endpoint
                )


@dataclass
class Harness:
    server: VoiceServer
    http: aiohttp.ClientSession
    lvsp: Lvsp

    @property
    def endpoint(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}"


@contextlib.asynccontextmanager
async def voice_server(**overrides: Any) -> AsyncIterator[Harness]:
    """A started voice server on ephemeral loopback ports plus an identified LVSP client."""
    cfg = VoiceServerConfig(
        host="127.0.0.1", port=0, udp_port=0, lvsp_token=LVSP_TOKEN, **overrides
    )
    server = VoiceServer(cfg)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            endpoint = f"ws://127.0.0.1:{server.port}"
            ws = await http.ws_connect(server.lvsp_url)
            lvsp = Lvsp(ws, endpoint)
            await lvsp.identify()
            try:
                yield Harness(server, http, lvsp)
            finally:
                await ws.close()
    finally:
        await server.stop()
