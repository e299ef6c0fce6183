"""Frames between the control process and an engine worker, bounded in both directions.

A frame is a 4-byte big-endian length, then one msgpack message (``engine/messages.py``).
Commands may carry a whole in-memory track, so they are bounded by ``engine.max_message_bytes``
(the pool refuses a larger one before it is written: that track fails, the worker never sees
it); events are small and bounded by ``engine.max_event_bytes`` (the worker cuts long texts;
a worker that still sends more is broken and restarted).
"""

from __future__ import annotations

import asyncio
import struct

import msgspec

from audionode.engine import messages as msg

_LEN = struct.Struct(">I")
TEXT_LIMIT = 1024
"""Characters kept of an event's text fields (error messages, close reasons) when an event
is over its byte limit."""
_CHUNK = 1 << 16


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
