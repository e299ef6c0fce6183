"""One decode/filter/encode for many players of a live source (issue 17, decision 0018).

Players of one engine that play the same live stream (same URL, headers, demuxer options)
with the same volume and filters hear the same frames, so one :class:`~audionode.media.
pipeline.Pipeline` makes them once for all: a :class:`SharedEncode`. Each member player's
stream in the sender pops a :class:`Tee` instead of a frame buffer of its own; only the
per-connection work (DAVE, RTP, AEAD, the send) stays per player.

The first tee to pop in a tick takes the next frame of the shared pipeline's buffer; the
other tees of that tick take the same frame from a short history (each tee keeps its own
cursor, so a member whose connection was not ready for a few ticks catches up to the live
edge). Each frame is re-stamped with the member's own track serial, so the sender reports
the track start to each player under the serial that player gave it.

A member whose options diverge (another volume or filter set, a layer, a seek...) leaves:
it gets a pipeline of its own on the same live source, and its tee keeps popping the shared
frames until that pipeline has its first frame ready, then hands over (:meth:`Tee.leave_for`),
so the switch costs no gap beyond the live stream's own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final

from audionode.media.frames import Frame, FrameBuffer
from audionode.media.pipeline import Pipeline
from audionode.playable import Playable

HISTORY: Final = 8
"""Frames kept for the tees of one tick and members a few ticks behind (160 ms)."""
MAX_LAG: Final = 5
"""A tee further behind the live edge than this many frames jumps to the edge."""


class SharedEncode:
    """One pipeline whose frames several players' tees read."""

    def __init__(self, key: tuple[object, ...], source: Playable, pipeline: Pipeline) -> None:
        self.key = key
        self.source = source
        """What the pipeline plays (a member that leaves opens it again for itself)."""
        self.pipeline = pipeline
        self.tees: set[Tee] = set()
        """Every tee still reading (members and those leaving)."""
        self.members: dict[int, Tee] = {}
        """Player key -> its tee, for the players this encode plays for (events go to them)."""
        self._history: deque[Frame] = deque(maxlen=HISTORY)
        self._head = 0
        """Sequence number of the newest frame in the history (the first frame is 1)."""
        self.frames = 0
        """Frames taken from the pipeline (each sent to every member)."""
        self.on_empty: Callable[[SharedEncode], None] | None = None

    def join(self, player: int, serial: int) -> Tee:
        tee = Tee(self, serial)
        tee.cursor = self._head + 1  # from the live edge on
        self.tees.add(tee)
        self.members[player] = tee
        return tee

    def frame_for(self, tee: Tee) -> Frame | None:
        """The frame ``tee`` is due (called from the tee's :meth:`Tee.pop`)."""
        head = self._head
        cursor = tee.cursor
        if cursor > head:
            frame = self.pipeline.buffer.pop()
            if frame is None:
                return None
            self._history.append(frame)
            self._head = head + 1
            self.frames += 1
            tee.cursor = head + 2
            return frame
        lag = head - cursor
        if lag >= len(self._history) or lag > MAX_LAG:
            lag = 0  # too far behind the live edge: join it
            cursor = head
        tee.cursor = cursor + 1
        return self._history[-1 - lag]

    def drop(self, player: int) -> Tee | None:
        """``player`` no longer plays this encode (its tee may read on while it leaves)."""
        return self.members.pop(player, None)

    def release(self, tee: Tee) -> None:
        """``tee`` reads no more; the last one out closes the pipeline."""
        self.tees.discard(tee)
        if not self.tees and not self.members:
            self.pipeline.close()
            if self.on_empty is not None:
                self.on_empty(self)


class Tee:
    """One member's frame source (the sender pops it as it would a ``FrameBuffer``)."""

    __slots__ = ("cursor", "encode", "next", "serial")

    def __init__(self, encode: SharedEncode, serial: int) -> None:
        self.encode: SharedEncode | None = encode
        self.serial = serial
        self.cursor = 0
        self.next: FrameBuffer | None = None
        """The member's own pipeline's buffer once it left: popped from its first frame on."""

    def pop(self) -> Frame | None:
        nxt = self.next
        encode = self.encode
        if nxt is not None and (encode is None or nxt.ready()):
            if encode is not None:
                self.encode = None
                encode.release(self)
            return nxt.pop()
        if encode is None:
            return None
        frame = encode.frame_for(self)
        if frame is None:
            return None
        return Frame(frame.opus, self.serial, frame.position_ms)

    def leave_for(self, buffer: FrameBuffer) -> None:
        """Hand over to ``buffer`` as soon as it has a frame (the shared frames until then)."""
        self.next = buffer

    def close(self) -> None:
        """Read nothing more (the member stopped or disconnected)."""
        encode, self.encode = self.encode, None
        if encode is not None:
            encode.release(self)
