"""The bounded frame buffer: the only object the pipeline and the real-time sender share.

One producer (a pipeline's thread) and one consumer (the sender, on the event-loop thread).
:meth:`FrameBuffer.pop` never blocks and never takes a lock the producer can hold for long:
it pops from a :class:`collections.deque` (atomic under the GIL) and, once the level falls to
:attr:`FrameBuffer.low_water`, *tries* to wake the producer without waiting for the lock. A try
that fails is owed and retried at every following pop; and a producer sleeping on a full buffer
never sleeps longer than the buffered frames last (``Pipeline``), so a lost wake-up costs slack,
not audio. The producer refills several frames per wake-up: with thousands of players a wake-up
per frame costs more than the frames themselves (issue 7).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import msgspec

if TYPE_CHECKING:
    from audionode.native import _packet

FRAME_MS = 20
"""Every frame is one 20 ms opus packet at 48 kHz (960 samples per channel)."""
FRAME_SAMPLES = 960


class Frame(msgspec.Struct, frozen=True, gc=False):
    """One 20 ms opus packet (48 kHz stereo) ready to be sealed and sent. A msgspec struct, as
    ``media.reader.Packet`` (built in C, untracked by the cyclic GC): one is made per frame
    per player.

    ``track`` is the serial the player gave the track this frame belongs to; the first frame
    of a serial the sender actually sends is the moment the track becomes audible (emit
    SOURCE_START then, not at preload). ``position_ms`` is the position in that track at the
    start of the frame.
    """

    opus: bytes
    track: int
    position_ms: int


class FrameLane(Protocol):
    """A source of frames the buffer pops from once its own frames are gone
    (``media/lane.Lane``: a passthrough track's packets taken straight from its reader)."""

    def pop(self) -> Frame | None: ...

    def __len__(self) -> int: ...

    def feed(
        self, key: object, channel: _packet.Channel, frames: deque[Frame], track: int
    ) -> _packet.Feed | None: ...


class FrameBuffer:
    """A bounded FIFO of :class:`Frame`.

    Consumer side (the sender, every 20 ms): :meth:`pop`, ``len()``. Producer side (the
    pipeline's thread): :meth:`room`, :meth:`put`, :meth:`wait_for_room`. Either side may
    :meth:`clear`. ``wake`` is the condition the producer sleeps on; the pipeline passes its
    own so that a popped frame, a control command and fresh input all wake the same thread.
    """

    RECHECK = 0.01
    """Longest sleep of a producer waiting for room, covering a wake-up the consumer skipped."""

    def __init__(
        self,
        capacity: int = 3,
        wake: threading.Condition | None = None,
        on_low: Callable[[], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"FrameBuffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._frames: deque[Frame] = deque()
        self._owed = False
        """A wake-up that could not be delivered (lock busy): retried at every pop."""
        self._wake = wake if wake is not None else threading.Condition()
        self._on_low = on_low
        """Called (instead of notifying ``wake``) when a pop reaches the low-water mark; it
        must not block (the pipeline's is a ``SimpleQueue.put``)."""
        self.lane: FrameLane | None = None
        """Set by the pipeline while a track plays through the passthrough lane
        (``media/lane.py``): popped once the buffered frames (made before it opened) are out."""

    def __len__(self) -> int:
        """Frames made and not yet popped (the lane's packets are not counted: they are the
        reader's until popped, and a command takes them back, see ``media/lane.py``)."""
        return len(self._frames)

    def ready(self) -> bool:
        """True when :meth:`pop` has a frame to give (a made frame or a packet of the lane)."""
        lane = self.lane
        return bool(self._frames) or (lane is not None and len(lane) > 0)

    @property
    def low_water(self) -> int:
        """The producer is woken when a pop leaves this many frames or fewer."""
        return self.capacity // 2

    def pop(self) -> Frame | None:
        """The oldest frame, or None when empty. Never blocks: safe on the event-loop thread."""
        frames = self._frames
        if not frames:
            lane = self.lane
            if lane is not None:
                return lane.pop()
            if self._owed:
                self._notify()
            return None
        try:
            frame = frames.popleft()
        except IndexError:  # cleared by another thread since the check
            return None
        if len(frames) <= self.capacity // 2:
            if self._on_low is not None:
                self._on_low()
                return frame
            self._notify()
        elif self._owed:
            self._notify()
        return frame

    def pump_feed(
        self, key: object, channel: _packet.Channel, track: int
    ) -> _packet.Feed | None:
        """A :class:`~audionode.native._packet.Feed` for the sender's native Pump while the
        next frames are the lane's packets of ``track`` (no made frame waits here), else None
        (docs/decisions/0020-native-tick.md). The Pump hands the stream back the moment this
        stops holding: a frame is made here, the lane closes, the connection is not live."""
        lane = self.lane
        if lane is None or self._frames:
            return None
        return lane.feed(key, channel, self._frames, track)

    def _notify(self) -> None:
        # Never wait for the lock: the producer may hold it; see the module docstring.
        if self._wake.acquire(blocking=False):
            try:
                self._wake.notify_all()
            finally:
                self._wake.release()
            self._owed = False
        else:
            self._owed = True

    def room(self) -> int:
        """How many frames can be put without exceeding the capacity."""
        return max(0, self.capacity - len(self._frames))

    def put(self, frame: Frame, timeout: float | None = None) -> bool:
        """Append ``frame``, first waiting for room up to ``timeout`` seconds (None: forever).

        Producer side only. Returns False (frame not added) if the buffer stayed full.
        """
        if not self.wait_for_room(timeout):
            return False
        self._frames.append(frame)
        return True

    def push(self, frame: Frame) -> None:
        """Append ``frame`` without waiting: for a producer that checked :meth:`room` and is
        the only one adding (the pipeline), so the per-frame path takes no extra lock."""
        self._frames.append(frame)

    def wait_for_room(self, timeout: float | None = None) -> bool:
        """Block the producer until a slot is free or ``timeout`` passes; True if free."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._wake:
            while len(self._frames) >= self.capacity:
                left = self.RECHECK if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(min(left, self.RECHECK))
        return True

    def clear(self) -> int:
        """Drop every buffered frame (seek, replace, stop); return how many were dropped."""
        dropped = 0
        while True:
            try:
                self._frames.popleft()
            except IndexError:
                return dropped
            dropped += 1
