"""Issue 17: guilds that play the same live stream with the same options share one encode;
each guild's listener hears the stream, and a guild whose filters diverge gets its own.

The live source is an endless MP3 stream (a 440 Hz loop) served by the test on loopback; the
node's guilds each have a listener of their own on the real built-in voice server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from audionode.voice import rtp
from audionode.voice.packetizer import SILENCE_FRAME
from tests.conftest import NodeFactory
from tests.e2e.chain import BOT, EventLog, chain, decode, dominant
from tests.engine.guilds import Guild, join, of_chain
from tests.media.mediafiles import tone, write_media
from tests.transport.listener import Listener


class Ear:
    """The bot's audio frames a listener received, DAVE-decrypted once each as they come."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.frames: list[tuple[float, bytes]] = []
        self._seen = 0

    def poll(self) -> list[tuple[float, bytes]]:
        packets = self.listener.packets
        cipher = self.listener.cipher
        while cipher is not None and self._seen < len(packets):
            p = packets[self._seen]
            self._seen += 1
            if rtp.classify(p.data) is not rtp.DatagramKind.RTP:
                continue
            frame = cipher.open(p.data).payload
            if frame == SILENCE_FRAME:
                continue
            if frame.endswith(b"\xfa\xfa"):
                frame = self.listener.dave_decrypt(BOT, frame)
            self.frames.append((p.at, frame))
        return self.frames

    def tone_since(self, since: float, frames: int = 50) -> float:
        """The dominant frequency of ``frames`` frames received after ``since``."""
        audio = [f for at, f in self.poll() if at >= since][:frames]
        assert len(audio) == frames, len(audio)
        return dominant(decode(audio)[4800:])


@contextlib.asynccontextmanager
async def live_site(tmp_path: Path) -> AsyncIterator[str]:
    """An endless MP3 stream (the same half second of 440 Hz again and again) on loopback."""
    write_media(tmp_path / "loop.mp3", tone([440], 0.5), "mp3", options={"write_xing": "0"})
    chunk = (tmp_path / "loop.mp3").read_bytes()

    async def live(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "audio/mpeg"})
        await resp.prepare(request)
        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
            while True:  # about real time: half a second of audio every 0.4 s
                await resp.write(chunk)
                await asyncio.sleep(0.4)
        return resp

    app = web.Application()
    app.router.add_get("/live.mp3", live)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/live.mp3"
    finally:
        await runner.cleanup()


async def _shared(c: Any, want: dict[str, int], within: float = 10.0) -> dict[str, int]:
    """Poll ``/status`` until the engine reports ``want`` as its shared encodes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        _, body = await c.node.get("/status")
        shared: dict[str, int] = body["engine"]["engines"].get("0", {}).get("shared", {})
        if shared == want or loop.time() > deadline:
            return shared
        await asyncio.sleep(0.25)


async def test_guilds_on_one_live_stream_share_one_encode_until_one_diverges(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    async with live_site(tmp_path) as url, chain(node_factory) as c:
        log = EventLog(c.ws)
        guilds: list[Guild] = [of_chain(c)]
        try:
            for _ in range(2):
                guilds.append(await join(c, log))
            for g in guilds:
                source = await g.load(url)
                assert source["is_live"] is True or source.get("duration") in (None, 0), source
            for g in guilds:
                await log.wait("SOURCE_START", lambda d, g=g: d["guild_id"] == g.id)
            assert await _shared(c, {"encodes": 1, "players": 3}) == {"encodes": 1, "players": 3}

            ears = [Ear(g.listener) for g in guilds]
            since = asyncio.get_running_loop().time()
            await asyncio.sleep(1.5)
            for ear in ears:  # every guild hears the stream through the one encode
                assert abs(ear.tone_since(since - 1.0) - 440) < 5
                assert 65 <= len([at for at, _ in ear.poll() if at >= since]) <= 85

            # One guild's filters diverge: it gets a pipeline of its own, the others share on.
            headers = guilds[2].headers
            body = {"filter": {"timescale": {"pitch": 1.5}}}
            async with c.node.http.post(f"{c.node.url}/options", headers=headers, json=body) as r:
                assert r.status == 200, await r.text()
            assert await _shared(c, {"encodes": 1, "players": 2}) == {"encodes": 1, "players": 2}
            # 50 frames from 0.5 s after the divergence: the window is 1.2 s long, so a frame
            # still on its way when it is read cannot leave it one short
            await asyncio.sleep(1.7)
            since = asyncio.get_running_loop().time() - 1.2
            assert abs(ears[0].tone_since(since) - 440) < 5
            assert abs(ears[1].tone_since(since) - 440) < 5
            assert abs(ears[2].tone_since(since) - 660) < 10
            stops = [f for f in log.ops("SOURCE_STOP")]
            assert stops == [], stops  # the divergence ended no track
        finally:
            await log.stop()
            for g in guilds[1:]:
                await g.listener.close()


async def test_a_guild_placed_on_another_worker_moves_to_the_one_encoding_its_live_stream(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    # Two workers: the second guild is placed by load on the empty worker 1; its first play of
    # the live stream that worker 0 encodes for the first guild moves it there (one encode).
    async with live_site(tmp_path) as url, chain(node_factory, engine={"workers": 2}) as c:
        log = EventLog(c.ws)
        guilds: list[Guild] = [of_chain(c)]
        try:
            guilds.append(await join(c, log))
            _, body = await c.node.get("/status")
            assert [p["placed"] for p in body["engine"]["processes"]] == [1, 1]
            for g in guilds:
                await g.load(url)
                await log.wait("SOURCE_START", lambda d, g=g: d["guild_id"] == g.id)
            assert await _shared(c, {"encodes": 1, "players": 2}) == {"encodes": 1, "players": 2}
            _, body = await c.node.get("/status")
            engine = body["engine"]
            assert engine["moved_to_share"] == 1
            assert [p["placed"] for p in engine["processes"]] == [2, 0]
            assert engine["engines"].get("1", {}).get("shared", {}).get("players", 0) == 0

            ears = [Ear(g.listener) for g in guilds]
            since = asyncio.get_running_loop().time()
            await asyncio.sleep(1.5)
            for ear in ears:  # both hear the stream, the moved one on its new connection
                assert abs(ear.tone_since(since - 1.0) - 440) < 5
            # the old connection's close stayed inside the node
            assert log.ops("VOICE_CLOSED") == [] and log.ops("SOURCE_STOP") == []
        finally:
            await log.stop()
            for g in guilds[1:]:
                await g.listener.close()
