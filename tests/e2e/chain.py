"""The whole chain on loopback: a scripted bot drives the real node, which plays into the real
built-in voice server, where a listening member decrypts (transport, then DAVE) and decodes.

Nothing in the chain is mocked: the bot speaks the control websocket and REST over real
sockets; the node's engine connects with its own voice client; the listener is an independent
voice client built for the transport tests.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from audionode.demo.bot import EventLog as BotEventLog
from audionode.voice import rtp
from audionode.voice.packetizer import SILENCE_FRAME
from tests.conftest import PASSWORD, NodeFactory, NodeHarness, WsClient
from tests.transport.listener import Listener
from tests.transport.voiceserver_harness import Harness, voice_server
from tests.voiceserver.audio import decode_opus

BOT = 4242
_ids = itertools.count(1)


@dataclass
class Chain:
    node: NodeHarness
    vs: Harness
    ws: WsClient
    listener: Listener
    headers: dict[str, str]
    guild: int
    channel: int
    token: str
    endpoint: str

    async def connect_voice(self) -> None:
        """Forward the VOICE_SERVER_UPDATE and wait until the node's voice client is up."""
        server = {"guild_id": str(self.guild), "token": self.token, "endpoint": self.endpoint}
        await self.ws.send("DISCORD_EVENT", {"t": "VOICE_SERVER_UPDATE", "d": server})
        frames = await events_until(self.ws, "VOICE_CONNECTED")
        assert frames[-1]["d"]["dave_protocol_version"] == 1

    async def rest(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        url = f"{self.node.url}{path}"
        async with self.node.http.request(method, url, headers=self.headers, json=json) as r:
            return r.status, (await r.json() if r.content_length else None)

    async def load(self, query: str) -> dict[str, Any]:
        status, body = await self.rest("POST", "/loadSource", {"query": query})
        assert status == 200, body
        source: dict[str, Any] = body["source"]
        return source

    def audio_frames(self, bot_ssrc: int) -> list[tuple[float, bytes]]:
        """(arrival time, opus) of every packet the bot sent, transport- and DAVE-decrypted."""
        out = []
        for at, opened in self.listener.opened(bot_ssrc):
            frame = opened.payload
            if frame != SILENCE_FRAME and frame.endswith(b"\xfa\xfa"):
                frame = self.listener.dave_decrypt(BOT, frame)
            out.append((at, frame))
        return out

    def bot_ssrc(self) -> int:
        ssrcs = {
            rtp.seq_ts_ssrc(p.data)[2]
            for p in self.listener.packets
            if rtp.classify(p.data) is rtp.DatagramKind.RTP
        }
        assert len(ssrcs) == 1, ssrcs
        return ssrcs.pop()


class EventLog(BotEventLog):
    """The package's event reader (``audionode/demo/bot.py``) on a test's raw bot socket."""

    def __init__(self, ws: WsClient) -> None:
        super().__init__(ws.ws)


async def events_until(ws: WsClient, op: str, within: float = 15.0) -> list[dict[str, Any]]:
    """Collect frames until one with ``op`` arrives (inclusive)."""
    seen: list[dict[str, Any]] = []
    while True:
        frame = await ws.recv(within)
        seen.append(frame)
        if frame["op"] == op:
            return seen


@contextlib.asynccontextmanager
async def chain(
    node_factory: NodeFactory, connect: bool = True, **node_overrides: Any
) -> AsyncIterator[Chain]:
    """A node, a voice server, a listener in the channel, and the bot identified with its voice
    client created; ``connect=False`` leaves the VOICE_SERVER_UPDATE to ``connect_voice()``."""
    guild, channel, listener_id = 7000 + next(_ids), 8000 + next(_ids), 9000 + next(_ids)
    sources = {"plugins": ["tone"], "http": {"allow_private": True}}
    overrides = {"sources": sources, **node_overrides}
    async with voice_server() as vs, node_factory(**overrides) as node, node.ws() as ws:
        lgrant = await vs.lvsp.grant(listener_id, channel, guild)
        listener = Listener(
            vs.endpoint, guild, listener_id, channel, lgrant.session_id, lgrant.token
        )
        await listener.connect(vs.http)
        grant = await vs.lvsp.grant(BOT, channel, guild)
        await ws.identify(BOT)
        state = {
            "guild_id": str(guild),
            "user_id": str(BOT),
            "channel_id": str(channel),
            "session_id": grant.session_id,
        }
        await ws.send("DISCORD_EVENT", {"t": "VOICE_STATE_UPDATE", "d": state})
        vc_id = (await ws.expect("VC_CREATED"))["id"]
        await ws.expect("VC_CHANNEL_EDITED")
        headers = {
            "Authorization": PASSWORD,
            "User-ID": str(BOT),
            "Guild-ID": str(guild),
            "VoiceClient-ID": vc_id,
        }
        c = Chain(node, vs, ws, listener, headers, guild, channel, grant.token, grant.endpoint)
        if connect:
            await c.connect_voice()
        try:
            yield c
        finally:
            await listener.close()


def dominant(pcm: np.ndarray, rate: int = 48000) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    spectrum[0] = 0
    return float(np.argmax(spectrum) * rate / len(pcm))


def decode(frames: list[bytes]) -> np.ndarray:
    pcm, _ = decode_opus(frames)
    return pcm


def band_level(pcm: np.ndarray, freq: float, rate: int = 48000) -> float:
    """Spectral magnitude around ``freq`` (±15 Hz), normalised by the window length."""
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm)))) / len(pcm)
    lo, hi = int((freq - 15) * len(pcm) / rate), int((freq + 15) * len(pcm) / rate) + 1
    return float(spectrum[lo:hi].max())
