"""The dashboard's view of the node (``GET /dashboard``, docs/API.md "Dashboard"): every session
and guild, what plays, voice mode and DAVE, per-worker load and the frame counters.

Built from what ``/status`` and ``getState`` already read (the session table, each player's
view, the engine's stats book), once per second per open dashboard: cheap, no I/O, no engine
round trip. Never a voice token, never a password.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgspec

from audionode.control import events as ev
from audionode.control.views import NodeStatus
from audionode.service.direct import player_view

if TYPE_CHECKING:
    from audionode.service.node import NodeService


class VoiceLink(msgspec.Struct, frozen=True):
    """The voice connection as its last ``VoiceConnected`` described it."""

    mode: str
    dave_protocol_version: int


class PlayerOverview(msgspec.Struct, frozen=True, kw_only=True):
    guild_id: str
    voice_client_id: str
    channel_id: str | None
    state: str
    paused: bool
    title: str | None
    """The current track's title (or the one being opened); None: nothing."""
    source: str | None
    position: float | None
    duration: float | None
    as_of: float | None
    """Wall-clock time of ``position``: a page extrapolates while playing."""
    queue_length: int
    volume: float
    repeat: str
    filters: list[str]
    """Names of the filters that are set."""
    voice_mode: str | None
    """The transport encryption mode; None while no voice connection is up."""
    dave_protocol_version: int | None
    dave: bool
    """True while its frames leave DAVE-encrypted (the engine's last report)."""
    frames: dict[str, Any]
    """Its sender counters and their per-minute rates (the engine's last report)."""


class SessionOverview(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    shard_id: int | None
    name: str | None
    """The Lavalink session id, for a session of that front."""
    connected: bool
    players: list[PlayerOverview]


class NodeOverview(msgspec.Struct, frozen=True, kw_only=True):
    at: float
    """Wall-clock time of this view."""
    status: NodeStatus
    sessions: list[SessionOverview]
    workers: dict[str, Any]
    """Per engine slot: players, ticks, resyncs, worst lateness and tick (ms)."""
    frames: dict[str, Any]
    """Cumulative totals over every engine: ``sent``, ``nulled``, ``deficit``, ``silence``."""


def voice_link(links: dict[int, VoiceLink], key: int, event: ev.ControlEvent) -> None:
    """Keep ``links[key]`` up to date from a player's events."""
    if isinstance(event, ev.VoiceConnected):
        links[key] = VoiceLink(event.mode, event.dave_protocol_version)
    elif isinstance(event, ev.VoiceClosed) and not event.will_reconnect:
        links.pop(key, None)


def _filter_names(filters: Any) -> list[str]:
    if filters is None:
        return []
    raw: dict[str, Any] = msgspec.to_builtins(filters)
    return sorted(k for k, v in raw.items() if v not in (None, [], {}))


def overview(service: NodeService, status: NodeStatus) -> NodeOverview:
    """The whole view; ``status``: the node's ``/status`` view, taken just before."""
    engine = status.engine
    per_player: dict[str, Any] = engine.get("players", {})
    sessions = []
    for ref, session in service.sessions.by_ref.items():
        players = []
        for player in session.players.values():
            view = player_view(player)
            cur = view.current
            entry = cur.entry if cur is not None else view.opening
            link = service.voice_links.get(player.key)
            counters = per_player.get(str(player.key), {})
            players.append(
                PlayerOverview(
                    guild_id=str(view.guild_id),
                    voice_client_id=view.voice_client_id,
                    channel_id=None if view.channel_id is None else str(view.channel_id),
                    state=view.state.name,
                    paused=view.paused,
                    title=None if entry is None else entry.track.title,
                    source=None if entry is None else entry.track.source,
                    position=None if cur is None else cur.position,
                    duration=None if entry is None else entry.track.duration,
                    as_of=None if cur is None else cur.as_of,
                    queue_length=view.queue_length,
                    volume=view.options.volume,
                    repeat=view.repeat,
                    filters=_filter_names(view.options.filters),
                    voice_mode=None if link is None else link.mode,
                    dave_protocol_version=None if link is None else link.dave_protocol_version,
                    dave=bool(counters.get("dave", False)),
                    frames={k: v for k, v in counters.items() if k != "dave"},
                )
            )
        sessions.append(
            SessionOverview(
                user_id=str(ref.user_id),
                shard_id=ref.shard_id,
                name=ref.session_id,
                connected=session.sink is not None,
                players=sorted(players, key=lambda p: int(p.guild_id)),
            )
        )
    return NodeOverview(
        at=time.time(),
        status=status,
        sessions=sessions,
        workers=engine.get("engines", {}),
        frames=engine.get("frames", {}),
    )
