"""Keys and commands: what a front door hands to :class:`audionode.service.NodeService`.

A command is built by a front door from its wire *after* validation (``protocol/``), so every
value here is already in range: the service and the players never validate again. Ranges that
every front shares are defined once here (:data:`Volume`, :data:`Position`...) and used by the
wire structs of each front, which is how "validated once, at the edge, naming the field" holds
for every front alike.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from audionode.protocol.filters import Filters as Filters  # the filter model (re-exported)

MAX_POSITION = 7 * 24 * 3600.0
"""Seconds: the largest seek or start position any front accepts (a week). Larger numbers are
refused at the edge, so a position always fits the engine's millisecond integers."""

Volume = Annotated[float, Meta(ge=0.0, le=5.0)]
Crossfade = Annotated[float, Meta(ge=0.0, le=30.0)]
Position = Annotated[float, Meta(ge=0.0, le=MAX_POSITION)]
SkipCount = Annotated[int, Meta(ge=1, le=1_000_000)]
QueueIndex = Annotated[int, Meta(ge=0, le=1_000_000)]
RepeatMode = Literal["off", "track", "queue"]
Duck = Annotated[float, Meta(ge=0.0, le=1.0)]
"""The music's gain while a layer sounds (0 silences it, 1 leaves it)."""
LayerId = Annotated[int, Meta(ge=1, le=2**31 - 1)]
Context = dict[str, Any]
"""Free JSON a bot attaches to a voice client or a queue entry (Discodo's ``context``)."""


class _Frozen(msgspec.Struct, frozen=True, kw_only=True):
    pass


# --- keys ---------------------------------------------------------------------------------------


class SessionRef(_Frozen, frozen=True):
    """A bot's session: one per (user, shard), as Discodo keyed its managers."""

    user_id: int
    shard_id: int | None = None


class PlayerRef(_Frozen, frozen=True):
    """One voice client: the session, the guild and, when the front carries it, the voice
    client's id (REST's ``VoiceClient-ID``), checked in constant time.

    ``shard_id = None`` with ``shard_given = False`` means the front did not say (a Discodo
    client never sends ``Shard-ID``): the service then looks among the user's sessions for the
    one holding the guild.
    """

    user_id: int
    guild_id: int
    shard_id: int | None = None
    shard_given: bool = True
    voice_client_id: str | None = None

    @property
    def session(self) -> SessionRef:
        return SessionRef(user_id=self.user_id, shard_id=self.shard_id)


# --- session and voice --------------------------------------------------------------------------


class VoiceState(_Frozen, frozen=True):
    """The bot's own ``VOICE_STATE_UPDATE`` for a guild (forwarded by the bot)."""

    guild_id: int
    session_id: str
    channel_id: int | None = None


class VoiceServer(_Frozen, frozen=True):
    """``VOICE_SERVER_UPDATE``; ``endpoint = None`` means "wait for the next one"."""

    guild_id: int
    token: str
    endpoint: str | None = None


class Ignored(_Frozen, frozen=True):
    """A forwarded dispatch the node has no use for (another user's voice state, a message)."""


# --- tracks -------------------------------------------------------------------------------------


class Search(_Frozen, frozen=True):
    """Resolve a query without queueing (``getSource``, ``searchSources``)."""

    query: str
    first_only: bool = False


class Load(_Frozen, frozen=True):
    """Resolve a query and queue what it gives (a playlist queues every track)."""

    query: str


class TrackIn(_Frozen, frozen=True):
    """A track handed back by a bot: a token this node issued plus the bot's per-entry state.
    ``field`` names where it came from, for errors (``source[1].encoded``)."""

    token: str
    field: str
    context: Context = msgspec.field(default_factory=dict)
    start_position: float = 0.0


class Put(_Frozen, frozen=True):
    """Queue tracks this node issued, appended or inserted at ``index``."""

    tracks: tuple[TrackIn, ...]
    index: int | None = None
    as_list: bool = False
    """The bot sent a list (the reply is a list too)."""


