"""The source plugin API: what a source is and the types it exchanges with the node.

A *source* turns a query (a URL, ``ytsearch:never gonna``, ``tone:440``) into tracks, and a
track into something the media pipeline can open. Everything here is our own type: a plugin
never sees a web request, a PyAV container or the event loop's internals.

Writing a source (see ``plugins/README.md`` for a walk-through)::

    class MySource(BaseSource):
        name = "mine"

        def handles(self, query: str) -> bool:        # cheap, synchronous, no I/O
            return query.startswith("mine:")

        async def load(self, query: str) -> LoadResult | None:
            ...                                        # network, disk: await freely
            return LoadResult.of_track(Track(source=self.name, id=..., title=...))

        async def open(self, track: Track) -> Playable:
            return Playable.from_url("https://cdn.example/a.ogg")

Call contract (what the node guarantees and expects):

- ``handles(query)`` is asked in source order; the first source whose ``load`` returns a
  result wins. ``load`` may return ``None`` to say "not mine after all" (the next source
  that handles the query is tried).
- ``load`` reports a problem the user should see as ``LoadResult.of_error(message)``; any
  exception it raises is turned into such an error by the node (and logged).
- ``open(track)`` is called shortly before the track plays (possibly much later than
  ``load``, and possibly again after a failure); it raises
  :class:`audionode.errors.SourceError` with a clear message when the track cannot be played.
- ``close()`` is awaited once at shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from audionode.playable import Playable

__all__ = [
    "BaseSource",
    "LoadResult",
    "LoadType",
    "Playable",
    "PlaylistInfo",
    "PluginContext",
    "Source",
    "Track",
]

LoadType = Literal["track", "playlist", "search", "empty", "error"]


class Track(msgspec.Struct, frozen=True, kw_only=True):
    """What a source knows about one playable item.

    ``data`` is opaque to the node: the source stores whatever it needs to open the track
    later (a page URL, a cached stream URL); it must be JSON-serialisable because tracks are
    sent to bots and come back.
    """

    source: str
    """The name of the source that made this track (it is asked to open it)."""
    id: str
    """The source's identifier of the item (a video id, a URL, a file path)."""
    title: str
    uri: str = ""
    author: str = ""
    duration_ms: int | None = None
    """Length in milliseconds; None when unknown or endless."""
    is_live: bool = False
    artwork: str | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def is_seekable(self) -> bool:
        return not self.is_live and self.duration_ms is not None


class PlaylistInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    selected: int = -1
    """Index of the track the query pointed at inside the playlist, or -1."""


class LoadResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of resolving a query (Lavalink's five load types)."""

    type: LoadType
    tracks: list[Track] = msgspec.field(default_factory=list)
    playlist: PlaylistInfo | None = None
    error: str | None = None
    """For ``type == "error"``: a message fit for the end user."""

    @classmethod
    def of_track(cls, track: Track) -> LoadResult:
        return cls(type="track", tracks=[track])

    @classmethod
    def of_playlist(cls, name: str, tracks: Iterable[Track], selected: int = -1) -> LoadResult:
        info = PlaylistInfo(name=name, selected=selected)
        return cls(type="playlist", tracks=list(tracks), playlist=info)

    @classmethod
    def of_search(cls, tracks: Iterable[Track]) -> LoadResult:
        found = list(tracks)
        return cls(type="search", tracks=found) if found else cls.of_empty()

    @classmethod
    def of_empty(cls) -> LoadResult:
        return cls(type="empty")

    @classmethod
    def of_error(cls, message: str) -> LoadResult:
        return cls(type="error", error=message)


@runtime_checkable
class Source(Protocol):
    """A source of tracks. Subclass :class:`BaseSource` to get the optional parts."""

    name: str

    def handles(self, query: str) -> bool:
        """Whether this source understands ``query``. Cheap: no I/O."""
        ...

    async def load(self, query: str) -> LoadResult | None:
        """Resolve ``query``; ``None`` hands it to the next source that handles it."""
        ...

    async def open(self, track: Track) -> Playable:
        """Make a track of this source playable; raise SourceError if it cannot be."""
        ...

    async def close(self) -> None:
        """Release resources (pools, sessions); awaited once at shutdown."""
        ...


class BaseSource:
    """Convenience base with do-nothing defaults for the optional parts of :class:`Source`."""

    name: str = "unnamed"

    def handles(self, query: str) -> bool:
        return False

    async def load(self, query: str) -> LoadResult | None:
        return None

    async def open(self, track: Track) -> Playable:
        from audionode.errors import SourceError

        raise SourceError(f"source {self.name!r} cannot open tracks")

    async def close(self) -> None:
        return None


class PluginContext(msgspec.Struct, frozen=True, kw_only=True):
    """Handed to a plugin's factory: its name, its options (``sources.plugin_options.<name>``)
    and a logger to report through."""

    name: str
    options: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger(f"audionode.plugins.{self.name}")
