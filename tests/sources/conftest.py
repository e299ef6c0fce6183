from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.media.mediafiles import tone, write_media


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("served")
    write_media(d / "a440.mp3", tone([440], 0.5), "mp3")
    write_media(d / "a440.opus", tone([440], 0.5), "opus")
    write_media(d / "b660.wav", tone([660], 0.5), "wav")
    return d


@pytest.fixture(scope="session")
def files(served: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in served.iterdir()}


class MediaServer:
    """A loopback web server with media files, pages with <audio> tags that expire,
    redirects, a page that never answers, and counters the tests read (``hits``: every
    request it got)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = ""
        self.page_hits = 0
        self.valid_tokens: set[int] = set()
        self.issue_valid_tokens = True
        self.hits = 0
        self.app = web.Application(middlewares=[self._count])
        r = self.app.router
        r.add_get("/media/{name}", self.media)
        r.add_get("/signed/{token}/{name}", self.signed)
        r.add_get("/page.html", self.page)
        r.add_get("/two.html", self.two)
        r.add_get("/to-media", self.redirect)
        r.add_get("/redirect", self.redirect_to)
        r.add_get("/embed.html", self.embed)
        r.add_get("/slow", self.slow)
        r.add_get("/not-media", self.not_media)
        r.add_get("/live", self.live)

    @web.middleware
    async def _count(
        self, request: web.Request, handler: web.RequestHandler
    ) -> web.StreamResponse:
        self.hits += 1
        return await handler(request)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    async def media(self, request: web.Request) -> web.StreamResponse:
        """Served as files do on real servers: with Range support (libav seeks)."""
        path = self.root / request.match_info["name"]
        if "/" in request.match_info["name"] or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    async def signed(self, request: web.Request) -> web.StreamResponse:
        if int(request.match_info["token"]) not in self.valid_tokens:
            raise web.HTTPForbidden()
        return await self.media(request)

    async def page(self, request: web.Request) -> web.Response:
        """Each visit hands out a new signed URL (as video sites do)."""
        self.page_hits += 1
        token = self.page_hits
        if self.issue_valid_tokens:
            self.valid_tokens.add(token)
        html = (
            "<html><head><title>Signed</title></head><body>"
            f'<audio src="/signed/{token}/a440.mp3"></audio></body></html>'
        )
        return web.Response(text=html, content_type="text/html")

    async def two(self, request: web.Request) -> web.Response:
        html = (
            "<html><head><title>Two songs</title></head><body>"
            '<audio src="/media/a440.mp3"></audio><audio src="/media/a440.opus"></audio>'
            "</body></html>"
        )
        return web.Response(text=html, content_type="text/html")

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/media/a440.mp3")

    async def redirect_to(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def embed(self, request: web.Request) -> web.Response:
        """A page with one ``<tag src=...>`` (``?tag=audio``: yt-dlp lists the URL without
        fetching it; ``?tag=video`` with an HLS manifest: yt-dlp fetches the manifest)."""
        tag, src = request.query["tag"], request.query["src"]
        html = f"<html><head><title>Embed</title></head><body><{tag} src=\"{src}\"></{tag}>"
        return web.Response(text=html + "</body></html>", content_type="text/html")

    async def live(self, request: web.Request) -> web.StreamResponse:
        """An endless MP3 stream (the same frames over and over), as internet radios send."""
        resp = web.StreamResponse(headers={"Content-Type": "audio/mpeg", "icy-name": "Loop FM"})
        await resp.prepare(request)
        chunk = (self.root / "a440.mp3").read_bytes()
        while True:
            await resp.write(chunk)
            await asyncio.sleep(0.05)

    async def not_media(self, request: web.Request) -> web.Response:
        return web.Response(body=bytes(range(256)) * 64, content_type="application/octet-stream")

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="too late")


async def start_site(app: web.Application, host: str, port: int = 0) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on ``host`` (any loopback address; port 0: any free one); returns the
    runner (``cleanup()`` it) and the base URL."""
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://{host}:{bound}"


@pytest.fixture
async def server(served: Path) -> AsyncIterator[MediaServer]:
    srv = MediaServer(served)
    runner, srv.base = await start_site(srv.app, "127.0.0.1")
    yield srv
    await runner.cleanup()


@pytest.fixture
async def public(served: Path) -> AsyncIterator[MediaServer]:
    """A server on 127.0.0.2, which tests let through with ``allow_networks`` to stand for
    the internet (tests may only use loopback); 127.0.0.1 stays refused."""
    srv = MediaServer(served)
    runner, srv.base = await start_site(srv.app, "127.0.0.2")
    yield srv
    await runner.cleanup()
