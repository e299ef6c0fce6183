"""The built-in voice server on loopback, and the LVSP client that creates voice states on it.

Used by ``test_e2e.py``, ``tests/e2e`` and ``bench/pacing.py``. The client is the package's
(:class:`~audionode.voiceserver.lvsp_client.LvspClient`, ``docs/protocols/lvsp.md``):
``grant`` = VST_REQUEST → INFO(VST) carrying the token the voice client must present; asking for
another channel is a move: new token, and the client still connected with the old one is closed
with 4014.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from audionode.config import VoiceServerConfig
from audionode.voiceserver.app import VoiceServer
from audionode.voiceserver.lvsp_client import LvspClient, VoiceGrant

__all__ = ["LVSP_TOKEN", "Harness", "VoiceGrant", "voice_server"]

LVSP_TOKEN = "transport-e2e-lvsp"


@dataclass
class Harness:
    server: VoiceServer
    http: aiohttp.ClientSession
    lvsp: LvspClient

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
            lvsp = await LvspClient.open(http, server.lvsp_url, LVSP_TOKEN)
            try:
                yield Harness(server, http, lvsp)
            finally:
                await lvsp.close()
    finally:
        await server.stop()
