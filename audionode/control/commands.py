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
    """A bot's session: one per (user, shard), as Discodo keyed its managers; or, for a front
    whose sessions are not keyed by shard (Lavalink), one per ``session_id`` the front issued.
    A named session is never found by a shard lookup, nor a shard-keyed one by name."""

    user_id: int
    shard_id: int | None = None
    session_id: str | None = None


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
    session_id: str | None = None
    """The front-issued session id (see :class:`SessionRef`)."""

    @property
    def session(self) -> SessionRef:
        return SessionRef(
            user_id=self.user_id, shard_id=self.shard_id, session_id=self.session_id
        )


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


class Resolve(_Frozen, frozen=True):
    """Resolve a query as the sources answer it: its load type and every track, with an empty
    or failed result as a value rather than an error (Lavalink's ``loadtracks``)."""

    query: str


class GetSources(_Frozen, frozen=True):
    """The names of the node's sources, in asking order."""


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


class ClaimedTrack(_Frozen, frozen=True):
    """A track a client describes without this node's signature (Lavalink's ``encoded``):
    resolved again through the sources, and their guards, before it plays; what the sources
    answer then replaces this description."""

    source: str
    id: str
    title: str
    uri: str = ""
    author: str = ""
    duration: float | None = None
    is_live: bool = False
    artwork: str | None = None
    field: str = "track"
    """Where the description came from, for errors (``track.encoded``)."""
    context: Context = msgspec.field(default_factory=dict)


class TrackQuery(_Frozen, frozen=True):
    """A query that must resolve to exactly one track (Lavalink's ``identifier``): a search, a
    playlist or nothing is a 400 naming ``field``."""

    query: str
    field: str = "identifier"
    context: Context = msgspec.field(default_factory=dict)


# --- playback -----------------------------------------------------------------------------------


class Play(_Frozen, frozen=True):
    """Play one track now, outside the queue (Lavalink's player: the client owns the queue).

    What plays is replaced (its end is reported as ``replaced``) unless ``replace`` is False
    and a track is playing or being opened (then nothing changes). ``paused`` sets the player's
    paused state for the new track (None: unchanged). ``end_position`` ends the track there
    (reported as ``finished``)."""

    track: TrackIn | ClaimedTrack | TrackQuery
    start_position: float = 0.0
    end_position: float | None = None
    replace: bool = True
    paused: bool | None = None
    start_field: str = "start_position"
    end_field: str = "end_position"
    """How the client named the start and the end (errors name them so)."""


class SetEnd(_Frozen, frozen=True):
    """End the current track at ``end_position`` seconds (None: play it to its end). Nothing
    changes when no track plays."""

    end_position: float | None


class EnsurePlayer(_Frozen, frozen=True):
    """Create the guild's voice client if the session has none (Lavalink's players exist from
    their first update, voice or not)."""


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


class ConfigureSession(_Frozen, frozen=True):
    """How long a session outlives its connection: ``resumable`` False ends it (and its voice
    clients) as its connection closes; ``timeout`` seconds otherwise (None: unchanged)."""

    resumable: bool | None = None
    timeout: float | None = None


class GetPlayers(_Frozen, frozen=True):
    """Every voice client of a session."""


class GetFrameStats(_Frozen, frozen=True):
    """The last minute's frame counters of a session's playing voice clients."""
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
    | Play
    | SetEnd
    | EnsurePlayer
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
