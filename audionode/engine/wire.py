"""Frames between the control process and an engine worker, bounded in both directions.

A frame is a 4-byte big-endian length, then one msgpack message (``engine/messages.py``).
A worker writes its events through an :class:`EventWriter`, which holds position reports
briefly so that many players' reports share one write (and one wake-up of the control
process); the frames themselves are the same one-message frames.
Commands may carry a whole in-memory track, so they are bounded by ``engine.max_message_bytes``
(the pool refuses a larger one before it is written: that track fails, the worker never sees
it); events are small and bounded by ``engine.max_event_bytes`` (the worker cuts long texts;
a worker that still sends more is broken and restarted).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable

import msgspec

from audionode.engine import messages as msg

_LEN = struct.Struct(">I")
TEXT_LIMIT = 1024
"""Characters kept of an event's text fields (error messages, close reasons) when an event
is over its byte limit."""
_CHUNK = 1 << 16
POSITION_HOLD = 0.25
"""Seconds a worker holds a position report before writing it. With N players each reporting
once a second, their reports otherwise reach the control process one at a time, N writes and
N wake-ups a second on each side; held, they go at most 1/POSITION_HOLD times a second (and
any other event takes the held ones along). A wake-up is dear on a virtual machine (about
50 µs of CPU for the bare kernel round trip here; docs/PERFORMANCE.md, "Fewer wake-ups"):
0.05 s let 20 a second through on each side. The report says how long it was held
(``TrackPosition.held_ms``), so the position's time stays exact; only the event reaches the
bot up to this much later (it is "about every second", docs/API.md)."""

log = logging.getLogger(__name__)


class FrameTooLarge(Exception):
    """The length prefix announced more than the reader accepts; nothing of the payload was
    read yet (:func:`skip` drops it)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"frame of {size} bytes exceeds the limit of {limit}")
        self.size = size


def frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader, limit: int) -> bytes:
    """The next frame's payload; :class:`FrameTooLarge` (payload unread) when over ``limit``."""
    (size,) = _LEN.unpack(await reader.readexactly(_LEN.size))
    if size > limit:
        raise FrameTooLarge(size, limit)
    return await reader.readexactly(size)


async def skip(reader: asyncio.StreamReader, size: int) -> None:
    """Read and drop ``size`` bytes, a chunk at a time (never holding them all)."""
    while size:
        size -= len(await reader.readexactly(min(size, _CHUNK)))


def _cut(event: msg.Event) -> msg.Event:
    """``event`` with every text field cut to :data:`TEXT_LIMIT` characters and, for a stats
    report, without its per-player counters (the totals stay)."""
    changes: dict[str, object] = {}
    for name in event.__struct_fields__:
        value = getattr(event, name)
        if isinstance(value, str) and len(value) > TEXT_LIMIT:
            changes[name] = value[:TEXT_LIMIT] + "…"
    if isinstance(event, msg.EngineStats):
        changes["players"] = {}
    return msgspec.structs.replace(event, **changes)


def event_frame(event: msg.Event, limit: int) -> bytes | None:
    """The frame carrying ``event``, cut down to fit ``limit`` if needed; None if it cannot."""
    data = frame(msg.encoder.encode(event))
    if len(data) - _LEN.size <= limit:
        return data
    data = frame(msg.encoder.encode(_cut(event)))
    return data if len(data) - _LEN.size <= limit else None


class EventWriter:
    """A worker's events to the control process, in frames bounded by ``limit``.

    A position report is held (up to ``hold`` seconds) and written together with whatever is
    written next; any other event is written at once, after the reports held before it, so
    the order of events is kept. ``write`` takes bytes; ``closing`` says the control process
    hung up (nothing is written then)."""

    def __init__(
        self,
        write: Callable[[bytes], None],
        closing: Callable[[], bool],
        limit: int,
        hold: float = POSITION_HOLD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self._closing = closing
        self._limit = limit
        self._hold = hold
        self._clock = clock
        self._held: list[tuple[msg.TrackPosition, float]] = []
        self._timer: asyncio.TimerHandle | None = None
        self.writes = 0
        """Writes made (each carries one or more frames)."""

    def emit(self, event: msg.Event) -> None:
        """Write ``event`` now, or hold it if it is a position report."""
        if self._closing():
            return
        if isinstance(event, msg.TrackPosition) and self._hold > 0:
            self._held.append((event, self._clock()))
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self._hold, self.flush)
            return
        self.flush(event)

    def flush(self, event: msg.Event | None = None) -> None:
        """Write the held reports, then ``event`` if given."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        frames: list[bytes] = []
        if self._held:
            now = self._clock()
            for held, since in self._held:
                waited = round((now - since) * 1000)
                aged = msgspec.structs.replace(held, held_ms=held.held_ms + waited)
                self._add(frames, aged)
            self._held.clear()
        if event is not None:
            self._add(frames, event)
        if frames and not self._closing():
            self._write(b"".join(frames))
            self.writes += 1

    def _add(self, frames: list[bytes], event: msg.Event) -> None:
        data = event_frame(event, self._limit)
        if data is None:
            log.error("dropped a %s event over engine.max_event_bytes", type(event).__name__)
        else:
            frames.append(data)
