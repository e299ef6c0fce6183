"""The http source against a loopback server (allow_private on) and the default policy."""

from __future__ import annotations

import pytest

from audionode.config import HttpSourceConfig
from audionode.errors import Forbidden
from audionode.sources.http import HttpSource
from tests.sources.conftest import MediaServer

OPEN = HttpSourceConfig(allow_private=True, timeout=5)


async def test_direct_media_becomes_a_track(server: MediaServer) -> None:
    source = HttpSource(OPEN)
    url = server.url("/media/a440.opus")
    assert source.handles(url)
    result = await source.load(url)
    assert result is not None and result.type == "track"
    track = result.tracks[0]
    assert track.source == "http" and track.title == "a440.opus" and not track.is_live
    assert track.duration_ms is not None and abs(track.duration_ms - 500) < 30
    playable = await source.open(track)
    assert playable.url == url


async def test_an_endless_stream_is_a_live_track(server: MediaServer) -> None:
    source = HttpSource(OPEN)
    result = await source.load(server.url("/live"))
    assert result is not None and result.type == "track"
    track = result.tracks[0]
    assert track.is_live and track.duration_ms is None and not track.is_seekable
    assert track.title == "Loop FM"  # the station's icy-name header
    assert (await source.open(track)).is_live


async def test_redirects_are_resolved_before_playing(server: MediaServer) -> None:
    result = await HttpSource(OPEN).load(server.url("/to-media"))
    assert result is not None and result.tracks[0].data["url"] == server.url("/media/a440.mp3")


async def test_a_web_page_is_handed_to_the_next_source(server: MediaServer) -> None:
    assert await HttpSource(OPEN).load(server.url("/two.html")) is None


async def test_missing_media_is_an_error_result(server: MediaServer) -> None:
    result = await HttpSource(OPEN).load(server.url("/media/nope.mp3"))
    assert result is not None and result.type == "error"
    assert result.error == "the server answered HTTP 404 Not Found"


async def test_loopback_is_refused_by_default(server: MediaServer) -> None:
    source = HttpSource(HttpSourceConfig())
    with pytest.raises(Forbidden, match=r"127\.0\.0\.1: a loopback address"):
        await source.load(server.url("/media/a440.mp3"))


async def test_unreachable_host_is_a_clear_error() -> None:
    from audionode.errors import SourceError

    with pytest.raises(SourceError, match=r"cannot reach 127\.0\.0\.1: .*refused"):
        await HttpSource(OPEN).load("http://127.0.0.1:9/a.mp3")
