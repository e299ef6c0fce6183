"""An endless HTTP stream (a local aiohttp server looping MP3 frames) through the pipeline."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from audionode.config import EngineConfig
from audionode.errors import Conflict
from audionode.media.events import PipelineEvent, TrackFailed, TrackFinished, TrackStarted
from audionode.media.frames import Frame
from audionode.media.pipeline import Pipeline
from audionode.sources.api import Playable
from tests.media.mediafiles import decode_opus, peak_freq, tone, write_media


class Radio:
    def __init__(self, chunk: bytes) -> None:
        self.chunk = chunk
        self.listeners = 0
        self.hung_up = asyncio.Event()

    async def stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "audio/mpeg"})
        await resp.prepare(request)
        self.listeners += 1
        try:
            while True:  # endless: the same half second of MP3 frames again and again
                await resp.write(self.chunk)
                await asyncio.sleep(0.01)
        except (ConnectionResetError, asyncio.CancelledError):
            self.hung_up.set()
            raise
        return resp


@pytest.fixture
async def stalled(tmp_path: Path) -> AsyncIterator[str]:
    """Sends half a second of MP3, then nothing, without closing."""
    path = tmp_path / "once.mp3"
    write_media(path, tone([440], 0.5), "mp3", options={"write_xing": "0"})

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "audio/mpeg"})
        await resp.prepare(request)
        await resp.write(path.read_bytes())
        await asyncio.sleep(30)
        return resp

    app = web.Application()
    app.router.add_get("/stall", handler)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/stall"
    await runner.cleanup()


@pytest.fixture
async def radio(tmp_path: Path) -> AsyncIterator[tuple[str, Radio]]:
    path = tmp_path / "loop.mp3"
    write_media(path, tone([440], 0.5), "mp3", options={"write_xing": "0"})
    r = Radio(path.read_bytes())
    app = web.Application()
    app.router.add_get("/live", r.stream)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/live", r
    await runner.cleanup()


async def pop_frames(p: Pipeline, n: int, pace: float = 0.0) -> list[Frame]:
    frames: list[Frame] = []
    async with asyncio.timeout(10):
        while len(frames) < n:
            frame = p.buffer.pop()
            if frame is None:
                await asyncio.sleep(0.002)
            else:
                frames.append(frame)
                await asyncio.sleep(pace)
    return frames


async def test_endless_stream_plays_past_its_loop_length_and_stops_cleanly(
    radio: tuple[str, Radio],
) -> None:
    url, server = radio
    events: queue.Queue[PipelineEvent] = queue.Queue()
    # the I/O timeout is per read: a stream playing far longer than it stays healthy
    p = Pipeline(EngineConfig(), on_event=events.put, open_timeout=0.5)
    p.start()
    try:
        p.play(Playable.from_url(url), 1)
        frames = await pop_frames(p, 75, pace=0.02)  # 1.5 s in real time, from a 0.5 s loop
        assert abs(peak_freq(decode_opus(frames)[4800:]) - 440) < 5
        seen = list(events.queue)
        started = [e for e in seen if isinstance(e, TrackStarted)]
        assert started and started[0].is_live and started[0].duration_ms is None
        assert not [e for e in seen if isinstance(e, TrackFailed | TrackFinished)]
        with pytest.raises(Conflict, match="live stream"):
            p.seek(1000)
        p.stop()
        async with asyncio.timeout(5):
            await server.hung_up.wait()
        assert server.listeners == 1
    finally:
        p.close()


async def test_a_stalled_stream_fails_with_a_clear_message(stalled: str) -> None:
    events: queue.Queue[PipelineEvent] = queue.Queue()
    p = Pipeline(EngineConfig(), on_event=events.put, open_timeout=0.5)
    p.start()
    try:
        p.play(Playable.from_url(stalled), 1)
        frames = await pop_frames(p, 20)  # the half second it did send
        async with asyncio.timeout(10):
            while not [e for e in list(events.queue) if isinstance(e, TrackFailed)]:
                p.buffer.pop()
                await asyncio.sleep(0.01)
        failed = next(e for e in list(events.queue) if isinstance(e, TrackFailed))
        assert failed.message == "the stream stopped sending data (nothing for 0.5 s)"
        assert len(frames) == 20
    finally:
        p.close()
