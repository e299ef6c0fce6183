"""The passthrough lane: while a track plays as pure passthrough, the sender takes its opus
packets straight from the track's reader (docs/decisions/0019-native-ogg-demux.md;
figures in docs/PERFORMANCE.md, "Passthrough lane and native Ogg demux").

Pure passthrough (an opus track, no filters, volume 1.0, no crossfade or layer sounding, not
paused) forwards every packet untouched, so a producer turn per frame (mixer, frame buffer,
a wake-up of the producer thread per popped frame) does nothing but move it. While the lane
is open, ``FrameBuffer.pop`` (the sender's tick) pops the reader's next packet itself, and the
pipeline gets a turn only when it has something to decide: a position event is due, the track
nears a point where frames must be made (its end, the start of a crossfade), a packet is not
one 20 ms frame, or a control command came in.

Control latency is not traded for it: a command closes the lane at once (``Pipeline._post``),
and the packets not yet popped are still the reader's, so the next frame the sender pops is
made by the normal path with the new settings (no buffered frame stands in between).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from audionode.media.frames import FRAME_SAMPLES, Frame
from audionode.media.reader import NEVER, TrackReader

__all__ = ["NEVER", "Lane"]


class Lane:
    """One open lane of one track. Its state is written under the reader's lock; the pipeline
    reads :attr:`pos` and :attr:`crossed` on its turns and re-arms :attr:`stop_at` and
    :attr:`turn_at`."""

    __slots__ = (
        "crossed",
        "margin",
        "on_turn",
        "open",
        "pop",
        "pos",
        "reader",
        "serial",
        "stop_at",
        "turn_at",
    )

    def __init__(
        self,
        reader: TrackReader,
        on_turn: Callable[[], None],
        pos: int,
        *,
        margin: int,
        stop_at: int = NEVER,
        turn_at: int = NEVER,
    ) -> None:
        self.reader = reader
        self.serial = reader.serial
        self.on_turn = on_turn
        """Asks the pipeline for a turn (``Producer.schedule``: never blocks)."""
        self.pop: Callable[[], Frame | None] = partial(reader.take_for_lane, self)
        """The next packet as a frame, or None (nothing read yet, or the lane closed): what
        ``FrameBuffer.pop`` returns once its own frames are out. A ``partial`` of the reader's
        method, so a pop is one Python call (it runs per frame per player)."""
        self.open = True
        self.pos = pos
        """Position (48 kHz samples) after the last packet taken: the deck's position."""
        self.crossed = -1
        """Position of the packet that reached :attr:`turn_at` (-1: none since the last
        turn): the frame a position event names, as the normal path names the frame made."""
        self.margin = margin
        """Samples left before a stop at which the lane closes, so the pipeline has its
        buffer's worth of frames to take over (the end of the track, a crossfade)."""
        self.stop_at = stop_at
        """No packet from this position on leaves by the lane."""
        self.turn_at = turn_at
        """A packet from this position on asks the pipeline for a turn (a position event, a
        NextWanted is due); set to :data:`NEVER` by that packet until the turn re-arms it."""

    def __len__(self) -> int:
        return self.reader.buffered() // FRAME_SAMPLES if self.open else 0

    def detach(self) -> None:
        """Break the cycle through :attr:`pop` (a partial holding this lane) once the pipeline
        let go of the lane: a cycle waits for the cyclic GC, which the engine runs rarely
        (``engine/gcpolicy.py``), and this one holds the finished track's reader and container
        (tests/media/test_pipeline.py, the soak in docs/PERFORMANCE.md). A pop still under way
        on the sender's thread has its own reference and finds the lane closed."""
        self.open = False
        self.pop = _closed_pop

    def close(self) -> None:
        """No packet leaves by the lane after this returns (any thread)."""
        with self.reader.lock:
            self.open = False


def _closed_pop() -> Frame | None:
    """:attr:`Lane.pop` of a detached lane."""
    return None
