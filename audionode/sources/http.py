"""The ``http`` source: direct media URLs (any container libav opens, endless streams too).

``load`` reads the response head first: a web page (``text/html``) is not media, so the
query is handed on to the next source (yt-dlp). Everything else is probed with libav for its
length and tags; no duration means a live stream.
"""

from __future__ import annotations

import asyncio
import posixpath
from urllib.parse import unquote, urlsplit

from audionode.config import HttpSourceConfig
from audionode.errors import SourceError
from audionode.media.probe import MediaProbe, probe
from audionode.sources import netguard
from audionode.sources.api import BaseSource, LoadResult, Playable, Track

_PAGE_TYPES = ("text/html", "application/xhtml+xml")


class HttpSource(BaseSource):
    """Plays ``http://`` and ``https://`` URLs that point at media."""

    name = "http"

    def __init__(self, config: HttpSourceConfig | None = None) -> None:
        self.config = config or HttpSourceConfig()

    def handles(self, query: str) -> bool:
        return query.lower().startswith(("http://", "https://"))

    async def load(self, query: str) -> LoadResult | None:
        allow = self.config.allow_private
        async with netguard.session(allow_private=allow, timeout=self.config.timeout) as http:
            head = await netguard.fetch_head(http, query, allow_private=allow)
        if head.status >= 400:
            return LoadResult.of_error(f"the server answered HTTP {head.status} {head.reason}")
        if head.content_type in _PAGE_TYPES:
            return None  # a web page, not media: maybe yt-dlp knows the site
        info = await self._probe(Playable.from_url(head.url))
        title = info.title or _file_name(head.url) or netguard.parse_target(head.url).host
        track = Track(
            source=self.name,
            id=head.url,
            title=title,
            uri=query,
            author=info.artist or "",
            duration_ms=info.duration_ms,
            is_live=info.is_live,
            data={"url": head.url},
        )
        return LoadResult.of_track(track)

    async def open(self, track: Track) -> Playable:
        url = str(track.data.get("url") or track.uri)
        await netguard.check_url(url, allow_private=self.config.allow_private)
        return Playable.from_url(url, is_live=track.is_live)

    async def _probe(self, playable: Playable) -> MediaProbe:
        timeout = self.config.timeout
        try:
            return await asyncio.wait_for(asyncio.to_thread(probe, playable, timeout), timeout)
        except TimeoutError:
            raise SourceError(f"the media did not answer within {timeout:g} s") from None


def _file_name(url: str) -> str:
    return unquote(posixpath.basename(urlsplit(url).path))
