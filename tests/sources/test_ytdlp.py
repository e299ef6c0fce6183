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
        with pytest.raises(Forbidden, match=r"^refusing to fetch from 127\.0\.0\.1: not a public"):
            await source.load(server.url("/page.html"))
        assert source.extractions == 0 and source.pool.started == 0
    finally:
        await source.close()


# -- every request yt-dlp makes goes through the node's guard -------------------------------


@pytest.fixture
async def guarded() -> AsyncIterator[YtdlpSource]:
    """The default policy, with 127.0.0.2 standing for the internet (127.0.0.1 refused)."""
    source = YtdlpSource(
        YtdlpSourceConfig(processes=1, timeout=20),
        HttpSourceConfig(allow_networks=["127.0.0.2/32"], timeout=5),
    )
    yield source
    await source.close()


REFUSED = (
    "refusing to fetch from 127.0.0.1: not a public address the node may reach "
    "(sources.http.allow_private or sources.http.allow_networks)"
)


async def test_yt_dlp_following_a_redirect_to_an_internal_address_is_refused(
    guarded: YtdlpSource, public: MediaServer, server: MediaServer
) -> None:
    page = public.url(f"/redirect?to={server.url('/page.html')}")
    with pytest.raises(Forbidden) as err:
        await guarded.load(page)
    assert err.value.message == REFUSED
    assert public.hits == 1 and server.hits == 0


async def test_a_manifest_yt_dlp_would_fetch_from_an_internal_address_is_refused(
    guarded: YtdlpSource, public: MediaServer, server: MediaServer
) -> None:
    """The generic extractor downloads an HLS manifest named by the page to list its formats:
    that fetch goes through the guard too. Open port or closed, the same answer."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    answers = []
    for target in (server.url("/media/index.m3u8"), f"http://127.0.0.1:{closed}/index.m3u8"):
        with pytest.raises(Forbidden) as err:
            await guarded.load(public.url(f"/embed.html?tag=video&src={target}"))
        answers.append(err.value.message)
    assert answers == [REFUSED, REFUSED]
    assert server.hits == 0 and public.hits == 2


async def test_an_internal_stream_url_found_on_a_page_is_refused_when_opened(
    guarded: YtdlpSource, public: MediaServer, server: MediaServer
) -> None:
    """yt-dlp does not fetch an <audio src> while extracting: the node refuses it when the
    track is opened (and the engine would refuse it again)."""
    page = public.url(f"/embed.html?tag=audio&src={server.url('/media/a440.mp3')}")
    result = await guarded.load(page)
    assert result is not None and result.type == "track"
    with pytest.raises(Forbidden) as err:
        await guarded.open(result.tracks[0])
    assert err.value.message == REFUSED and server.hits == 0


async def test_the_guarded_path_still_plays(
    guarded: YtdlpSource, public: MediaServer
) -> None:
    result = await guarded.load(public.url("/two.html"))
    assert result is not None and result.type == "playlist"
    playable = await guarded.open(result.tracks[0])
    assert playable.url == public.url("/media/a440.mp3")
    assert playable.policy.allow_networks == ("127.0.0.2/32",)
