"""Service methods for fronts whose players are not queues and whose sessions have names.

Lavalink's model (docs/LAVALINK.md) asked for these, but none is Lavalink's: one track now,
outside the queue (:class:`~audionode.control.commands.Play`, ``SetEnd``), a player created
before any voice update (``EnsurePlayer``), a load result as a value (``Resolve``), a
session's resume policy (``ConfigureSession``) and its players and frame counters at once.
:class:`DirectMethods` is a mixin of :class:`~audionode.service.node.NodeService`; like every
service method these take already-validated typed commands and return typed views.
"""

from __future__ import annotations

from typing import Any

from audionode.config import Config
from audionode.control import commands as c
from audionode.control.views import (
    FrameStats,
    OptionsView,
    PlayerState,
    PlayerView,
    Resolved,
    SessionConfig,
    VoiceView,
)
from audionode.engine.host import EngineHost
from audionode.errors import BadRequest
from audionode.player.player import GuildPlayer
from audionode.player.queue import Entry
from audionode.service.persist import Keeper
from audionode.service.sessions import Sessions
from audionode.service.tracks import TrackBook, check_start
from audionode.types import GuildId


class DirectMethods:
    """Mixed into NodeService (which sets these attributes)."""

    config: Config
    sessions: Sessions
    tracks: TrackBook
    engine: EngineHost | None
    keeper: Keeper

    # --- one track now ------------------------------------------------------------------------

    async def play(self, ref: c.PlayerRef, cmd: c.Play) -> bool:
        """Play a track now, outside the queue; False when ``replace`` was False and a track
        plays (nothing changed). A claimed track is resolved again when it is opened."""
        player = self.sessions.find(ref)[1]
        if not cmd.replace and player.has_track:
            return False  # before a slow resolve: Lavalink's noReplace changes nothing
        entry = await self._entry(cmd.track)
        player = self.sessions.find(ref)[1]  # it may have been destroyed meanwhile
        check_start(entry.track, cmd.start_position, field=cmd.start_field)
        if cmd.end_position is not None and cmd.end_position <= cmd.start_position:
            raise BadRequest(
                f"field `{cmd.end_field}`: expected > {cmd.start_position:g} (the start), "
                f"got {cmd.end_position:g}"
            )
        entry.start_position, entry.end_position = cmd.start_position, cmd.end_position
        return player.play_now(entry, cmd.replace, cmd.paused)

    async def _entry(self, track: c.TrackIn | c.ClaimedTrack | c.TrackQuery) -> Entry[Any]:
        if isinstance(track, c.TrackIn):
            return self.tracks.entries((track,))[0]
        if isinstance(track, c.ClaimedTrack):
            return self.tracks.claimed(track)
        return await self.tracks.one(track)

    async def set_end(self, ref: c.PlayerRef, cmd: c.SetEnd) -> None:
        self.sessions.find(ref)[1].set_end(cmd.end_position)

    async def ensure_player(self, ref: c.PlayerRef, cmd: c.EnsurePlayer) -> None:
        session = self.sessions.session(ref.session)
        self.sessions.ensure_player(session, GuildId(ref.guild_id))

    # --- resolving ----------------------------------------------------------------------------

    async def resolve(self, ref: None, cmd: c.Resolve) -> Resolved:
        return await self.tracks.resolve(cmd.query)

    async def source_names(self, ref: None, cmd: c.GetSources) -> tuple[str, ...]:
        sources = self.tracks.sources
        return () if sources is None else tuple(s.name for s in sources.sources)

    # --- sessions -----------------------------------------------------------------------------

    def named_session(self, session_id: str) -> c.SessionRef:
        """The session a front issued ``session_id`` for (404 ``SESSION_NOT_FOUND``)."""
        return self.sessions.named(session_id)

    def has_session(self, ref: c.SessionRef) -> bool:
        """Whether ``ref`` names a session (attached to a connection or waiting for one)."""
        return ref in self.sessions.by_ref

    async def configure_session(
        self, ref: c.SessionRef, cmd: c.ConfigureSession
    ) -> SessionConfig:
        session = self.sessions.session(ref)
        if cmd.resumable is not None:
            session.resumable = cmd.resumable
        if cmd.timeout is not None:
            session.resume_timeout = cmd.timeout
        self.keeper.session_changed(session)
        return SessionConfig(
            resumable=session.resumable, timeout=self.sessions.timeout_of(session)
        )

    async def players(self, ref: c.SessionRef, cmd: c.GetPlayers) -> tuple[PlayerView, ...]:
        return tuple(player_view(p) for p in self.sessions.session(ref).players.values())

    async def frame_stats(self, ref: c.SessionRef, cmd: c.GetFrameStats) -> FrameStats:
        """Per-minute sender counters of the session's playing players that have them."""
        players = self.sessions.session(ref).players.values()
        snapshot = {} if self.engine is None else self.engine.stats().get("players", {})
        counted, sent, nulled = 0, 0.0, 0.0
        for p in players:
            rates = snapshot.get(str(p.key), {}).get("per_minute")
            if p.state is PlayerState.PLAYING and rates:
                counted += 1
                sent += rates["sent"]
                nulled += rates["nulled"]
        return FrameStats(players=counted, sent=sent, nulled=nulled)


def player_view(p: GuildPlayer) -> PlayerView:
    """Everything about one voice client (``getState``; never the voice token)."""
    voice = VoiceView(
        session_id=p.voice.session_id, endpoint=p.voice.endpoint, has_token=bool(p.voice.token)
    )
    return PlayerView(
        voice_client_id=p.id,
        guild_id=p.guild_id,
        channel_id=p.voice.channel_id,
        state=p.state,
        current=p.current_view(),
        queue_length=len(p.queue),
        repeat=p.repeat,
        options=OptionsView(
            autoplay=p.autoplay, volume=p.volume, crossfade=p.crossfade, filters=p.filters
        ),
        context=p.context,
        voice=voice,
        opening=p.opening_view(),
        paused=p.paused,
    )
