"""Network media through the node's own guarded HTTP reader (media/httpfile.py), played by a
real pipeline from loopback aiohttp servers: endless and stalled streams, seeking by range,
HLS fetched segment by segment, and every way around the fetch policy refused.

The tests can only use loopback, so "public" is played by 127.0.0.2 (allowed through
``allow_networks``) and "internal" by 127.0.0.1, which the policy refuses like any private
address.
"""

from __future__ import annotations

import asyncio
import queue
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import numpy as np
import pytest
from aiohttp import web

from audionode import netpolicy
from audionode.config import EngineConfig
from audionode.errors import Conflict
from audionode.media.events import PipelineEvent, TrackFailed, TrackFinished, TrackStarted
from audionode.media.frames import Frame
from audionode.media.pipeline import Pipeline
from audionode.netpolicy import InputPolicy
from audionode.playable import Playable
from tests.media.mediafiles import decode_opus, peak_freq, tone, write_media
from tests.sources.conftest import start_site

OPEN = InputPolicy(allow_private=True)
PUBLIC = InputPolicy(allow_networks=("127.0.0.2/32",))
"""127.0.0.2 stands for the internet; 127.0.0.1 stays refused."""
REFUSED = (
    "refusing to fetch from {host}: not a public address the node may reach "
    "(sources.http.allow_private or sources.http.allow_networks)"
)


def playable(url: str, policy: InputPolicy = OPEN, **kwargs: object) -> Playable:
    return msgspec.structs.replace(Playable.from_url(url, **kwargs), policy=policy)  # type: ignore[arg-type]


class Site:
    """A loopback web server with files, redirects, stalls and an endless stream; it counts
    every request it gets (the tests check that refused addresses get none)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hits: Counter[str] = Counter()
        self.base = ""
        self.hung_up = asyncio.Event()
        self.app = web.Application(middlewares=[self._count])
        r = self.app.router
        r.add_get("/files/{name}", self.files)
        r.add_get("/redirect", self.redirect)
        r.add_get("/live", self.live)
        r.add_get("/stall", self.stall)

    @web.middleware
    async def _count(self, request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
        self.hits[request.path] += 1
        return await handler(request)

    async def files(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(self.root / request.match_info["name"])

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def live(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "audio/mpeg"})
        await resp.prepare(request)
        chunk = (self.root / "loop.mp3").read_bytes()
        try:
            while True:  # endless: the same half second of MP3 frames again and again
                await resp.write(chunk)
                await asyncio.sleep(0.01)
        except (ConnectionResetError, asyncio.CancelledError):
            self.hung_up.set()
            raise

    async def stall(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "audio/mpeg"})
        await resp.prepare(request)
        await resp.write((self.root / "loop.mp3").read_bytes())
        await asyncio.sleep(30)
        return resp

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def requests(self) -> int:
        return sum(self.hits.values())


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("site")
    write_media(d / "loop.mp3", tone([440], 0.5), "mp3", options={"write_xing": "0"})
    write_media(d / "halves.wav", np.concatenate([tone([440], 1.0), tone([880], 1.0)]), "wav")
    _write_hls(d, seconds=2)
    (d / "evil.m3u8").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
    )
    (d / "huge.m3u8").write_text("#EXTM3U\n" + "#EXTINF:1,\nseg0.ts\n" * 80000)
    return d


def _write_hls(d: Path, seconds: int) -> None:
    """An HLS VOD stream made with PyAV's hls muxer: index.m3u8 and 1 s AAC segments."""
    import av

    pcm = np.ascontiguousarray(tone([440], seconds).T)
    opts = {"hls_time": "1", "hls_list_size": "0", "hls_playlist_type": "vod",
            "hls_segment_filename": str(d / "seg%d.ts")}
    with av.open(str(d / "index.m3u8"), "w", format="hls", options=opts) as out:
        stream = out.add_stream("aac", rate=48000, layout="stereo")
        for i in range(0, pcm.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm[:, i : i + 1024]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, i
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)


@pytest.fixture
async def public(root: Path) -> AsyncIterator[Site]:
    site = Site(root)
    runner, site.base = await start_site(site.app, "127.0.0.2")
    yield site
    await runner.cleanup()


@pytest.fixture
async def internal(root: Path, public: Site) -> AsyncIterator[Site]:
    """The same files on 127.0.0.1, on the port the public site has (a host's other face)."""
    site = Site(root)
    runner, site.base = await start_site(site.app, "127.0.0.1", int(public.base.rsplit(":")[2]))
    yield site
    await runner.cleanup()


@pytest.fixture
def events() -> queue.Queue[PipelineEvent]:
    return queue.Queue()


@pytest.fixture
def pipe(events: queue.Queue[PipelineEvent]) -> Iterator[Pipeline]:
    # the I/O timeout is per read: a stream playing far longer than it stays healthy
    p = Pipeline(EngineConfig(), on_event=events.put, open_timeout=0.5)
    p.start()
    yield p
    p.close()


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