# --- playback -----------------------------------------------------------------------------------


class Skip(_Frozen, frozen=True):
    count: int = 1
    """Skip the current track and ``count - 1`` queued ones."""


class Previous(_Frozen, frozen=True):
    pass


class Seek(_Frozen, frozen=True):
    position: float
    """Seconds from the start of the current track."""


class Pause(_Frozen, frozen=True):
    pass


class Resume(_Frozen, frozen=True):
    pass


class Stop(_Frozen, frozen=True):
    pass


class SetOptions(_Frozen, frozen=True):
    """Any of volume, crossfade, autoplay and filters; ``None`` leaves one unchanged."""

    volume: float | None = None
    crossfade: float | None = None
    autoplay: bool | None = None
    filters: Filters | None = None


class SetRepeat(_Frozen, frozen=True):
    mode: RepeatMode


class SetContext(_Frozen, frozen=True):
    context: Context


# --- the queue ----------------------------------------------------------------------------------


class QueueKey(_Frozen, frozen=True):
    """An entry by index (negative counts from the end) or by tag."""

    key: int | str


class UpdateEntry(_Frozen, frozen=True):
    key: int | str
    index: int | None = None
    context: Context | None = None
    start_position: float | None = None


class Shuffle(_Frozen, frozen=True):
    pass


class Clear(_Frozen, frozen=True):
    pass


# --- reads --------------------------------------------------------------------------------------


class GetState(_Frozen, frozen=True):
    pass


class GetQueue(_Frozen, frozen=True):
    pass


class GetEntry(_Frozen, frozen=True):
    key: int | str


class GetOptions(_Frozen, frozen=True):
    pass


class GetRepeat(_Frozen, frozen=True):
    pass


class GetContext(_Frozen, frozen=True):
    pass


class GetCurrent(_Frozen, frozen=True):
    pass


class GetPosition(_Frozen, frozen=True):
    pass


class SetCurrentContext(_Frozen, frozen=True):
    context: Context


class RemoveEntry(_Frozen, frozen=True):
    key: int | str


class Destroy(_Frozen, frozen=True):
    pass


class GetStatus(_Frozen, frozen=True):
    pass


# --- hearing: recording, layers, the VDP bridge (issue 15) --------------------------------------


class Record(_Frozen, frozen=True):
    """Start or stop recording what the voice client hears (``recording.path``)."""

    action: Literal["start", "stop"]


class AddLayer(_Frozen, frozen=True):
    """Play ``query``'s first track once over the music at ``volume``; ``duck`` lowers the
    music to that gain while the layer sounds."""

    query: str
    volume: float = 1.0
    duck: float | None = None


class RemoveLayer(_Frozen, frozen=True):
    layer: int


class GetLayers(_Frozen, frozen=True):
    pass


class OpenVdpChannel(_Frozen, frozen=True):
    """Seed 004 step 1: the voice bridge asks for a channel for ``room_id`` (validated at
    the edge: 1-255 printable characters); ``format`` and ``version`` as it asked."""

    room_id: str
    format: str
    version: int


class SetVdpPeer(_Frozen, frozen=True):
    """Seed 004 step 3: the voice bridge's own channel, an IP literal and port."""

    room_id: str
    host: str
    port: int


class CloseVdpChannel(_Frozen, frozen=True):
    room_id: str


PlayerCommand = (
    Load
    | Put
    | Skip
    | Previous
    | Seek
    | Pause
    | Resume
    | Stop
    | SetOptions
    | SetRepeat
    | SetContext
    | SetCurrentContext
    | UpdateEntry
    | RemoveEntry
    | Shuffle
    | Clear
    | GetState
    | GetQueue
    | GetEntry
    | GetOptions
    | GetRepeat
    | GetContext
    | GetCurrent
    | GetPosition
    | Destroy
    | Record
    | AddLayer
    | RemoveLayer
    | GetLayers
    | OpenVdpChannel
    | SetVdpPeer
    | CloseVdpChannel
)
"""Commands addressed to one voice client (:class:`PlayerRef`)."""
