"""yt-dlp run for real (in its worker processes) against a loopback web server."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator

import pytest

from audionode.config import EngineConfig, HttpSourceConfig, YtdlpSourceConfig
from audionode.errors import Forbidden, SourceError
from audionode.media.events import PipelineEvent, TrackFinished
from audionode.media.pipeline import Pipeline
from audionode.sources.ytdlp import YtdlpSource
from tests.media.mediafiles import decode_opus, peak_freq
from tests.sources.conftest import MediaServer


@pytest.fixture
async def ytdlp() -> AsyncIterator[YtdlpSource]:
    source = YtdlpSource(
        YtdlpSourceConfig(processes=1, timeout=20), HttpSourceConfig(allow_private=True, timeout=5)
    )
    yield source
    await source.close()


def test_handles_urls_and_search_prefixes() -> None:
    source = YtdlpSource()
    for query in ("https://www.youtube.com/watch?v=x", "ytsearch:never", "scsearch5:lofi",
                  "ytmsearch:a"):
        assert source.handles(query)
    for query in ("tone:440", "never gonna", "ytsearchall:x", "local:a.mp3"):
        assert not source.handles(query)


async def test_a_page_with_audio_resolves_and_an_expired_url_is_resolved_once(
    ytdlp: YtdlpSource, server: MediaServer
) -> None:
    result = await ytdlp.load(server.url("/page.html"))
    assert result is not None and result.type == "track"
    track = result.tracks[0]
    assert track.source == "ytdlp" and track.title.startswith("Signed")
    assert track.data["stream"] == server.url("/signed/1/a440.mp3")
    assert server.page_hits == 1

    server.valid_tokens.clear()  # the signed URL expired: HTTP 403
    playable = await ytdlp.open(track)
    assert playable.url == server.url("/signed/2/a440.mp3")
    assert server.page_hits == 2 and ytdlp.extractions == 2

    # the fresh URL really plays
    events: queue.Queue[PipelineEvent] = queue.Queue()
    pipeline = Pipeline(EngineConfig(), on_event=events.put)
    pipeline.start()
    try:
        pipeline.play(playable, 1)
        frames = []
        while not any(isinstance(e, TrackFinished) for e in list(events.queue)) or len(
            pipeline.buffer
        ):
            frame = pipeline.buffer.pop()
            if frame is not None:
                frames.append(frame)
            else:
                await asyncio.sleep(0.005)
        assert abs(peak_freq(decode_opus(frames)[4800:]) - 440) < 5
    finally:
        pipeline.close()


async def test_a_url_still_refused_after_one_re_resolve_is_an_error(
    ytdlp: YtdlpSource, server: MediaServer
) -> None:
    result = await ytdlp.load(server.url("/page.html"))
    assert result is not None
    server.issue_valid_tokens = False  # every URL the page hands out from now on is refused
    server.valid_tokens.clear()
    with pytest.raises(SourceError, match=r"refused \(HTTP 403\) even after resolving it again"):
        await ytdlp.open(result.tracks[0])
    assert ytdlp.extractions == 2  # one re-resolve, not a loop


async def test_a_page_with_two_audio_tags_is_a_playlist(
    ytdlp: YtdlpSource, server: MediaServer
) -> None:
    result = await ytdlp.load(server.url("/two.html"))
    assert result is not None and result.type == "playlist"
    assert result.playlist is not None and result.playlist.name == "Two songs"
    assert [t.data["stream"] for t in result.tracks] == [
        server.url("/media/a440.mp3"), server.url("/media/a440.opus")
    ]
    playable = await ytdlp.open(result.tracks[1])
    assert playable.url == server.url("/media/a440.opus")


async def test_missing_page_is_a_clear_error(ytdlp: YtdlpSource, server: MediaServer) -> None:
    with pytest.raises(SourceError, match="HTTP Error 404"):
        await ytdlp.load(server.url("/nothing.html"))


async def test_a_hanging_site_times_out_and_the_next_call_works(server: MediaServer) -> None:
    source = YtdlpSource(
        YtdlpSourceConfig(processes=1, timeout=20),
        HttpSourceConfig(allow_private=True, timeout=10),
    )
    try:
        # a worker's first extraction loads yt-dlp's extractors (~1.5 s): not what is tested
        assert await source.load(server.url("/two.html")) is not None
        source.pool.timeout = 1.0
        with pytest.raises(SourceError, match=r"gave up after 1 s"):
            await source.load(server.url("/slow"))
        source.pool.timeout = 20
        result = await source.load(server.url("/two.html"))  # on a fresh worker
        assert result is not None and result.type == "playlist"
        assert source.pool.started == 2
    finally:
        await source.close()


async def test_private_targets_are_refused_before_yt_dlp_runs(server: MediaServer) -> None:
    source = YtdlpSource(YtdlpSourceConfig(processes=1), HttpSourceConfig())
    try:
        with pytest.raises(Forbidden, match="loopback"):
            await source.load(server.url("/page.html"))
        assert source.extractions == 0 and source.pool.started == 0
    finally:
        await source.close()
