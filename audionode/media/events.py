"""Events a :class:`audionode.media.pipeline.Pipeline` reports about its tracks.

They are msgspec structs (tagged) so an engine can forward them across a process pipe as is.
``track`` is always the serial the player gave with ``play``/``queue_next``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

EndReason = Literal["finished", "stopped", "replaced", "skipped"]


class TrackStarted(msgspec.Struct, frozen=True, tag=True):
    """The track's stream opened and decoding started (for a queued track: preloading).

    Not the moment it becomes audible: that is when the sender sends the first frame whose
    ``Frame.track`` is this serial.
    """

    track: int
    duration_ms: int | None
    is_live: bool
    passthrough: bool
    """True when the stream is opus that can be forwarded without decoding."""


class TrackFinished(msgspec.Struct, frozen=True, tag=True):
    """The track's last samples were taken from its stream: at most a couple more frames of
    it follow (the ones already being encoded), then none.

    ``finished``: it reached its end (or end position); ``stopped``: :meth:`Pipeline.stop`;
    ``replaced``: :meth:`Pipeline.play` started another track; ``skipped``:
    :meth:`Pipeline.skip` moved on to the queued track.
    """

    track: int
    reason: EndReason
    position_ms: int


class TrackFailed(msgspec.Struct, frozen=True, tag=True):
    """The track could not be opened or read; ``message`` is fit for the end user.

    Reported for the current track (playback moves on to the queued track, if any) and for a
    queued track that fails while preloading (it is dropped; queue another one).
    """

    track: int
    message: str
    position_ms: int


class NextWanted(msgspec.Struct, frozen=True, tag=True):
    """The current track ends within ``preload`` (+ crossfade) seconds and nothing is queued:
    call ``queue_next`` now for a gapless or crossfaded transition."""

    track: int
    remaining_ms: int


class Position(msgspec.Struct, frozen=True, tag=True):
    """Periodic position of the track being produced (about 60 ms ahead of the ear), as it
    was ``age_ms`` before the event (a lane's report waits for the producer's next turn)."""

    track: int
    position_ms: int
    age_ms: int = 0


class FiltersFailed(msgspec.Struct, frozen=True, tag=True):
    """A filter set could not be applied (its graph failed to build, failed its trial, or
    missed the build deadline: the previous set stays), or a playing chain failed or
    overran its CPU budget (the filters are removed, the audio goes on). The engine reports
    it as ``CommandFailed`` for ``SetFilters``; ``message`` is fit for the end user."""

    message: str


class LayerStarted(msgspec.Struct, frozen=True, tag=True):
    """A layer (``Pipeline.add_layer``) has audio ready and is mixed from the next frame."""

    layer: int


class LayerEnded(msgspec.Struct, frozen=True, tag=True):
    """A layer ended: ``finished`` (its source ended), ``stopped`` (``remove_layer``),
    ``replaced`` (a layer of the same id was added) or ``error`` (with ``message``)."""

    layer: int
    reason: str
    message: str | None = None


PipelineEvent = (
    TrackStarted
    | TrackFinished
    | TrackFailed
    | NextWanted
    | Position
    | FiltersFailed
    | LayerStarted
    | LayerEnded
)
