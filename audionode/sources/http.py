"""The ``http`` source: direct media URLs (any container the node plays, endless streams too).

``load`` reads the response head first (through the guard: every hop checked): a web page
(``text/html``) is not media, so the query is handed on to the next source (yt-dlp).
Everything else is probed (in the probe processes, through the same guard and bounds the
engine applies) for its length and tags; no duration means a live stream.
"""

from __future__ import annotations

import posixpath
from urllib.parse import unquote, urlsplit

from audionode.config import HttpSourceConfig
from audionode.netpolicy import InputPolicy
from audionode.sources.api import BaseSource, LoadResult, Playable, Track
from audionode.sources.netguard import NetGuard, parse_target
from audionode.sources.probing import Prober

_PAGE_TYPES = ("text/html", "application/xhtml+xml")


def http_policy(config: HttpSourceConfig) -> InputPolicy:
    """The input policy of ``sources.http`` alone (the media bounds at their defaults)."""
    return InputPolicy(
        allow_private=config.allow_private, allow_networks=tuple(config.allow_networks)
    )


class HttpSource(BaseSource):
    """Plays ``http://`` and ``https://`` URLs that point at media.

    ``guard`` and ``prober`` are the node's (the source manager's); without them the source
    makes and closes its own.
    """

    name = "http"

    def __init__(
        self,
        config: HttpSourceConfig | None = None,
        *,
        guard: NetGuard | None = None,
        prober: Prober | None = None,
    ) -> None:
        self.config = config or HttpSourceConfig()
        self._owned = (guard is None, prober is None)
        self.guard = guard or NetGuard(http_policy(self.config), timeout=self.config.timeout)
        self.prober = prober or Prober(1, self.config.timeout)

    def handles(self, query: str) -> bool:
        return query.lower().startswith(("http://", "https://"))

    async def load(self, query: str) -> LoadResult | None:
        async with self.guard.session() as http:
            head = await self.guard.fetch_head(http, query)
        if head.status >= 400:
            return LoadResult.of_error(f"the server answered HTTP {head.status} {head.reason}")
        if head.content_type in _PAGE_TYPES:
            return None  # a web page, not media: maybe yt-dlp knows the site
        host = parse_target(head.url).host
        info = await self.prober.probe(self._playable(head.url, False), key=host)
        track = Track(
            source=self.name,
            id=head.url,
            title=info.title or _icy_name(head.headers) or _file_name(head.url) or host,
            uri=query,
            author=info.artist or "",
            duration_ms=info.duration_ms,
            is_live=info.is_live,
            data={"url": head.url},
        )
        return LoadResult.of_track(track)

    async def open(self, track: Track) -> Playable:
        url = str(track.data.get("url") or track.uri)
        await self.guard.check_url(url)
        return self._playable(url, track.is_live)

    def _playable(self, url: str, is_live: bool) -> Playable:
        return Playable.from_url(url, is_live=is_live, policy=self.guard.policy)

    async def close(self) -> None:
        own_guard, own_prober = self._owned
        if own_guard:
            await self.guard.close()
        if own_prober:
            await self.prober.close()


def _icy_name(headers: dict[str, str]) -> str:
    """The station name an internet radio sends in its response head."""
    return next((v for k, v in headers.items() if k.lower() == "icy-name"), "")


def _file_name(url: str) -> str:
    return unquote(posixpath.basename(urlsplit(url).path))
