"""The one event vocabulary of the control plane: a session's and a player's life.

Players and the service emit these (frozen, typed) and never a wire format; a session keeps
them while no connection is attached; each front door maps them to its wire in a pure module
(Discodo: ``protocol/discodo_map.py``). The engine's own messages (``engine/messages.py``) are a
different, smaller vocabulary at the process boundary: the player translates them into these.

Every event names its guild. Order guarantees (docs/API.md, "Order of events") are the
player's: :class:`TrackStarted` when the first frame was sent, :class:`PositionChanged` while
it plays, :class:`TrackEnded` with its reason.
"""

from __future__ import annotations

import enum
from typing import Literal

import msgspec

from audionode.control.views import (
    CurrentView,
    EntryView,
    LayerView,
    PlayerState,
    RecordedFileView,
    RecordingView,
)

EndReason = Literal["finished", "skipped", "stopped", "replaced", "error"]
QueueOp = Literal["extend", "insert", "pop", "clear"]


class CloseReason(enum.Enum):
    """Why the service ends a front's connection (each front has its own close code)."""

    TAKEN_OVER = "another connection identified as this session"
    SHUTTING_DOWN = "node shutting down"


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    guild_id: int


class VoiceClientCreated(_Event, frozen=True):
    """The bot's first voice update for a guild made its voice client."""

    voice_client_id: str


class VoiceClientDestroyed(_Event, frozen=True):
    pass


class VoiceChannelChanged(_Event, frozen=True):
    channel_id: int | None


class VoiceConnected(_Event, frozen=True):
    ssrc: int
    mode: str
    dave_protocol_version: int


class VoiceClosed(_Event, frozen=True):
    code: int
    reason: str
    by_remote: bool
    will_reconnect: bool


class QueueChanged(_Event, frozen=True):
    """One queue mutation, mirrored as the Python list method ``op``: ``extend(entries)``,
    ``insert(index, entries[0])``, ``pop(index)``, ``clear()``."""

    op: QueueOp
    index: int | None = None
    entries: tuple[EntryView, ...] = ()


class TrackStarted(_Event, frozen=True):
    """The track's first frame was sent."""

    current: CurrentView


class TrackEnded(_Event, frozen=True):
    entry: EntryView
    reason: EndReason
    message: str | None = None


class TrackFailed(_Event, frozen=True):
    """A track could not be opened or decoded; it was dropped and the next one plays."""

    entry: EntryView
    message: str


class NextWanted(_Event, frozen=True):
    """The current track nears its end and nothing follows: queue something now."""

    current: CurrentView | None
    autoplay: bool


class PositionChanged(_Event, frozen=True):
    position: float
    as_of: float
    state: PlayerState


class PlayerError(_Event, frozen=True):
    """The engine refused a command (``command`` names it) or its worker died."""

    message: str
    command: str | None = None


class RecordingStarted(_Event, frozen=True):
    """The recording's folder and mixed file exist; audio is being written."""

    recording: RecordingView


class RecordingStopped(_Event, frozen=True):
    """``reason``: stopped, max_seconds, max_bytes, overrun, disconnected or error (then
    ``message``). ``files`` names every file written."""

    recording: RecordingView
    reason: str
    files: tuple[RecordedFileView, ...] = ()
    message: str | None = None


class LayerStarted(_Event, frozen=True):
    layer: LayerView


class LayerEnded(_Event, frozen=True):
    """``reason``: finished, stopped, error (then ``message``) or disconnected."""

    layer: LayerView
    reason: str
    message: str | None = None


class VdpChannelOpened(_Event, frozen=True):
    room_id: str
    address: str


class VdpChannelClosed(_Event, frozen=True):
    """``reason``: closed (asked), peer_timeout, disconnected, engine_restarted or error:
    every reason but ``closed`` means the channel broke and may be negotiated again."""

    room_id: str
    reason: str
    message: str | None = None


ControlEvent = (
    VoiceClientCreated
    | VoiceClientDestroyed
    | VoiceChannelChanged
    | VoiceConnected
    | VoiceClosed
    | QueueChanged
    | TrackStarted
    | TrackEnded
    | TrackFailed
    | NextWanted
    | PositionChanged
    | PlayerError
    | RecordingStarted
    | RecordingStopped
    | LayerStarted
    | LayerEnded
    | VdpChannelOpened
    | VdpChannelClosed
)