async def ended(p: Pipeline, events: queue.Queue[PipelineEvent]) -> tuple[list[Frame], object]:
    """Pop frames until the track ends; return them and the ending event."""
    frames: list[Frame] = []
    async with asyncio.timeout(10):
        while True:
            done = [e for e in list(events.queue) if isinstance(e, TrackFinished | TrackFailed)]
            frame = p.buffer.pop()
            if frame is not None:
                frames.append(frame)
            elif done:
                return frames, done[0]
            else:
                await asyncio.sleep(0.002)


# -- playing through the guard ---------------------------------------------------------------


async def test_endless_stream_plays_past_its_loop_length_and_stops_cleanly(
    public: Site, pipe: Pipeline, events: queue.Queue[PipelineEvent]
) -> None:
    pipe.play(playable(public.url("/live")), 1)
    frames = await pop_frames(pipe, 75, pace=0.02)  # 1.5 s in real time, from a 0.5 s loop
    assert abs(peak_freq(decode_opus(frames)[4800:]) - 440) < 5
    seen = list(events.queue)
    started = [e for e in seen if isinstance(e, TrackStarted)]
    assert started and started[0].is_live and started[0].duration_ms is None
    assert not [e for e in seen if isinstance(e, TrackFailed | TrackFinished)]
    with pytest.raises(Conflict, match="live stream"):
        pipe.seek(1000)
    pipe.stop()
    async with asyncio.timeout(5):
        await public.hung_up.wait()
    assert public.hits["/live"] == 1


async def test_a_stalled_stream_fails_with_a_clear_message(
    public: Site, pipe: Pipeline, events: queue.Queue[PipelineEvent]
) -> None:
    pipe.play(playable(public.url("/stall")), 1)
    frames, end = await ended(pipe, events)
    assert isinstance(end, TrackFailed)
    assert end.message == "the stream stopped sending data (nothing for 0.5 s)"
    assert len(frames) == 25  # the half second it did send


async def test_seeking_fetches_a_byte_range(
    public: Site, pipe: Pipeline, events: queue.Queue[PipelineEvent]
) -> None:
    pipe.play(playable(public.url("/files/halves.wav")), 1, start_ms=1500)
    frames, end = await ended(pipe, events)
    assert isinstance(end, TrackFinished)
    assert 20 <= len(frames) <= 30 and abs(peak_freq(decode_opus(frames)[4800:]) - 880) < 5
    assert public.hits["/files/halves.wav"] >= 2  # the head, then the range after the seek


async def test_closing_a_stalled_stream_wakes_its_reader_at_once(public: Site) -> None:
    p = Pipeline(EngineConfig(), open_timeout=10)
    p.start()
    p.play(playable(public.url("/stall")), 1)
    await pop_frames(p, 25)  # everything it sent; the reader now waits on the socket
    reader = p._mixer.current.reader  # type: ignore[union-attr]
    started = time.monotonic()
    p.close()
    await asyncio.to_thread(reader._thread.join, 5)
    assert not reader.reading and time.monotonic() - started < 1.0


async def test_hls_plays_with_every_segment_fetched_by_the_node(
    public: Site, pipe: Pipeline, events: queue.Queue[PipelineEvent]
) -> None:
    pipe.play(playable(public.url("/files/index.m3u8")), 1)
    frames, end = await ended(pipe, events)
    assert isinstance(end, TrackFinished)
    assert len(frames) >= 95 and abs(peak_freq(decode_opus(frames)[4800:]) - 440) < 5
    assert public.hits["/files/seg0.ts"] == 1 and public.hits["/files/seg1.ts"] == 1


# -- what the guard refuses ------------------------------------------------------------------


async def test_the_default_policy_refuses_loopback_before_connecting(
    internal: Site, pipe: Pipeline, events: queue.Queue[PipelineEvent]
) -> None:
    pipe.play(playable(internal.url("/files/loop.mp3"), InputPolicy()), 1)
    _, end = await ended(pipe, events)
    assert isinstance(end, TrackFailed)
    assert end.message.endswith(REFUSED.format(host="127.0.0.1"))
    assert internal.requests == 0


async def test_a_redirect_to_an_internal_address_is_refused(
    public: Site, internal: Site, pipe: Pipeline, events: queue.Queue[PipelineEvent]
) -> None:
    target = internal.url("/files/loop.mp3")
    pipe.play(playable(public.url(f"/redirect?to={target}"), PUBLIC), 1)
    _, end = await ended(pipe, events)
    assert isinstance(end, TrackFailed)
    assert end.message.endswith(REFUSED.format(host="127.0.0.1"))
    assert public.hits["/redirect"] == 1 and internal.requests == 0


