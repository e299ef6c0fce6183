"""Tracks for the service: resolving queries, opening tracks, issuing and checking tokens.

The one place a :class:`~audionode.sources.api.Track` becomes a typed view with a fresh signed
token (``protocol/track_token.py``), and the one place a token handed back becomes a track.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from audionode.control.commands import ClaimedTrack, TrackIn, TrackQuery
from audionode.control.views import EntryView, Found, Resolved, TrackView
from audionode.errors import AudionodeError, BadRequest, NotFound, SourceError, Unprocessable
from audionode.playable import Playable
from audionode.player.queue import Entry
from audionode.protocol.track_token import sign, verify
from audionode.service.state import NodeState
from audionode.sources.api import LoadResult, Track
from audionode.sources.loader import SourceManager


class Claimed(Track, frozen=True, kw_only=True):
    """A track as a client described it, unsigned (``ClaimedTrack``): queued as is, resolved
    again through the sources before it is opened (:meth:`TrackBook.recall`). Never signed:
    its views carry no token, so it cannot come back through a front that takes tokens."""

    field: str = "track"


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
        token = "" if isinstance(track, Claimed) else sign(
            info,
            self.state.token_secret,
            issuer=self.state.node_id,
            expires=self.clock() + self.ttl,
        )  # fmt: skip
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

    def claimed(self, claim: ClaimedTrack) -> Entry[Track]:
        """A queue entry for a track a client described (resolved again when opened)."""
        track = Claimed(
            source=claim.source,
            id=claim.id,
            title=claim.title,
            uri=claim.uri,
            author=claim.author,
            duration_ms=None if claim.duration is None else round(claim.duration * 1000),
            is_live=claim.is_live,
            artwork=claim.artwork,
            field=claim.field,
        )
        return Entry(track, context=claim.context)

    # --- sources ---------------------------------------------------------------------------

    async def resolve(self, query: str) -> Resolved:
        """The sources' answer to ``query`` as a value (empty and error results included)."""
        result = await self._sources().load(query)
        if result.type == "error":
            return Resolved(kind="error", error=result.error or "the query could not be loaded")
        if result.type == "empty" or not result.tracks:
            return Resolved(kind="empty")
        playlist = result.playlist
        return Resolved(
            kind=result.type,
            tracks=tuple(self.view(t) for t in result.tracks),
            playlist=None if playlist is None else playlist.name,
            selected=-1 if playlist is None else playlist.selected,
        )

    async def one(self, query: TrackQuery) -> Entry[Track]:
        """The one track ``query`` names; a search, a playlist or nothing is a 400."""
        result = await self._sources().load(query.query)
        where = f"field `{query.field}`"
        if result.type == "error":
            raise BadRequest(f"{where}: {result.error or 'the query could not be loaded'}")
        if result.type != "track" or not result.tracks:
            what = "no matches" if not result.tracks else f"a {result.type}, not one track"
            raise BadRequest(f"{where}: {query.query[:200]!r} gave {what}")
        return Entry(result.tracks[0], context=query.context)

    async def recall(self, claim: Claimed) -> Track:
        """Resolve a claimed track again: its uri (else its identifier) through the sources.
        The answer must hold the same item (same source and id; for one track of the same
        source, any id, as a redirect may change it). A claim naming a source this node does
        not have (a Lavalink node's ``youtube``) takes what our sources make of its uri."""
        query = claim.uri or claim.id
        try:
            result = await self._sources().load(query)
        except AudionodeError as e:
            raise SourceError(f"field `{claim.field}`: {e.message}") from None
        if result.type == "error":
            raise SourceError(f"field `{claim.field}`: {result.error}")
        ours = any(s.name == claim.source for s in self._sources().sources)
        same = [
            t for t in result.tracks if t.id == claim.id and (t.source == claim.source or not ours)
        ]
        if same:
            return same[0]
        if result.type == "track" and (result.tracks[0].source == claim.source or not ours):
            return result.tracks[0]
        raise SourceError(
            f"field `{claim.field}`: {query[:200]!r} no longer gives the {claim.source} track "
            f"{claim.id[:200]!r}"
        )

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


def check_start(track: Track, start: float, where: str = "", field: str = "start_position") -> None:
    """A start position must lie inside a track of known length (and 0 for a live one)."""
    name = f"{where}.{field}" if where else field
    if start and track.is_live:
        raise BadRequest(f"field `{name}`: a live stream starts where it is (0)")
    if track.duration_ms is not None and start * 1000 > track.duration_ms:
        raise BadRequest(
            f"field `{name}`: expected <= {track.duration_ms / 1000:g} "
            f"(the track's length), got {start:g}"
        )
