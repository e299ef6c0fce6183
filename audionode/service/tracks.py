"""Tracks for the service: resolving queries, opening tracks, issuing and checking tokens.

The one place a :class:`~audionode.sources.api.Track` becomes a typed view with a fresh signed
token (``protocol/track_token.py``), and the one place a token handed back becomes a track.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from audionode.control.commands import TrackIn
from audionode.control.views import EntryView, Found, TrackView
from audionode.errors import BadRequest, NotFound, Unprocessable
from audionode.playable import Playable
from audionode.player.queue import Entry
from audionode.protocol.track_token import sign, verify
from audionode.service.state import NodeState
from audionode.sources.api import LoadResult, Track
from audionode.sources.loader import SourceManager


class TrackBook:
    """Create with the node's state and the token lifetime; attach :attr:`sources` before use."""

    def __init__(
        self, state: NodeState, ttl: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.state = state
        self.ttl = ttl
        self.clock = clock
        self.sources: SourceManager | None = None

    def _sources(self) -> SourceManager:
        if self.sources is None:
            raise RuntimeError("TrackBook used before sources were attached")
        return self.sources

    # --- views and tokens ------------------------------------------------------------------

    def view(self, track: Track) -> TrackView:
        """The track as bots see it, with a token valid for ``ttl`` seconds from now."""
        info: dict[str, Any] = msgspec.to_builtins(track)
        token = sign(
            info,
            self.state.token_secret,
            issuer=self.state.node_id,
            expires=self.clock() + self.ttl,
        )
        return TrackView(
            source=track.source,
            id=track.id,
            title=track.title,
            uri=track.uri,
            author=track.author,
            duration=None if track.duration_ms is None else track.duration_ms / 1000,
            is_live=track.is_live,
            artwork=track.artwork,
            token=token,
        )

    def entry_view(self, entry: Entry[Track]) -> EntryView:
        return EntryView(
            track=self.view(entry.track),
            tag=entry.tag,
            context=entry.context,
            start_position=entry.start_position,
        )

    def track_of(self, token: str, field: str) -> Track:
        """A track this node issued (``putSource`` accepts nothing else)."""
        info = verify(
            token,
            self.state.token_secret,
            issuer=self.state.node_id,
            now=self.clock(),
            field=field,
        )
        try:
            return msgspec.convert(info, Track)
        except msgspec.ValidationError:
            raise BadRequest(
                f"field `{field}`: the track token is from an incompatible node"
            ) from None

    def entries(self, tracks: tuple[TrackIn, ...]) -> list[Entry[Track]]:
        """Queue entries for tracks handed back; any bad token refuses them all."""
        out = []
        for t in tracks:
            track = self.track_of(t.token, t.field)
            check_start(track, t.start_position, t.field.rpartition(".")[0] or "source")
            out.append(Entry(track, context=t.context, start_position=t.start_position))
        return out

    # --- sources ---------------------------------------------------------------------------

    async def search(self, query: str) -> tuple[LoadResult, Found]:
        """Resolve a query; an unusable result is a 4xx naming why."""
        result = await self._sources().load(query)
        if result.type == "error":
            raise Unprocessable(result.error or "the query could not be loaded", code="LOAD_FAILED")
        if result.type == "empty" or not result.tracks:
            raise NotFound(f"nothing found for {query[:200]!r}", code="NO_RESULTS")
        found = Found(
            tracks=tuple(self.view(t) for t in result.tracks),
            playlist=result.type == "playlist",
        )
        return result, found

    async def open(self, track: Track) -> Playable:
        return await self._sources().open(track)


def check_start(track: Track, start: float, where: str = "") -> None:
    """A start position must lie inside a track of known length (and 0 for a live one)."""
    name = f"{where}.start_position" if where else "start_position"
    if start and track.is_live:
        raise BadRequest(f"field `{name}`: a live stream starts where it is (0)")
    if track.duration_ms is not None and start * 1000 > track.duration_ms:
        raise BadRequest(
            f"field `{name}`: expected <= {track.duration_ms / 1000:g} "
            f"(the track's length), got {start:g}"
        )
