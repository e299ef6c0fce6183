"""A node, the built-in voice server and a listening member, for the Lavalink front's tests.

The bot's side is a real Lavalink client library (lavalink.py or wavelink) pointed at the
node. What Discord's gateway would deliver to the bot (its VOICE_STATE_UPDATE and
VOICE_SERVER_UPDATE) comes from the voice server over real LVSP (``VoiceGrant``), and is fed to
the library the way its Discord library would feed it. The listener is the independent voice
client of the transport tests: what it decrypts and decodes is what a user would hear.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from audionode.voice import rtp
from audionode.voice.packetizer import SILENCE_FRAME
from tests.conftest import NodeFactory, NodeHarness
from tests.e2e.chain import decode, dominant
from tests.media.mediafiles import tone, write_media
from tests.transport.listener import Listener
from tests.transport.voiceserver_harness import Harness, VoiceGrant, voice_server

BOT = 5151
_ids = itertools.count(1)

FAST = {
    "player_update_interval": 0.5,
    "stats_interval": 1.0,
    "track_stuck_threshold": 1.0,
    "cleanup_threshold": 1.0,
}
"""Short Lavalink schedules so a test sees each message within a second or two."""


@dataclass
class Stage:
    """Everything but the bot: the node, the voice server, a listener in the channel."""

    node: NodeHarness
    vs: Harness
    listener: Listener
    guild: int
    channel: int
    _seen: list[tuple[float, bytes] | None] = field(default_factory=list)

    @property
    def host_port(self) -> tuple[str, int]:
        return self.node.node.host, self.node.node.port

    async def grant(self, channel: int | None = None) -> VoiceGrant:
        """What Discord would send the bot for joining ``channel`` (a move if it is in one)."""
        return await self.vs.lvsp.grant(BOT, channel or self.channel, self.guild)

    def bot_frames(self) -> list[tuple[float, bytes]]:
        """(arrival time, opus) of every audio frame the bot sent, transport- and
        DAVE-decrypted (each packet once: DAVE refuses a replay); silence is left out."""
        packets = self.listener.packets
        for p in packets[len(self._seen) :]:
            self._seen.append(self._open(p.at, p.data))
        return [x for x in self._seen if x is not None]

    def _open(self, at: float, data: bytes) -> tuple[float, bytes] | None:
        if rtp.classify(data) is not rtp.DatagramKind.RTP or self.listener.cipher is None:
            return None
        frame = self.listener.cipher.open(data).payload
        if frame == SILENCE_FRAME:
            return None
        if frame.endswith(b"\xfa\xfa"):
            frame = self.listener.dave_decrypt(BOT, frame)
        return at, frame

    def heard(self, since: float = 0.0, until: float = float("inf")) -> np.ndarray:
        """The bot's audio that arrived in ``[since, until)`` (monotonic), decoded."""
        frames = [f for at, f in self.bot_frames() if since <= at < until]
        return decode(frames) if frames else np.zeros(0)

    def first_heard(self, since: float, freq: float) -> float | None:
        """Arrival time of the first frame after ``since`` whose strongest frequency is
        ``freq`` (to the 50 Hz of one 20 ms frame), or None."""
        frames = [(at, f) for at, f in self.bot_frames() if at >= since]
        pcm = decode([f for _, f in frames]) if frames else np.zeros(0)
        for i, (at, _) in enumerate(frames):
            chunk = pcm[i * 960 : (i + 1) * 960]
            if len(chunk) == 960 and abs(dominant(chunk) - freq) <= 50:
                return at
        return None

    async def frames_after(self, since: float, count: int, within: float = 10.0) -> None:
        """Wait until ``count`` audio frames arrived after ``since``."""

        def enough() -> bool:
            return sum(1 for at, _ in self.bot_frames() if at >= since) >= count

        await self.listener.wait_for(enough, within)


@contextlib.asynccontextmanager
async def stage(node_factory: NodeFactory, **lavalink: Any) -> AsyncIterator[Stage]:
    guild, channel, listener_id = 61000 + next(_ids), 62000 + next(_ids), 63000 + next(_ids)
    sources = {"plugins": ["tone"], "http": {"allow_private": True}}
    settings = {**FAST, **lavalink}
    async with voice_server() as vs, node_factory(sources=sources, lavalink=settings) as node:
        grant = await vs.lvsp.grant(listener_id, channel, guild)
        listener = Listener(vs.endpoint, guild, listener_id, channel, grant.session_id, grant.token)
        await listener.connect(vs.http)
        try:
            yield Stage(node, vs, listener, guild, channel)
        finally:
            await listener.close()


__all__ = ["BOT", "Stage", "dominant", "rms", "stage", "stalling_server", "until"]


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(pcm)))) if len(pcm) else 0.0


async def until(predicate: Callable[[], bool], within: float = 10.0, what: str = "") -> None:
    """Poll a condition of the library's state."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"not reached within {within} s: {what}"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def stalling_server(folder: Path, sent: float = 0.07) -> AsyncIterator[str]:
    """An HTTP server of a 30 s Ogg/Opus file. The http source reads its head, then lets libav
    probe it (both get the whole file); playback gets the first ``sent`` of it and then
    nothing more, the connection left open: a stream that got stuck."""
    write_media(folder / "stall.ogg", tone([330.0], 30), "opus")
    wav = (folder / "stall.ogg").read_bytes()
    cut = int(len(wav) * sent)
    served = itertools.count()

    async def serve(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "audio/ogg"})
        resp.content_length = len(wav)
        await resp.prepare(request)
        if next(served) < 2:  # the head and the probe
            await resp.write(wav)
            return resp
        await resp.write(wav[:cut])
        await asyncio.sleep(30)
        return resp

    app = web.Application()
    app.router.add_get("/stall.ogg", serve)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/stall.ogg"
    finally:
        await runner.cleanup()
