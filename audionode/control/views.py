"""Typed results of the service's commands (and the values its events carry).

Front doors map these to their wire in ``protocol/`` (Discodo: ``protocol/discodo_map.py``).
Times are seconds (floats); ``as_of`` is wall-clock time (``time.time()``) so a client on
another machine can extrapolate a position with its own clock.
"""

from __future__ import annotations

import enum
from typing import Any, Literal

import msgspec

from audionode.control.commands import Context, Filters, RepeatMode


class PlayerState(enum.IntEnum):
    """What a bot sees of a player, with Discodo's integer values (``getState.state``)."""

    DISCONNECTED = 0
    STOPPED = 1
    PAUSED = 2
    PLAYING = 3


class _View(msgspec.Struct, frozen=True, kw_only=True):
    pass


class TrackView(_View, frozen=True):
    """A track as the node hands it out; ``token`` is the node's signature over it, the only
    way to hand the track back."""

    source: str
    id: str
    title: str
    uri: str = ""
    author: str = ""
    duration: float | None = None
    is_live: bool = False
    artwork: str | None = None
    token: str = ""

    @property
    def seekable(self) -> bool:
        return not self.is_live and self.duration is not None


class EntryView(_View, frozen=True):
    """A queue entry: the track plus the bot's per-entry state."""

    track: TrackView
    tag: str
    context: Context
    start_position: float = 0.0


class CurrentView(_View, frozen=True):
    """The current track and where its playhead was at ``as_of``; while ``paused`` is False a
    client extrapolates ``position + (now - as_of)``."""

    entry: EntryView
    position: float
    as_of: float
    paused: bool = False

    @property
    def remain(self) -> float | None:
        d = self.entry.track.duration
        return None if d is None else max(0.0, d - self.position)


class OptionsView(_View, frozen=True):
    autoplay: bool
    volume: float
    crossfade: float
    filters: Filters | None = None


class VoiceView(_View, frozen=True):
    """What the node holds of the bot's voice credentials (never the token itself)."""

    session_id: str | None
    endpoint: str | None
    has_token: bool


class QueueView(_View, frozen=True):
    guild_id: int
    entries: tuple[EntryView, ...]


class PlayerView(_View, frozen=True):
    """``getState``: everything about one voice client."""

    voice_client_id: str
    guild_id: int
    channel_id: int | None
    state: PlayerState
    current: CurrentView | None
    queue_length: int
    repeat: RepeatMode
    options: OptionsView
    context: Context
    voice: VoiceView
    opening: EntryView | None = None
    """The track being opened to play now (``Play``), before its first frame is sent."""
    paused: bool = False
    """The player's paused state (a paused player starts its next track paused)."""


class PositionView(_View, frozen=True):
    duration: float | None = None
    position: float | None = None
    remain: float | None = None


class Found(_View, frozen=True):
    """A resolved query: ``playlist`` when it named a list (every track is meant)."""

    tracks: tuple[TrackView, ...]
    playlist: bool = False


class Resolved(_View, frozen=True):
    """A query as the sources answered it (``Resolve``): ``kind`` is the load type."""

    kind: Literal["track", "playlist", "search", "empty", "error"]
    tracks: tuple[TrackView, ...] = ()
    playlist: str | None = None
    """The playlist's name (``kind == "playlist"``)."""
    selected: int = -1
    """Index of the track the query pointed at inside the playlist, or -1."""
    error: str | None = None
    """Why loading failed (``kind == "error"``), fit for the end user."""


class Queued(_View, frozen=True):
    entries: tuple[EntryView, ...]
    as_list: bool = False


class Removed(_View, frozen=True):
    removed: EntryView
    queue: QueueView


class VoiceClientView(_View, frozen=True):
    guild_id: int
    voice_client_id: str
    channel_id: int | None


class Identified(_View, frozen=True):
    """Result of binding a front's connection to a session."""

    user_id: int
    shard_id: int | None
    resumed: bool
    voice_clients: tuple[VoiceClientView, ...] = ()
    dropped: int = 0
    """Events lost to the kept-events bound while no connection was attached."""


class NodeStatus(_View, frozen=True):
    version: str
    uptime: float
    cpu: dict[str, Any]
    memory: dict[str, Any]
    sessions: int
    connected_sessions: int
    players: int
    engine: dict[str, Any]
    playing: int = 0
    """Voice clients playing a track, not paused."""
    state: dict[str, Any] = msgspec.field(default_factory=dict)
    """The state file: ``enabled``, its path and write figures (docs/PERSISTENCE.md)."""


class SessionConfig(_View, frozen=True):
    """How long a session outlives its connection (``ConfigureSession``)."""

    resumable: bool
    timeout: float


class FrameStats(_View, frozen=True):
    """Frames per minute of a session's playing voice clients, summed over the ``players``
    whose engine has reported for a while (the engine's sender counters)."""

    players: int
    sent: float = 0.0
    nulled: float = 0.0
    """Frame slots in which a playing stream had no frame ready."""


class RecordedFileView(_View, frozen=True):
    """One file of a recording; ``user_id`` None is the mixed file. ``start``: seconds after
    the recording's start at which the file begins."""

    name: str
    user_id: int | None
    start: float
    seconds: float
    bytes: int


class RecordingView(_View, frozen=True):
    """A recording: its id and the folder its files are in (the node named both)."""

    id: str
    directory: str
    active: bool


class LayerView(_View, frozen=True):
    id: int
    query: str
    volume: float
    duck: float | None
    playing: bool
    """False until its audio is ready (``LayerStarted``)."""


class LayersView(_View, frozen=True):
    layers: tuple[LayerView, ...]


class VdpChannelView(_View, frozen=True):
    """Seed 004 step 2's answer: where the voice bridge sends its datagrams."""

    room_id: str
    address: str
    format: str
    version: int
    peer: str | None = None
