"""The ``local`` source: files under the configured root folders, nothing else.

Off by default (``sources.local.enabled``). Queries: ``local:<path>``, ``file://<path>`` or an
absolute path; a relative path is looked up under each root in order. The path is resolved
(``..`` and symlinks followed) *before* the check, so neither can lead outside a root; the
check is repeated when the track is opened.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from audionode.config import LocalSourceConfig
from audionode.errors import BadRequest, Forbidden, NotFound
from audionode.netpolicy import InputPolicy
from audionode.sources.api import BaseSource, LoadResult, Playable, Track
from audionode.sources.probing import Prober


class LocalSource(BaseSource):
    """Plays files below ``config.roots``; ``prober`` is the node's (else its own)."""

    name = "local"

    def __init__(
        self,
        config: LocalSourceConfig,
        *,
        prober: Prober | None = None,
        policy: InputPolicy | None = None,
    ) -> None:
        self.roots = [Path(r).expanduser().resolve() for r in config.roots]
        self._own_prober = prober is None
        self.prober = prober or Prober(1)
        self.policy = policy or InputPolicy()

    def handles(self, query: str) -> bool:
        return query.startswith(("local:", "file://", "/"))

    def resolve(self, query: str) -> Path:
        """The real path of the file ``query`` names, if it lies under a root.

        Raises BadRequest (malformed), NotFound (no such file) or Forbidden (outside roots).
        """
        raw = _strip(query)
        if not raw or "\x00" in raw:
            raise BadRequest(f"invalid local path {query!r}")
        if not self.roots:
            raise Forbidden("no local folders are configured (sources.local.roots)")
        given = Path(raw)
        candidates = [given] if given.is_absolute() else [root / given for root in self.roots]
        for candidate in candidates:
            try:
                real = candidate.resolve(strict=True)
            except (OSError, RuntimeError):
                continue
            if not any(real.is_relative_to(root) for root in self.roots):
                raise Forbidden(f"{raw!r} is outside the folders local files may be played from")
            if not real.is_file():
                raise BadRequest(f"{raw!r} is not a file")
            return real
        raise NotFound(f"no such file: {raw!r}")

    async def load(self, query: str) -> LoadResult | None:
        path = self.resolve(query)
        info = await self.prober.probe(Playable.from_url(str(path), policy=self.policy))
        track = Track(
            source=self.name,
            id=str(path),
            title=info.title or path.stem,
            uri=path.as_uri(),
            author=info.artist or "",
            duration_ms=info.duration_ms,
            is_live=False,
        )
        return LoadResult.of_track(track)

    async def open(self, track: Track) -> Playable:
        return Playable.from_url(str(self.resolve(track.id)), policy=self.policy)

    async def close(self) -> None:
        if self._own_prober:
            await self.prober.close()


def _strip(query: str) -> str:
    if query.startswith("local:"):
        return query[len("local:") :]
    if query.startswith("file://"):
        parts = urlsplit(query)
        if parts.netloc not in ("", "localhost"):
            raise BadRequest(f"file URL {query!r} names another host")
        return unquote(parts.path)
    return query
