"""Stopping the voice server is prompt and clean, also while clients keep reconnecting.

The soak found the voice server sometimes taking 10 s to stop: the node's voice clients
reconnect on their 1001 while it shuts down, the server accepted them and closed them only at
their identify deadline. Now it stops listening first and closes what is open at once.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from audionode.config import VoiceServerConfig
from audionode.voiceserver.app import VoiceServer
from audionode.voiceserver.lvsp_client import LvspClient

from .conftest import TOKEN


async def redial(http: aiohttp.ClientSession, url: str, done: asyncio.Event) -> list[int | None]:
    """A client that reconnects as soon as its socket closes (as the node's do); the close
    codes it saw."""
    codes: list[int | None] = []
    while not done.is_set():
        try:
            ws = await http.ws_connect(url)
        except aiohttp.ClientError:
            await asyncio.sleep(0.01)
            continue
        async for _ in ws:
            pass
        codes.append(ws.close_code)
    return codes


async def test_stop_is_prompt_while_clients_reconnect_and_one_does_not_read() -> None:
    cfg = VoiceServerConfig(host="127.0.0.1", port=0, udp_port=0, lvsp_token=TOKEN)
    server = VoiceServer(cfg)
    await server.start()
    voice_url = f"ws://127.0.0.1:{server.port}/?v=8"
    async with aiohttp.ClientSession() as http:
        control = await LvspClient.open(http, server.lvsp_url, TOKEN)
        silent = await http.ws_connect(voice_url)  # never identifies, never reads
        done = asyncio.Event()
        dialers = [asyncio.create_task(redial(http, voice_url, done)) for _ in range(4)]
        dialers.append(asyncio.create_task(redial(http, server.lvsp_url, done)))
        await asyncio.sleep(0.5)  # all connected (they wait for identify)

        began = time.monotonic()
        await server.stop()
        took = time.monotonic() - began
        done.set()
        seen = await asyncio.wait_for(asyncio.gather(*dialers), 5)
        print(f"stop took {took * 1000:.0f} ms; close codes seen by the redialers: {seen}")
        assert took < 1.0
        assert await control.closed() == (1001, "voice server shutting down")
        assert all(codes and set(codes) == {1001} for codes in seen), seen
        # the port is closed: a reconnect is refused instead of waiting for an identify
        try:
            await http.ws_connect(voice_url)
        except aiohttp.ClientConnectionError:
            pass
        else:
            raise AssertionError("the voice server still accepts connections after stop()")
        await silent.close()
