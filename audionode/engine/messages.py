"""The typed messages between ``player/`` (control plane) and ``engine/`` (data plane).

They are msgspec structs tagged by class name, so the same values travel through an asyncio
queue (``engine.workers = 0``) or a pipe to a worker process (msgpack), unchanged.
Every message names its player by ``player``, a key unique in the node (two bots may share a
guild, so the guild id alone is not enough); the engine owns at most one voice connection and
one pipeline per player and shards players across workers by this key.
Tracks are identified by a ``serial`` the player assigns, unique per player, so late events
about an old track can never be mistaken for the current one.
"""

from __future__ import annotations

import bisect
from typing import Any

import msgspec

from audionode.playable import Playable


class _Msg(msgspec.Struct, tag=True, kw_only=True):
    player: int


# --- commands: player → engine ------------------------------------------------------------


class Connect(_Msg):
    """Open (or, with changed credentials/channel, re-open) the guild's voice connection."""

    guild_id: int
    user_id: int
    channel_id: int
    session_id: str
    token: str
    endpoint: str


class Disconnect(_Msg):
    """Close the voice connection and free the guild's pipeline."""


class Play(_Msg):
    """Play ``source`` now, replacing whatever plays (its end is reported as ``replaced``)."""

    serial: int
    source: Playable
    start_ms: int = 0
    end_ms: int | None = None


class Preload(_Msg):
    """Open and buffer the next track so it follows gaplessly or with the crossfade."""

    serial: int
    source: Playable
    start_ms: int = 0
    end_ms: int | None = None


class CancelPreload(_Msg):
    """Forget the preloaded track (the queue's head changed before it started)."""


class Skip(_Msg):
    """End the current track (``skipped``) and go on with the preloaded one, if any."""


class Stop(_Msg):
    """End the current track (``stopped``) and drop the preloaded one."""


class Pause(_Msg):
    pass


class Resume(_Msg):
    pass


class Seek(_Msg):
    position_ms: int


class SetVolume(_Msg):
    volume: float


class SetFilters(_Msg):
    filters: dict[str, Any]


class SetCrossfade(_Msg):
    seconds: float


class Fault(_Msg):
    """Test-only fault injection, refused unless the engine's process was started with
    ``AUDIONODE_TEST_FAULTS=1`` in its environment (no route or op ever builds one).

    ``kind``: ``stall-producer`` (a producer turn for this player sleeps ``seconds``: the
    shared producer thread stops while the event loop goes on), ``stall-loop`` (the
    engine's event loop blocks for ``seconds``) or ``hold-gil`` (one C call keeps the GIL
    for about ``seconds``: every thread stops). The watchdog tests use them.
    """

    kind: str
    seconds: float = 10.0


class AddLayer(_Msg):
    """Play ``source`` once over the music (``media/layers.py``); ``duck`` is the music's gain
    while it sounds (None: no ducking). Ids are the control plane's, positive."""

    layer: int
    source: Playable
    volume: float = 1.0
    duck: float | None = None


class RemoveLayer(_Msg):
    layer: int


class StartRecording(_Msg):
    """Record what the voice client hears into ``recording.path``/``name`` (a name the node
    made, never one a client sent)."""

    recording: str
    name: str


class StopRecording(_Msg):
    recording: str


class OpenVdp(_Msg):
    """Open (or, for a room this player has open, answer again) a VDP channel."""

    room_id: str


class SetVdpPeer(_Msg):
    """The voice bridge's channel; the control plane checked it against ``vdp.allowed_peers``."""

    room_id: str
    host: str
    port: int


class CloseVdp(_Msg):
    room_id: str


Command = (
    Connect
    | Disconnect
    | Play
    | Preload
    | CancelPreload
    | Skip
    | Stop
    | Pause
    | Resume
    | Seek
    | SetVolume
    | SetFilters
    | SetCrossfade
    | Fault
    | AddLayer
    | RemoveLayer
    | StartRecording
    | StopRecording
    | OpenVdp
    | SetVdpPeer
    | CloseVdp
)

# --- events: engine → player --------------------------------------------------------------


class VoiceConnected(_Msg):
    ssrc: int
    mode: str
    dave_protocol_version: int


class VoiceClosed(_Msg):
    """The voice connection closed; ``will_reconnect`` says whether the engine resumes it."""

    code: int
    reason: str
    by_remote: bool
    will_reconnect: bool


class TrackStarted(_Msg):
    """The track's first frame was actually sent (not when it was preloaded)."""

    serial: int


class TrackEnded(_Msg):
    """``reason``: finished, skipped, stopped, replaced or error."""

    serial: int
    reason: str
    message: str | None = None


class TrackPosition(_Msg):
    """The playhead of track ``serial`` was at ``position_ms`` ``held_ms`` before this report
    reached the control process's reader: a passthrough lane's report may wait for the
    producer's next hand-over (``media.events.Position.age_ms``), and a worker holds position
    reports up to ``engine.wire.POSITION_HOLD`` to write many players' reports at once; both
    are counted, so the control process dates the position where it was taken."""

    serial: int
    position_ms: int
    held_ms: int = 0


class NeedNext(_Msg):
    """The current track is within ``engine.preload`` (+ crossfade) of its end."""

    serial: int


class CommandFailed(_Msg):
    """A command was refused (e.g. an invalid filter); nothing else changed."""

    command: str
    message: str


