"""The Lavalink v4 websocket as a state machine: session events in, Lavalink frames out.

Pure: no asyncio, no sockets, the clock is a parameter (``now``: monotonic seconds for
schedules; ``now_ms``: wall-clock milliseconds for the wire). The Sanic driver is
``web/lavalink_ws.py``. Call contract of :class:`LavalinkSession` (one per socket):

1. ``ready(resumed)`` first; on a resume ``seed(players, now)`` with the session's players,
   then every kept event through :meth:`event`.
2. Each session event: ``event(e, now)`` gives the frames to send (zero to three).
3. When :meth:`next_due` comes: ``due(now)`` says whether ``stats`` are due (send
   :meth:`stats` with the node's status and the session's frame counters), which guilds want a
   ``playerUpdate`` (send :meth:`player_update` with each player's view), which guilds' tracks
   to stop because their player had no voice connection for ``cleanup_threshold`` (their end
   is reported ``cleanup``), and gives the ``TrackStuckEvent`` frames of players that sent no
   audio for ``stuck_threshold``.
4. After a REST update of a player: ``observe(view, now, now_ms, refresh)``; it gives the
   ``playerUpdate`` to send when the update moved the playhead (Lavalink sends one then).

Where Lavalink's order differs from the core's events, it is restored here: a track that fails
before its first frame gets ``TrackStartEvent``, ``TrackExceptionEvent``, then ``TrackEndEvent``
(``loadFailed``), as Lavalink sends them; a decode error mid-track gets the exception before the
end (``finished``); a destroyed player's track ends ``stopped``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from audionode.control import events as ev
from audionode.control.views import EntryView, FrameStats, NodeStatus, PlayerState, PlayerView
from audionode.protocol import lavalink_map as m

_END_REASONS = {"finished": "finished", "skipped": "stopped", "stopped": "stopped"}
REPORT_EVERY = 1.0
"""Seconds of track time between two position reports of a playing track (the engine's
pipeline reports one per second); a stall is only a stall once a report is overdue."""
_encoder = msgspec.json.Encoder()


def _text(frame: object) -> str:
    return _encoder.encode(frame).decode()


@dataclass(slots=True)
class _Guild:
    """What the session knows of one player."""

    track: EntryView | None = None
    """The track the client was told started and not yet told ended."""
    failed: str | None = None
    """Tag of a track whose failure was reported with its end (its TrackFailed is a repeat)."""
    connected: bool = False
    paused: bool = False
    progress: float = 0.0
    """When audio last advanced (or the stuck watch restarted)."""
    pace: float = 1.0
    """Track seconds per second (the timescale filter's speed x rate)."""
    stuck: bool = False
    next_update: float | None = None
    """When the periodic playerUpdate is next due (None: no track, none due)."""
    poke: bool = False
    """A one-off playerUpdate is wanted (voice up or down, stuck, resumed)."""
    offline_since: float | None = None
    """When the voice connection went away (None: connected)."""
    cleaning: bool = False
    """The track is being stopped for cleanup: its end is reported ``cleanup``."""


@dataclass(frozen=True, slots=True)
class Due:
    stats: bool = False
    updates: tuple[int, ...] = ()
    frames: tuple[str, ...] = ()
    cleanups: tuple[int, ...] = ()


@dataclass(slots=True)
class LavalinkSession:
    """One Lavalink websocket's protocol state (see the module docstring)."""

    session_id: str
    update_interval: float
    stats_interval: float
    stuck_threshold: float
    cleanup_threshold: float
    now: float
    guilds: dict[int, _Guild] = field(default_factory=dict)
    next_stats: float = field(init=False)

    def __post_init__(self) -> None:
        self.next_stats = self.now  # Lavalink sends stats as the socket opens

    def _guild(self, guild_id: int) -> _Guild:
        return self.guilds.setdefault(guild_id, _Guild())

    # --- frames ------------------------------------------------------------------------------

    def ready(self, resumed: bool) -> str:
        return _text(m.ready(resumed, self.session_id))

    def player_update(self, view: PlayerView, now_ms: int) -> str:
        return _text(m.player_update(view, now_ms))

    def stats(self, status: NodeStatus, frames: FrameStats | None) -> str:
        return _text(m.stats_op(status, frames))

    # --- state from the node ---------------------------------------------------------------

    def seed(self, players: Iterable[PlayerView], now: float) -> None:
        """A resumed session: what plays now (each player gets a playerUpdate)."""
        for view in players:
            g = self._guild(view.guild_id)
            g.track = None if view.current is None else view.current.entry
            g.next_update = now if g.track is not None else None
            self._observe(g, view, now)
            g.poke = True

    def observe(self, view: PlayerView, now: float, now_ms: int, refresh: bool) -> str | None:
        """A REST update changed the player: the playerUpdate to send if ``refresh``."""
        self._observe(self._guild(view.guild_id), view, now)
        return self.player_update(view, now_ms) if refresh else None

    def _observe(self, g: _Guild, view: PlayerView, now: float) -> None:
        g.paused = view.paused
        scale = None if view.options.filters is None else view.options.filters.timescale
        g.pace = 1.0 if scale is None else max(0.01, scale.speed * scale.rate)
        self._connected(g, view.state is not PlayerState.DISCONNECTED, now)
        g.progress, g.stuck = now, False

    @staticmethod
    def _connected(g: _Guild, connected: bool, now: float) -> None:
        if connected:
            g.offline_since = None
        elif g.connected or g.offline_since is None:
            g.offline_since = now
        g.connected = connected

    # --- events ------------------------------------------------------------------------------

    def event(self, e: ev.ControlEvent, now: float) -> list[str]:
        """The frames of one session event (most events have none on this front)."""
        if isinstance(e, ev.TrackStarted):
            return self._started(e, now)
        if isinstance(e, ev.TrackEnded):
            return self._ended(e)
        if isinstance(e, ev.TrackFailed):
            return self._failed(e)
        if isinstance(e, ev.PositionChanged):
            g = self._guild(e.guild_id)
            g.progress, g.stuck, g.paused = now, False, e.state is PlayerState.PAUSED
            return []
        return self._voice(e, now)

    def _started(self, e: ev.TrackStarted, now: float) -> list[str]:
        g = self._guild(e.guild_id)
        g.track, g.paused, g.progress, g.stuck = e.current.entry, e.current.paused, now, False
        g.next_update = now  # at once, then every update_interval
        frame = m.event("TrackStartEvent", e.guild_id, track=m.current_track(e.current))
        return [_text(frame)]

    def _ended(self, e: ev.TrackEnded) -> list[str]:
        g = self._guild(e.guild_id)
        track = m.entry_track(e.entry)
        frames = []
        if e.reason == "error":  # Lavaplayer: the exception, then the end
            g.failed = e.entry.tag
            error = m.exception(e.message or "the track could not be decoded", "suspicious")
            frames.append(m.event("TrackExceptionEvent", e.guild_id, track=track, exception=error))
        reason = _END_REASONS.get(e.reason, "finished" if e.reason == "error" else e.reason)
        if g.track is not None and g.track.tag == e.entry.tag:
            if g.cleaning:
                reason = "cleanup"
            g.track, g.next_update, g.cleaning = None, None, False
        frames.append(m.event("TrackEndEvent", e.guild_id, track=track, reason=reason))
        return [_text(f) for f in frames]

    def _failed(self, e: ev.TrackFailed) -> list[str]:
        g = self._guild(e.guild_id)
        if g.failed == e.entry.tag:  # already told with its end
            g.failed = None
            return []
        track = m.entry_track(e.entry)
        error = m.exception(e.message, "common")
        return [
            _text(m.event("TrackStartEvent", e.guild_id, track=track)),
            _text(m.event("TrackExceptionEvent", e.guild_id, track=track, exception=error)),
            _text(m.event("TrackEndEvent", e.guild_id, track=track, reason="loadFailed")),
        ]

    def _voice(self, e: ev.ControlEvent, now: float) -> list[str]:
        if isinstance(e, ev.VoiceConnected):
            g = self._guild(e.guild_id)
            self._connected(g, True, now)
            g.poke, g.progress = True, now
        elif isinstance(e, ev.VoiceClosed):
            g = self._guild(e.guild_id)
            self._connected(g, False, now)
            g.poke = True
            fields = {"code": e.code, "reason": e.reason, "byRemote": e.by_remote}
            return [_text(m.event("WebSocketClosedEvent", e.guild_id, **fields))]
        elif isinstance(e, ev.VoiceClientDestroyed):
            g = self.guilds.pop(e.guild_id, _Guild())
            if g.track is not None:
                track = m.entry_track(g.track)
                return [_text(m.event("TrackEndEvent", e.guild_id, track=track, reason="stopped"))]
        return []

    # --- schedules ---------------------------------------------------------------------------

    def _stuck_at(self, g: _Guild) -> float | None:
        watched = g.track is not None and g.connected and not g.paused and not g.stuck
        return g.progress + REPORT_EVERY / g.pace + self.stuck_threshold if watched else None

    def _cleanup_at(self, g: _Guild) -> float | None:
        if g.track is None or g.offline_since is None or g.cleaning:
            return None
        return g.offline_since + self.cleanup_threshold

    def next_due(self) -> float:
        """The earliest time :meth:`due` has something to do."""
        times = [self.next_stats]
        for g in self.guilds.values():
            if g.poke:
                return self.now
            later = (g.next_update, self._stuck_at(g), self._cleanup_at(g))
            times += [t for t in later if t is not None]
        return min(times)

    def due(self, now: float) -> Due:
        self.now = now
        stats = now >= self.next_stats
        if stats:
            self.next_stats = max(self.next_stats + self.stats_interval, now)
        updates, frames, cleanups = [], [], []
        for guild_id, g in self.guilds.items():
            cleanup_at = self._cleanup_at(g)
            if cleanup_at is not None and now >= cleanup_at:
                g.cleaning = True
                cleanups.append(guild_id)
            stuck_at = self._stuck_at(g)
            if stuck_at is not None and now >= stuck_at and g.track is not None:
                g.stuck = g.poke = True
                track = m.entry_track(g.track)
                ms = round(self.stuck_threshold * 1000)
                frame = m.event("TrackStuckEvent", guild_id, track=track, thresholdMs=ms)
                frames.append(_text(frame))
            periodic = g.next_update is not None and now >= g.next_update
            if periodic and g.next_update is not None:
                g.next_update = max(g.next_update + self.update_interval, now)
            if periodic or g.poke:
                g.poke = False
                updates.append(guild_id)
        return Due(stats, tuple(updates), tuple(frames), tuple(cleanups))
