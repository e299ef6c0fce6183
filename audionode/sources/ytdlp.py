"""The ``ytdlp`` source: every site yt-dlp supports, plus its search prefixes.

Queries: ``http(s)://`` URLs (tried after the ``http`` source, which takes direct media) and
``ytsearch:``, ``ytmsearch:``, ``scsearch:`` (optionally with a count, ``ytsearch5:``).

yt-dlp is pure Python and slow: it runs in a :class:`ProcessPool` (``sources.ytdlp.processes``
workers, each call limited to ``sources.ytdlp.timeout`` seconds), never on the event loop.

Every request yt-dlp makes goes through the node's guard (``guardproxy.py``: a loopback
proxy that checks each target and pins the checked address), and an extraction of one site
may hold only part of the pool (``fairslots.py``), so a slow site cannot hold every worker.

Stream URLs expire. ``open`` checks the stream URL with a one-byte request first; on HTTP 403
it extracts the page again, once, and checks the new URL (Discodo's approach, minus its
repeated retries). The page URL, every request of an extraction and every stream URL obey
the fetch policy (``sources.http.allow_private``, ``sources.http.allow_networks``).
"""

from __future__ import annotations

import re
from typing import Any

from audionode.config import HttpSourceConfig, YtdlpSourceConfig
from audionode.errors import SourceError
from audionode.sources.api import BaseSource, LoadResult, Playable, Track
from audionode.sources.guardproxy import GuardProxy
from audionode.sources.http import http_policy
from audionode.sources.netguard import NetGuard, parse_target
from audionode.sources.procpool import ProcessPool
from audionode.sources.ytdlp_worker import extract

SEARCH = re.compile(r"^(?P<prefix>ytsearch|ytmsearch|scsearch)(?P<count>\d{1,2})?:(?P<terms>.+)$")
DEFAULT_RESULTS = 10
MAX_RESULTS = 50


class YtdlpSource(BaseSource):
    """Resolves pages and searches with yt-dlp; plays the best audio format it finds."""

    name = "ytdlp"

    def __init__(
        self,
        config: YtdlpSourceConfig | None = None,
        http: HttpSourceConfig | None = None,
        *,
        guard: NetGuard | None = None,
    ) -> None:
        """``guard`` is the node's (the source manager's); without one the source makes and
        closes its own from ``http``."""
        self.config = config or YtdlpSourceConfig()
        self.http = http or HttpSourceConfig()
        self._own_guard = guard is None
        self.guard = guard or NetGuard(http_policy(self.http), timeout=self.http.timeout)
        self.proxy = GuardProxy(self.guard)
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
        await self.guard.check_url(query)
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
        return Playable.from_url(
            stream, headers=headers, is_live=track.is_live, policy=self.guard.policy
        )

    async def close(self) -> None:
        await self.pool.close()
        await self.proxy.close()
        if self._own_guard:
            await self.guard.close()

    # -- internals -------------------------------------------------------------------------

    async def _extract(self, query: str, flat: bool = True) -> dict[str, Any]:
        """Run yt-dlp on ``query`` through the guard; a refusal of the guard during the
        extraction is the error reported (not yt-dlp's paraphrase of a 403)."""
        self.extractions += 1
        key = parse_target(query).host if not SEARCH.match(query) else None
        await self.proxy.start()
        with self.proxy.session() as session:
            try:
                info: dict[str, Any] = await self.pool.run(
                    extract, query, flat, self.http.timeout, session.url, key=key
                )
            except SourceError:
                if session.refusals:
                    raise session.refusals[0] from None
                raise
        return info

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
        await self.guard.check_url(page)
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
        async with self.guard.session() as http:
            head = await self.guard.fetch_head(http, url, headers={**headers, "Range": "bytes=0-0"})
        return head.status