class FrameCounters(msgspec.Struct, array_like=True, omit_defaults=True):
    """Cumulative sender counters of one player (or of a whole engine); see ``SenderStats``."""

    sent: int = 0
    nulled: int = 0
    """Ticks in which a playing stream had no frame ready (or no connection)."""
    deficit: int = 0
    """Slots skipped because the clock resynced after falling behind."""
    silence: int = 0
    errors: int = 0
    dave: bool = False
    """True while the player's frames leave DAVE-encrypted."""


LATE_BOUNDS: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.1, 0.25)
"""Upper bounds (s) of the sender lateness histogram: how long after its deadline a tick woke."""
TICK_BOUNDS: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02)
"""Upper bounds (s) of the tick duration histogram (drain + every stream of the tick)."""


class Histogram(msgspec.Struct, array_like=True):
    """Cumulative observations since the engine started: ``counts[i]`` fell in bucket ``i``
    (``<= bounds[i]``; the last count is above every bound) and their ``total`` seconds."""

    counts: list[int]
    total: float = 0.0

    @classmethod
    def empty(cls, bounds: tuple[float, ...]) -> Histogram:
        return cls(counts=[0] * (len(bounds) + 1))

    def observe(self, bounds: tuple[float, ...], value: float) -> None:
        self.counts[bisect.bisect_left(bounds, value)] += 1
        self.total += value


class EngineStats(_Msg):
    """Periodic report of one engine (every ``Engine.stats_interval`` s); ``player`` is 0.

    Counters are cumulative since the engine started; the host turns them into per-minute
    rates. Kept cheap on purpose: one message per engine per interval, whatever the players.
    """

    totals: FrameCounters
    players: dict[int, FrameCounters]
    ticks: int
    resyncs: int
    late_max_ms: float
    """Latest tick wake-up relative to its deadline since the previous report."""
    tick_max_ms: float
    """Longest tick (drain + every stream) since the previous report."""
    hearing: dict[str, int] = {}
    """Counters of ``engine/hearing.py``: VDP datagrams (``protocol/vdp.py``), recordings
    open, frames played by the receive path."""
    late: Histogram | None = None
    """Every tick's lateness (:data:`LATE_BOUNDS`), cumulative; None from an engine that does
    not measure it (a test engine)."""
    tick: Histogram | None = None
    """Every tick's duration (:data:`TICK_BOUNDS`), cumulative."""
    cpu: float = 0.0
    """Cores the engine's process used since the previous report (admission, issue 17)."""
    tick_mean_ms: float = 0.0
    """Mean tick (drain + every stream) since the previous report."""
    shared: dict[str, int] = {}
    """Shared encodes (``media/fanout.py``): pipelines feeding more than one player, and the
    players they feed."""
    realtime: int = 0
    """``SCHED_FIFO`` priority of the engine's event-loop thread; 0 = normal scheduling
    (``engine.realtime_priority``, ``engine/rtprio.py``)."""


class LayerStarted(_Msg):
    layer: int


class LayerEnded(_Msg):
    """``reason``: finished, stopped, replaced, error (with ``message``) or disconnected."""

    layer: int
    reason: str
    message: str | None = None


class RecordingStarted(_Msg):
    recording: str
    directory: str


class RecordedFile(msgspec.Struct, frozen=True, kw_only=True):
    """One file of a recording: ``user_id`` None is the mixed file; ``start`` is seconds after
    the recording's start."""

    name: str
    user_id: int | None
    start: float
    seconds: float
    bytes: int


class RecordingStopped(_Msg):
    """``reason``: stopped, max_seconds, max_bytes, overrun, disconnected or error."""

    recording: str
    reason: str
    files: list[RecordedFile] = []
    message: str | None = None


class VdpOpened(_Msg):
    room_id: str
    address: str
    """``host:port`` the voice bridge sends its datagrams to."""


class VdpClosed(_Msg):
    """``reason``: closed, peer_timeout, disconnected or error (with ``message``)."""

    room_id: str
    reason: str
    message: str | None = None


Event = (
    VoiceConnected
    | VoiceClosed
    | TrackStarted
    | TrackEnded
    | TrackPosition
    | NeedNext
    | CommandFailed
    | EngineStats
    | LayerStarted
    | LayerEnded
    | RecordingStarted
    | RecordingStopped
    | VdpOpened
    | VdpClosed
)


def refusal(command: Command, message: str) -> Event:
    """The event that answers a command the host will not deliver (too large, quarantined,
    worker restarting): a track command fails its track (the player moves on), any other
    command is reported failed."""
    if isinstance(command, Play | Preload):
        return TrackEnded(
            player=command.player, serial=command.serial, reason="error", message=message
        )
    if isinstance(command, AddLayer):
        return LayerEnded(
            player=command.player, layer=command.layer, reason="error", message=message
        )
    if isinstance(command, StartRecording):
        return RecordingStopped(
            player=command.player, recording=command.recording, reason="error", message=message
        )
    if isinstance(command, OpenVdp):
        return VdpClosed(
            player=command.player, room_id=command.room_id, reason="error", message=message
        )
    return CommandFailed(player=command.player, command=type(command).__name__, message=message)


command_decoder = msgspec.msgpack.Decoder(Command)
event_decoder = msgspec.msgpack.Decoder(Event)
encoder = msgspec.msgpack.Encoder()
