"""The http source against loopback servers: with private targets allowed, and the default
policy (which refuses them, redirects included)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from audionode.config import HttpSourceConfig
from audionode.errors import Forbidden, SourceError
from audionode.sources.http import HttpSource
from tests.sources.conftest import MediaServer

OPEN = HttpSourceConfig(allow_private=True, timeout=5)


@pytest.fixture
async def source() -> AsyncIterator[HttpSource]:
    s = HttpSource(OPEN)
    yield s
    await s.close()


async def test_direct_media_becomes_a_track(source: HttpSource, server: MediaServer) -> None:
    url = server.url("/media/a440.opus")
    assert source.handles(url)
    result = await source.load(url)
    assert result is not None and result.type == "track"
    track = result.tracks[0]
    assert track.source == "http" and track.title == "a440.opus" and not track.is_live
    assert track.duration_ms is not None and abs(track.duration_ms - 500) < 30
    playable = await source.open(track)
    assert playable.url == url and playable.policy.allow_private


async def test_an_endless_stream_is_a_live_track(source: HttpSource, server: MediaServer) -> None:
    result = await source.load(server.url("/live"))
    assert result is not None and result.type == "track"
    track = result.tracks[0]
    assert track.is_live and track.duration_ms is None and not track.is_seekable
    assert track.title == "Loop FM"  # the station's icy-name header
    assert (await source.open(track)).is_live


async def test_redirects_are_resolved_before_playing(
    source: HttpSource, server: MediaServer
) -> None:
    result = await source.load(server.url("/to-media"))
    assert result is not None and result.tracks[0].data["url"] == server.url("/media/a440.mp3")


async def test_a_web_page_is_handed_to_the_next_source(
    source: HttpSource, server: MediaServer
) -> None:
    assert await source.load(server.url("/two.html")) is None


async def test_missing_media_is_an_error_result(source: HttpSource, server: MediaServer) -> None:
    result = await source.load(server.url("/media/nope.mp3"))
    assert result is not None and result.type == "error"
    assert result.error == "the server answered HTTP 404 Not Found"


async def test_not_media_is_a_clear_error(source: HttpSource, server: MediaServer) -> None:
    with pytest.raises(SourceError, match="cannot read the media"):
        await source.load(server.url("/not-media"))


async def test_loopback_and_redirects_to_it_are_refused_by_default(
    server: MediaServer, public: MediaServer
) -> None:
    source = HttpSource(HttpSourceConfig(allow_networks=["127.0.0.2/32"]))
    try:
        for url in (server.url("/media/a440.mp3"),
                    public.url(f"/redirect?to={server.url('/media/a440.mp3')}")):
            with pytest.raises(Forbidden) as err:
                await source.load(url)
            assert err.value.message.startswith("refusing to fetch from 127.0.0.1: not a public")
        assert server.hits == 0
        result = await source.load(public.url("/media/a440.mp3"))  # allow_networks lets it in
        assert result is not None and result.type == "track"
    finally:
        await source.close()


async def test_unreachable_host_is_a_clear_error(source: HttpSource) -> None:
    with pytest.raises(SourceError, match=r"^could not connect to 127\.0\.0\.1$"):
        await source.load("http://127.0.0.1:9/a.mp3")
