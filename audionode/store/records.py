"""What the state file holds, as typed records (msgspec structs, msgpack-encoded in BLOBs).

The service builds these from its live state and rebuilds its state from them
(``service/persist.py``); the store only encodes, writes, reads and decodes them. Tracks are
the node's own :class:`~audionode.sources.api.Track` structs (never a bot-facing token), so a
restored track is opened through its source again. Events are the control plane's typed
events (``control/events.py``), mapped to a wire only when a front door sends them.

A change to a record that an older file cannot decode needs a schema version
(``store/schema.py``); adding a field with a default does not.
"""

from __future__ import annotations

from typing import Any

import msgspec

from audionode.control.commands import Filters, RepeatMode
from audionode.control.events import ControlEvent
from audionode.sources.api import Track


class _Record(msgspec.Struct, frozen=True, kw_only=True):
    pass


class Identity(_Record, frozen=True):
    """The node's id (named in its track tokens) and the tokens' HMAC secret."""

    node_id: str
    token_secret: bytes


class VoiceRecord(_Record, frozen=True):
    """The voice credentials the bot forwarded (``token`` is a secret: docs/PERSISTENCE.md)."""

    session_id: str | None = None
    channel_id: int | None = None
    token: str | None = None
    endpoint: str | None = None


class EntryRecord(_Record, frozen=True):
    """One queued (or current, or past) track with the bot's per-entry state."""

    track: Track
    tag: str
    context: dict[str, Any] = msgspec.field(default_factory=dict)
    start_position: float = 0.0
    end_position: float | None = None
    claimed: str | None = None
    """Set when the track is a client's unsigned claim (the field it came in): it is resolved
    again through the sources before it plays, after a restart as before."""


class PlayerRecord(_Record, frozen=True):
    """A voice client: its id, credentials, options and what plays (the queue is apart)."""

    guild_id: int
    voice_client_id: str
    voice: VoiceRecord
    volume: float = 1.0
    crossfade: float = 0.0
    autoplay: bool = False
    filters: Filters | None = None
    repeat: RepeatMode = "off"
    paused: bool = False
    context: dict[str, Any] = msgspec.field(default_factory=dict)
    current: EntryRecord | None = None
    """The track playing (or being opened to play) when the record was made."""
    stopped: bool = False
    """The bot stopped playback: nothing starts until it resumes or enqueues."""


class QueueRecord(_Record, frozen=True):
    entries: tuple[EntryRecord, ...] = ()
    history: tuple[EntryRecord, ...] = ()
    """Played tracks, oldest first (for ``previous``)."""


class SessionRecord(_Record, frozen=True):
    """A bot session: its key, whether a connection was attached, its kept events."""

    user_id: int
    shard_id: int | None = None
    session_id: str | None = None
    """The name a front issued (Lavalink's session id), if any."""
    resumable: bool = True
    resume_timeout: float | None = None
    """Seconds it outlives its connection; None: ``vc_timeout``."""
    detached_at: float | None = None
    """Wall-clock seconds when its last connection closed; None while one was attached."""
    kept: tuple[ControlEvent, ...] = ()
    dropped: int = 0


class StoredPlayer(_Record, frozen=True):
    """A player as read back: its record, its queue and its last written position."""

    session: str
    record: PlayerRecord
    queue: QueueRecord
    position: float | None = None
    position_at: float | None = None
    """Wall-clock seconds when the track was at ``position`` and playing on; None when it was
    not moving (paused, no voice, being opened). A moving track is not written again while it
    keeps time: at start-up it is where it was at the node's last ``Snapshot.alive_at``."""


def position_then(stored: StoredPlayer, alive_at: float | None) -> float | None:
    """Where the stored track was when the node was last known alive: ``position``, moved on
    from ``position_at`` to ``alive_at`` if it was playing (not clamped to its end)."""
    if stored.position is None or stored.position_at is None or alive_at is None:
        return stored.position
    return stored.position + max(0.0, alive_at - stored.position_at)


class Snapshot(_Record, frozen=True):
    """Everything a state file holds, as read at start-up."""

    identity: Identity
    sessions: dict[str, SessionRecord]
    players: tuple[StoredPlayer, ...]
    alive_at: float | None = None
    """Wall-clock seconds of the node's last checkpoint (None: never written)."""


_encoder = msgspec.msgpack.Encoder()


def encode(record: _Record) -> bytes:
    """The record's bytes; encoding freezes it, so the caller may go on changing its state."""
    return _encoder.encode(record)


def decode(data: bytes, kind: type[Any]) -> Any:
    """Bytes back to a record of ``kind`` (``msgspec.DecodeError`` / ``ValidationError``)."""
    return msgspec.msgpack.decode(data, type=kind)
