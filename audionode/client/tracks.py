"""Tracks as the bot sees them, read from the node's track objects (``docs/API.md``,
"Track objects"), and the filter object a bot may send.

A :class:`Track` is immutable. Two tracks are equal when everything but their signature is:
the node re-signs a track (``encoded``) every time it describes it, so the same queue entry
read twice carries two different tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict

import msgspec

from audionode.client.errors import ProtocolError

JSON = Any


class _WireTrack(msgspec.Struct, kw_only=True):
    """The fields of an ``AudioData``/``AudioSource`` the client reads (others are ignored)."""

    id: str
    title: str
    source: str = ""
    webpage_url: str | None = None
    uploader: str | None = None
    duration: float | None = None
    is_live: bool = False
    thumbnail: str | None = None
    encoded: str = ""
    tag: str | None = None
    context: dict[str, JSON] = msgspec.field(default_factory=dict)
    start_position: float = 0.0
    position: float | None = None
    as_of: float | None = None


@dataclass(frozen=True, slots=True)
class Track:
    """One track: a queue entry, the current track, or a search result.

    ``uri`` is what loads the track again (any node resolves it: the failover re-resolves
    tracks by it); ``tag`` names a queue entry on its node (``None`` for a search result);
    ``context`` is the bot's own JSON for the entry; ``encoded`` is the issuing node's
    signature, valid on that node only; ``node`` is that node's identifier.
    """

    id: str
    title: str
    uri: str
    source: str = ""
    author: str = ""
    duration: float | None = None
    """Seconds; ``None`` for a live stream or a stream of unknown length."""
    is_live: bool = False
    artwork: str | None = None
    tag: str | None = None
    context: dict[str, JSON] = field(default_factory=dict)
    start_position: float = 0.0
    """Where the entry starts playing, seconds."""
    encoded: str = field(default="", compare=False, repr=False)
    node: str = field(default="", compare=False)

    @property
    def seekable(self) -> bool:
        return not self.is_live and self.duration is not None

    @classmethod
    def from_wire(cls, data: JSON, node: str = "") -> Track:
        """Read a track object; :class:`ProtocolError` names the field when it is malformed."""
        return cls._of(_convert(data), node)

    @classmethod
    def _of(cls, w: _WireTrack, node: str) -> Track:
        return cls(
            id=w.id,
            title=w.title,
            uri=w.webpage_url or w.id,
            source=w.source,
            author=w.uploader or "",
            duration=w.duration,
            is_live=w.is_live,
            artwork=w.thumbnail,
            tag=w.tag,
            context=w.context,
            start_position=w.start_position,
            encoded=w.encoded,
            node=node,
        )


@dataclass(frozen=True, slots=True)
class Playhead:
    """Where the current track's playhead was: ``position`` seconds at wall-clock ``as_of``
    (the node's ``time.time()``); while not ``paused`` it moves on in real time."""

    position: float
    as_of: float
    paused: bool = False

    def at(self, now: float, duration: float | None = None) -> float:
        """The extrapolated position at wall-clock ``now``, within ``[0, duration]``."""
        pos = self.position if self.paused else self.position + max(0.0, now - self.as_of)
        if duration is not None:
            pos = min(pos, duration)
        return max(0.0, pos)


def current_from_wire(data: JSON, node: str, paused: bool) -> tuple[Track, Playhead]:
    """The current track (``AudioSource``) and its playhead."""
    w = _convert(data)
    if w.position is None or w.as_of is None:
        raise ProtocolError("current track: `position` and `as_of` are required")
    return Track._of(w, node), Playhead(w.position, w.as_of, paused)


def _convert(data: JSON) -> _WireTrack:
    try:
        return msgspec.convert(data, _WireTrack)
    except msgspec.ValidationError as e:
        raise ProtocolError(f"track object: {e}") from None


class Band(TypedDict):
    band: int
    """0-14 (25 Hz ... 16 kHz)."""
    gain: float
    """-0.25 ... 1.0."""


class Filters(TypedDict, total=False):
    """Lavalink's filter object plus ``raw`` (``docs/API.md``, "Options"); every key optional.

    ``{"timescale": {"speed": 1.25}, "equalizer": [{"band": 0, "gain": 0.2}]}``. The node
    validates it and answers an invalid one with ``FILTER_INVALID`` naming the parameter.
    """

    volume: float
    equalizer: list[Band]
    karaoke: dict[str, float]
    timescale: dict[str, float]
    tremolo: dict[str, float]
    vibrato: dict[str, float]
    rotation: dict[str, float]
    distortion: dict[str, float]
    channelMix: dict[str, float]
    lowPass: dict[str, float]
    raw: dict[str, str]