async def test_hls_segments_on_an_internal_address_are_refused(
    public: Site, internal: Site, pipe: Pipeline, events: queue.Queue[PipelineEvent],
    tmp_path: Path,
) -> None:
    """A public playlist naming internal segments: the playlist is fetched, no segment is."""
    index = (public.root / "index.m3u8").read_text()
    seg_base = internal.url("/files/")
    (public.root / "inside.m3u8").write_text(index.replace("seg", seg_base + "seg"))
    pipe.play(playable(public.url("/files/inside.m3u8"), PUBLIC), 1)
    _, end = await ended(pipe, events)
    assert isinstance(end, TrackFailed)
    assert public.hits["/files/inside.m3u8"] == 1 and internal.requests == 0


async def test_a_playlist_naming_a_local_file_is_refused(
    public: Site, pipe: Pipeline, events: queue.Queue[PipelineEvent]
) -> None:
    pipe.play(playable(public.url("/files/evil.m3u8")), 1)
    _, end = await ended(pipe, events)
    assert isinstance(end, TrackFailed) and "cannot open" in end.message


async def test_a_playlist_larger_than_the_bound_is_refused(
    public: Site, pipe: Pipeline, events: queue.Queue[PipelineEvent]
) -> None:
    pipe.play(playable(public.url("/files/huge.m3u8")), 1)
    _, end = await ended(pipe, events)
    assert isinstance(end, TrackFailed)
    assert end.message.endswith("the playlist is larger than 1048576 bytes")


@pytest.mark.parametrize("kind", ["hls", "concat"])
async def test_playlists_in_memory_or_local_files_are_refused(
    root: Path, pipe: Pipeline, events: queue.Queue[PipelineEvent], kind: str
) -> None:
    """Only network streams may be HLS; concat and other indirections never, even when a
    source names the container."""
    body = (root / "index.m3u8").read_bytes() if kind == "hls" else b"ffconcat version 1.0\n"
    pipe.play(Playable.from_bytes(body, format=kind), 1)
    _, end = await ended(pipe, events)
    assert isinstance(end, TrackFailed)
    assert end.message == f"the media's container ({kind}) is not one the node plays"
    pipe.play(Playable.from_url(str(root / "index.m3u8"), format=kind), 2)  # a local file
    _, end = await ended(pipe, events)
    assert isinstance(end, TrackFailed) and end.message.endswith("is not one the node plays")


async def test_refusals_say_nothing_about_what_is_behind_the_address(
    public: Site, internal: Site, events: queue.Queue[PipelineEvent]
) -> None:
    """An open internal port, a closed one and an unknown name: the same answer, given
    before any connection, in the same short time."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # bound, never listening: connection refused
    urls = {
        "open": internal.url("/files/loop.mp3"),
        "closed": f"http://127.0.0.1:{closed}/files/loop.mp3",
        "via redirect": public.url(f"/redirect?to={internal.url('/files/loop.mp3')}"),
    }
    messages, took = {}, {}
    for what, url in urls.items():
        p = Pipeline(EngineConfig(), on_event=events.put, open_timeout=2)
        p.start()
        started = time.monotonic()
        p.play(playable(url, PUBLIC), 1)
        _, end = await ended(p, events)
        took[what] = time.monotonic() - started
        p.close()
        assert isinstance(end, TrackFailed)
        messages[what] = end.message.split(": ", 1)[1]  # after "cannot open <their URL>"
        while not events.empty():
            events.get()
    assert len(set(messages.values())) == 1, messages
    assert max(took.values()) < 0.5, took
    assert internal.requests == 0


# -- DNS rebinding ---------------------------------------------------------------------------


async def test_dns_rebinding_cannot_switch_a_checked_connection(
    public: Site, internal: Site, pipe: Pipeline, events: queue.Queue[PipelineEvent]
) -> None:
    """The name first resolves to the allowed address, then to the internal one. Every
    request of the stream (the head, then the range after a seek) goes to the address that
    was checked; a new stream, resolving afresh, is refused."""
    answers = iter(["127.0.0.2"] + ["127.0.0.1"] * 10)
    asked: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return [next(answers)] if host == "rebind.test" else []

    netpolicy.set_resolver(resolver)
    try:
        port = public.base.rsplit(":", 1)[1]
        url = f"http://rebind.test:{port}/files/halves.wav"
        pipe.play(playable(url, PUBLIC), 1, start_ms=1500)
        frames, end = await ended(pipe, events)
        assert isinstance(end, TrackFinished) and len(frames) >= 20
        assert abs(peak_freq(decode_opus(frames)[4800:]) - 880) < 5
        assert public.hits["/files/halves.wav"] >= 2 and internal.requests == 0
        assert asked == ["rebind.test"]  # resolved once, then pinned

        while not events.empty():
            events.get()
        pipe.play(playable(url, PUBLIC), 2)
        _, end = await ended(pipe, events)
        assert isinstance(end, TrackFailed)
        assert end.message.endswith(REFUSED.format(host="rebind.test"))
        assert internal.requests == 0
    finally:
        netpolicy.set_resolver(None)
