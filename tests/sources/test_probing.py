"""Probing in its own processes: one slow media server cannot delay another guild's load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from audionode.config import HttpSourceConfig, SourcesConfig, YtdlpSourceConfig
from audionode.sources.loader import SourceManager
from tests.sources.conftest import MediaServer, start_site


@pytest.fixture
async def slow_server(served: Path) -> AsyncIterator[str]:
    """Answers at once with a media head and a few bytes, then sends nothing for 30 s: the
    probe of it blocks until its timeout."""

    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "audio/mpeg"})
        await resp.prepare(request)
        await resp.write((served / "a440.mp3").read_bytes()[:600])
        await asyncio.sleep(30)
        return resp

    app = web.Application()
    app.router.add_get("/slow.mp3", trickle)
    runner, base = await start_site(app, "127.0.0.1")
    yield f"{base}/slow.mp3"
    await runner.cleanup()


async def timed_load(manager: SourceManager, url: str) -> float:
    started = time.monotonic()
    result = await manager.load(url)
    assert result.type == "track", result.error
    return time.monotonic() - started


async def test_a_slow_media_server_does_not_delay_another_load(
    slow_server: str, public: MediaServer
) -> None:
    config = SourcesConfig(
        http=HttpSourceConfig(allow_private=True, timeout=5),
        ytdlp=YtdlpSourceConfig(enabled=False),
        probe_processes=2,
    )
    manager = SourceManager.from_config(config)
    fast = public.url("/media/a440.mp3")
    try:
        await asyncio.gather(timed_load(manager, fast), timed_load(manager, fast))  # warm up
        baseline = sorted([await timed_load(manager, fast) for _ in range(5)])[2]
        slow = [asyncio.ensure_future(manager.load(slow_server)) for _ in range(6)]
        await asyncio.sleep(0.3)  # every slow load is waiting on the slow server (or its turn)
        assert manager.shared is not None
        assert manager.shared.prober.pool.slots.busy("127.0.0.1") == 6
        loaded = sorted([await timed_load(manager, fast) for _ in range(5)])
        # the median within 100 ms of the baseline's; none waited for the slow server (5 s)
        assert loaded[2] - baseline < 0.1 and loaded[-1] < 1.0, (baseline, loaded)
        assert not any(task.done() for task in slow)
    finally:
        await manager.close()
    for task in slow:
        assert (await task).type == "error"
