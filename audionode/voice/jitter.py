"""A jitter buffer for one received RTP stream, sans-I/O: packets in as they arrive, one slot out
per 20 ms playout tick (docs/discord-voice.md §1.9: seq +1 per 20 ms frame, u16, wraps).

Packets arrive late, early, twice or never. The buffer reorders them by sequence number, holds
:attr:`JitterBuffer.delay` frames before a talk spurt starts playing (the room arrivals need to
land in order), and then hands out one slot per tick: :class:`Play` for the frame that is due,
:class:`Conceal` when it is missing but later ones are here (the decoder conceals it: with the
next packet's in-band FEC when that packet is :attr:`Conceal.next_opus`, else by PLC), or
``None`` when nothing is buffered (the speaker paused; after :attr:`JitterBuffer.idle_after`
empty ticks the spurt is over and the next packet starts a new one). The delay is bounded: when
more than :attr:`JitterBuffer.max_delay` frames pile up (a stall, then a burst), the oldest are
dropped so that playout catches up. Packets older than what was already played are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from audionode.voice.rtp import seq_delta

DELAY: Final = 3
"""Frames held before a talk spurt plays (60 ms): covers loopback-to-continental jitter."""
MAX_DELAY: Final = 10
"""Frames buffered at most (200 ms); beyond it the oldest are dropped to catch up."""
IDLE_AFTER: Final = 5
"""Empty ticks after which a talk spurt is over (the next packet buffers afresh)."""


@dataclass(frozen=True, slots=True)
class Play:
    """The frame due this tick."""

    opus: bytes
    sequence: int


@dataclass(frozen=True, slots=True)
class Conceal:
    """The frame due this tick never came (yet); ``next_opus`` is the following one when it is
    already here (its in-band FEC can rebuild the missing one)."""

    sequence: int
    next_opus: bytes | None


@dataclass(slots=True)
class JitterStats:
    received: int = 0
    played: int = 0
    concealed: int = 0
    late: int = 0
    """Packets that came after their slot was played or concealed: dropped."""
    duplicates: int = 0
    dropped: int = 0
    """Packets dropped to keep the delay bounded."""
    spurts: int = 0
    """Talk spurts started (buffering → playing)."""


class JitterBuffer:
    """One SSRC's playout queue. Call :meth:`push` per packet and :meth:`pop` once per 20 ms
    tick, from one thread."""

    def __init__(
        self, *, delay: int = DELAY, max_delay: int = MAX_DELAY, idle_after: int = IDLE_AFTER
    ) -> None:
        if not 1 <= delay <= max_delay:
            raise ValueError(f"need 1 <= delay <= max_delay, got {delay} and {max_delay}")
        self.delay, self.max_delay, self.idle_after = delay, max_delay, idle_after
        self.stats = JitterStats()
        self.playing = False
        self._frames: dict[int, bytes] = {}
        self._newest: int | None = None
        """Extended (unwrapped) sequence number of the newest packet seen."""
        self._next = 0
        """Extended sequence number due at the next tick (while playing)."""
        self._floor: int | None = None
        """Everything at or below this was played or concealed: later copies are late."""
        self._idle = 0

    @property
    def depth(self) -> int:
        """Frames buffered now."""
        return len(self._frames)

    def push(self, sequence: int, opus: bytes) -> None:
        """A packet arrived (``sequence`` is its 16-bit RTP sequence number)."""
        ext = self._extend(sequence)
        if self._floor is not None and ext <= self._floor:
            self.stats.late += 1
            return
        if ext in self._frames:
            self.stats.duplicates += 1
            return
        self._frames[ext] = opus
        self.stats.received += 1
        while len(self._frames) > self.max_delay:
            self._drop_oldest()

    def pop(self) -> Play | Conceal | None:
        """This tick's slot (see the module docstring)."""
        if not self.playing:
            if len(self._frames) < self.delay:
                return None
            self.playing, self._idle = True, 0
            self._next = min(self._frames)
            self.stats.spurts += 1
        if not self._frames:
            self._idle += 1
            if self._idle >= self.idle_after:
                self.playing = False
            return None
        self._idle = 0
        seq = self._next
        self._next += 1
        self._floor = seq
        opus = self._frames.pop(seq, None)
        if opus is not None:
            self.stats.played += 1
            return Play(opus, seq & 0xFFFF)
        self.stats.concealed += 1
        return Conceal(seq & 0xFFFF, self._frames.get(self._next))

    def _extend(self, sequence: int) -> int:
        if self._newest is None:
            self._newest = sequence
            return sequence
        ext = self._newest + seq_delta(sequence, self._newest & 0xFFFF)
        self._newest = max(self._newest, ext)
        return ext

    def _drop_oldest(self) -> None:
        oldest = min(self._frames)
        del self._frames[oldest]
        self.stats.dropped += 1
        self._floor = oldest if self._floor is None else max(self._floor, oldest)
        if self.playing and self._next <= oldest:
            self._next = oldest + 1
