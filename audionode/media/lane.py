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

from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from audionode import native
from audionode.media.frames import FRAME_SAMPLES, Frame
from audionode.media.reader import NEVER, TrackReader

if TYPE_CHECKING:
    from audionode.native import _packet

__all__ = ["NEVER", "Lane"]


class _LaneFields:
    """The lane's state fields where the C extension is not built; with it, its ``LaneCore``
    holds them as C fields, which the sender's native Pump reads and writes directly
    (docs/decisions/0020-native-tick.md). Python sees the same attributes either way."""

    __slots__ = ("crossed", "margin", "open", "pos", "stop_at", "turn_at")

    crossed: int
    margin: int
    open: bool
    pos: int
    stop_at: int
    turn_at: int


if TYPE_CHECKING:
    _Base = _LaneFields
else:
    try:
        from audionode.native._packet import LaneCore as _Base
    except ImportError:  # not built: the same fields in Python
        _Base = _LaneFields


class Lane(_Base):
    """One open lane of one track. Its state is written under the reader's lock; the pipeline
    reads :attr:`pos` and :attr:`crossed` on its turns and re-arms :attr:`stop_at` and
    :attr:`turn_at`."""

    __slots__ = ("on_mark", "on_turn", "pop", "reader", "serial")

    def __init__(
        self,
        reader: TrackReader,
        on_turn: Callable[[], None],
        pos: int,
        *,
        margin: int,
        stop_at: int = NEVER,
        turn_at: int = NEVER,
        on_mark: Callable[[], None] | None = None,
    ) -> None:
        self.reader = reader
        self.serial = reader.serial
        self.on_turn = on_turn
        """Asks the pipeline for a turn at once (``Producer.schedule``: never blocks): the
        lane closed, frames must be made."""
        self.on_mark = on_turn if on_mark is None else on_mark
        """Asks for a turn that may wait a little (``Producer.schedule(lazy=True)``): a packet
        reached :attr:`turn_at`. The lane keeps serving meanwhile, so the turn knows how late
        it came from how far :attr:`pos` moved past :attr:`crossed` (one frame a tick)."""
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

    def feed(
        self, key: object, channel: _packet.Channel, frames: deque[Frame], track: int
    ) -> _packet.Feed | None:
        """This lane as a Feed of the sender's native Pump (decision 0020), which runs
        :meth:`TrackReader.take_for_lane`'s common case in C; None without the extension, or
        when the lane is closed or carries another track than ``track`` (the sender has not
        reported this one's start yet)."""
        mod = native.module()
        if mod is None or not self.open or self.serial != track:
            return None
        if not isinstance(self.reader, mod.ReaderCore):  # the queue the Pump reads (0022)
            return None
        feed: _packet.Feed = mod.Feed(key, channel, frames, self, NEVER)
        return feed

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
