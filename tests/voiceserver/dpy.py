"""Drive the real discord.py 2.7.1 ``VoiceClient`` against our voice server.

Only discord.py's *main-gateway* side is stubbed: ``guild.change_voice_state`` behaves like
Litecord, asking our server for a voice state over real LVSP (VST_REQUEST) and feeding
VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE back into the voice client. Everything on the voice
side (websocket, UDP, IP discovery, XChaCha, DAVE through davey, RTP, opus pacing) is discord.py's
own code.

One adaptation: discord.py always dials ``wss://{endpoint}/?v=8`` (gateway.py
``from_connection_state``) and strips only a ``wss://`` prefix from the endpoint, so a ``ws://``
endpoint cannot be passed through VOICE_SERVER_UPDATE. The stub ``http.ws_connect`` therefore
maps ``wss://`` to ``ws://`` for our plain-HTTP loopback server and passes everything else
(``compress=15``) to aiohttp unchanged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import discord

from audionode.voiceserver.lvsp_client import LvspClient


class OpusTone(discord.AudioSource):
    """Pre-encoded opus frames (discord.py has no libopus here, so it must not encode)."""

    def __init__(self, frames: list[bytes]) -> None:
        self._frames: Iterator[bytes] = iter(frames)
        self.first_read: float | None = None

    def is_opus(self) -> bool:
        return True

    def read(self) -> bytes:
        if self.first_read is None:
            self.first_read = time.monotonic()
        return next(self._frames, b"")


class _Http:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.urls: list[str] = []

    async def ws_connect(self, url: str, *, compress: int = 0) -> aiohttp.ClientWebSocketResponse:
        self.urls.append(url)
        assert url.startswith("wss://")
        return await self.session.ws_connect(
            "ws://" + url[len("wss://") :], compress=compress, autoclose=False, max_msg_size=0
        )


class _Guild:
    def __init__(self, harness: DpyHarness, guild_id: int) -> None:
        self.id = guild_id
        self.harness = harness
        self.me = SimpleNamespace(voice=None)
        self.channels: dict[int, _Channel] = {}

    def get_channel(self, channel_id: int) -> _Channel:
        return self.channels[channel_id]

    async def change_voice_state(
        self, *, channel: Any, self_deaf: bool = False, self_mute: bool = False
    ) -> None:
        # Like the main gateway: answer later, after discord.py has switched its flow state.
        asyncio.get_running_loop().create_task(
            self.harness.answer(None if channel is None else channel.id, self_mute, self_deaf)
        )


class _Channel:
    def __init__(self, guild: _Guild, channel_id: int) -> None:
        self.id = channel_id
        self.guild = guild
        guild.channels[channel_id] = self

    def _get_voice_client_key(self) -> tuple[int, str]:
        return self.guild.id, "guild_id"


class DpyHarness:
    """A fake ``discord.Client`` for one bot user; ``voice_client`` is the real VoiceClient."""

    def __init__(
        self,
        lvsp: LvspClient,
        http: aiohttp.ClientSession,
        *,
        user_id: int,
        guild_id: int,
        channel_id: int,
    ) -> None:
        self.lvsp = lvsp
        self.user_id = user_id
        self.http = _Http(http)
        self.guild = _Guild(self, guild_id)
        self.channel = _Channel(self.guild, channel_id)
        self.voice_info: dict[str, Any] = {}
        self.endpoint = ""
        self.removed: list[int] = []
        state = SimpleNamespace(
            loop=asyncio.get_running_loop(),
            user=SimpleNamespace(id=user_id),
            http=self.http,
            _remove_voice_client=self.removed.append,
        )
        self.client = SimpleNamespace(_connection=state, loop=state.loop)
        self.voice_client = discord.VoiceClient(self.client, self.channel)  # type: ignore[arg-type]

    async def answer(self, channel_id: int | None, self_mute: bool, self_deaf: bool) -> None:
        vc = self.voice_client
        if channel_id is None:
            await vc.on_voice_state_update(
                {"channel_id": None, "session_id": "", "user_id": str(self.user_id)}
            )  # type: ignore[typeddict-item]
            return
        grant = await self.lvsp.grant(self.user_id, channel_id, self.guild.id)
        info = self.voice_info = grant.info
        await vc.on_voice_state_update(
            {  # type: ignore[typeddict-item]
                "guild_id": info["guild_id"],
                "channel_id": info["channel_id"],
                "user_id": info["user_id"],
                "session_id": info["session_id"],
                "self_mute": self_mute,
                "self_deaf": self_deaf,
                "mute": False,
                "deaf": False,
            }
        )
        await vc.on_voice_server_update(
            {"token": info["token"], "guild_id": info["guild_id"], "endpoint": self.endpoint}
        )

    async def connect(self, endpoint: str, *, within: float = 10.0) -> discord.VoiceClient:
        self.endpoint = endpoint
        await self.voice_client.connect(timeout=within, reconnect=False)
        return self.voice_client

    async def play_and_wait(self, source: discord.AudioSource, *, within: float = 20.0) -> None:
        done = asyncio.get_running_loop().create_future()

        def after(error: Exception | None) -> None:
            done.get_loop().call_soon_threadsafe(done.set_result, error)

        self.voice_client.play(source, after=after)
        error = await asyncio.wait_for(done, within)
        assert error is None, error

    async def disconnect(self) -> None:
        await self.voice_client.disconnect(force=True)
