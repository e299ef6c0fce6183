"""A real voice server on loopback ephemeral ports, and an LVSP client helper."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from audionode.config import VoiceServerConfig
from audionode.voiceserver.app import VoiceServer

from .member import VoiceMember

TOKEN = "lvsp-test-token"


class Lvsp:
    """A minimal LVSP client over a real aiohttp websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.last_s = 0

    async def send(self, op: int, d: Any) -> None:
        await self.ws.send_str(json.dumps({"op": op, "d": d}))

    async def recv(self, within: float = 5.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=within)
        assert msg.type is aiohttp.WSMsgType.TEXT, f"expected a frame, got {msg}"
        data: dict[str, Any] = json.loads(msg.data)
        self.last_s = data["s"]
        return data

    async def closed(self, within: float = 5.0) -> tuple[int | None, str]:
        """Read until the close frame; return (code, reason)."""
        while True:
            msg = await self.ws.receive(timeout=within)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return self.ws.close_code, msg.extra or ""

    async def identify(self) -> dict[str, Any]:
        hello = await self.recv()
        assert hello["op"] == 0
        await self.send(1, {"token": TOKEN})
        ready = await self.recv()
        assert ready["op"] == 3, ready
        return ready

    async def request(self, op: int, d: Any) -> dict[str, Any]:
        await self.send(op, d)
        return await self.recv()


LvspFactory = Callable[[], Awaitable[Lvsp]]


@pytest.fixture
def server_config() -> VoiceServerConfig:
    return VoiceServerConfig(host="127.0.0.1", port=0, udp_port=0, lvsp_token=TOKEN)


@pytest.fixture
async def server(server_config: VoiceServerConfig) -> AsyncIterator[VoiceServer]:
    srv = VoiceServer(server_config)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
    for m in list(VoiceMember.live):  # a failed test must not leak sockets into the next one
        await m.close()


@pytest.fixture
def lvsp(server: VoiceServer, http: aiohttp.ClientSession) -> LvspFactory:
    async def connect() -> Lvsp:
        return Lvsp(await http.ws_connect(server.lvsp_url))

    return connect
