"""The ``ytdlp`` source: every site yt-dlp supports, plus its search prefixes.

Queries: ``http(s)://`` URLs (tried after the ``http`` source, which takes direct media) and
``ytsearch:``, ``ytmsearch:``, ``scsearch:`` (optionally with a count, ``ytsearch5:``).

yt-dlp is pure Python and slow: it runs in a :class:`ProcessPool` (``sources.ytdlp.processes``
workers, each call limited to ``sources.ytdlp.timeout`` seconds), never on the event loop.

Stream URLs expire. ``open`` checks the stream URL with a one-byte request first; on HTTP 403
it extracts the page again, once, and checks the new URL (Discodo's approach, minus its
repeated retries). Both the page URL and every stream URL obey the fetch policy in
``netguard`` (``sources.http.allow_private``).
"""

from __future__ import annotations

import re
from typing import Any

from audionode.config import HttpSourceConfig, YtdlpSourceConfig
from audionode.errors import SourceError
from audionode.sources import netguard
from audionode.sources.api import BaseSource, LoadResult, Playable, Track
from audionode.sources.procpool import ProcessPool
from audionode.sources.ytdlp_worker import extract

SEARCH = re.compile(r"^(?P<prefix>ytsearch|ytmsearch|scsearch)(?P<count>\d{1,2})?:(?P<terms>.+)$")
DEFAULT_RESULTS = 10
MAX_RESULTS = 50


class YtdlpSource(BaseSource):
    """Resolves pages and searches with yt-dlp; plays the best audio format it finds."""

    name = "ytdlp"

    def __init__(
        self, config: YtdlpSourceConfig | None = None, http: HttpSourceConfig | None = None
    ) -> None:
        self.config = config or YtdlpSourceConfig()
        self.http = http or HttpSourceConfig()
        self.pool = ProcessPool(
            self.config.processes,
            self.config.timeout,
            name="yt-dlp",
            preload=("audionode.sources.ytdlp_worker:warm_up",),
            nice=self.config.nice,
        )
        self.extractions = 0
        """How many extractions were run (for tests and statistics)."""

    def handles(self, query: str) -> bool:
        return query.lower().startswith(("http://", "https://")) or bool(SEARCH.match(query))

    async def load(self, query: str) -> LoadResult | None:
        if m := SEARCH.match(query):
            count = min(MAX_RESULTS, int(m.group("count") or DEFAULT_RESULTS))
            info = await self._extract(f"{m.group('prefix')}{count}:{m.group('terms')}")
            return LoadResult.of_search(self._track(e, info) for e in info.get("entries", []))
        await netguard.check_url(query, allow_private=self.http.allow_private)
        info = await self._extract(query)
        if info.get("_type") != "playlist":
            return LoadResult.of_track(self._track(info, None))
        tracks = [self._track(e, info) for e in info.get("entries", [])]
        if not tracks:
            return LoadResult.of_empty()
        return LoadResult.of_playlist(str(info.get("title") or query), tracks)

    async def open(self, track: Track) -> Playable:
        stream = track.data.get("stream")
        headers = dict(track.data.get("headers") or {})
        if not stream:
            stream, headers = await self._resolve(track)
        status = await self._status(stream, headers)
        if status == 403:  # expired signature: resolve the page once more
            stream, headers = await self._resolve(track)
            status = await self._status(stream, headers)
            if status == 403:
                raise SourceError("the stream was refused (HTTP 403) even after resolving it again")
        if status >= 400:
            raise SourceError(f"the stream answered HTTP {status}")
        return Playable.from_url(stream, headers=headers, is_live=track.is_live)

    async def close(self) -> None:
        await self.pool.close()

    # -- internals -------------------------------------------------------------------------

    async def _extract(self, query: str, flat: bool = True) -> dict[str, Any]:
        self.extractions += 1
        return await self.pool.run(extract, query, flat, self.http.timeout)

    def _track(self, info: dict[str, Any], playlist: dict[str, Any] | None) -> Track:
        flat = info.get("_type") in ("url", "url_transparent")
        page = str(info.get("url") if flat else info.get("webpage_url") or info.get("url") or "")
        data: dict[str, Any] = {"page": page}
        if not flat and info.get("url"):
            data["stream"] = info["url"]
            data["headers"] = info.get("http_headers") or {}
        if playlist is not None and not flat:
            # an entry without a page of its own (an HTML5 <audio> on a page): re-resolving
            # means extracting the playlist page again and picking this entry
            data["entry"] = info.get("id")
        duration = info.get("duration")
        return Track(
            source=self.name,
            id=str(info.get("id") or page),
            title=str(info.get("title") or page),
            uri=page,
            author=str(info.get("uploader") or info.get("channel") or info.get("artist") or ""),
            duration_ms=None if duration is None else int(float(duration) * 1000),
            is_live=bool(info.get("is_live")) or info.get("live_status") == "is_live",
            artwork=info.get("thumbnail"),
            data=data,
        )

    async def _resolve(self, track: Track) -> tuple[str, dict[str, str]]:
        page = str(track.data.get("page") or track.uri)
        await netguard.check_url(page, allow_private=self.http.allow_private)
        info = await self._extract(page, flat=False)
        if info.get("_type") == "playlist":
            wanted = track.data.get("entry")
            entries = [e for e in info.get("entries", []) if e.get("id") == wanted]
            if not entries:
                raise SourceError("the track is no longer on its page")
            info = entries[0]
        if not info.get("url"):
            raise SourceError("yt-dlp found no playable stream")
        return str(info["url"]), dict(info.get("http_headers") or {})

    async def _status(self, url: str, headers: dict[str, str]) -> int:
        allow = self.http.allow_private
        async with netguard.session(allow_private=allow, timeout=self.http.timeout) as http:
            head = await netguard.fetch_head(
                http, url, allow_private=allow, headers={**headers, "Range": "bytes=0-0"}
            )
        return head.status
