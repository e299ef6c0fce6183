"""One websocket's outbound frames: a byte-bounded queue and the writer task that drains it.

Producers never wait on the socket (events and replies are queued synchronously); one writer
sends them in order. The queue is bounded in bytes (``control.max_outbound_bytes``): a peer
that stops reading is failed with the front's "not reading" close code (4008 on every front),
keeping memory bounded whatever it does, and the frames it never got are handed back by
:meth:`Outbox.unsent`. The bound counts the bytes waiting *behind* the oldest frame (the one
being written, or next to be): one reply bigger than the bound (a long queue, a big context)
goes to a peer that reads instead of closing it. Frames queued together are written to the
socket together (:data:`BATCH_BYTES` at most), each still its own websocket message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

from sanic.server.websockets.impl import WebsocketImplProtocol
from websockets.exceptions import ConnectionClosed
from websockets.protocol import OPEN

log = logging.getLogger(__name__)

T = TypeVar("T")

BATCH_BYTES = 1 << 16
"""Bytes of queued frames written to the socket at once at most (frames queued together, as
the position reports of many players are, share one write)."""


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


class Outbox(Generic[T]):
    """Frames with an optional tag each (``unsent`` returns the tags of frames never written)."""

    def __init__(self, ws: WebsocketImplProtocol, max_bytes: int, not_reading: int) -> None:
        self._ws = ws
        self._max = max_bytes
        self._not_reading = not_reading
        self._queue: deque[tuple[str, T | None] | _Close] = deque()
        self._bytes = 0
        self._wake = asyncio.Event()
        self._inflight: list[T] = []
        self._inflight_bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self.closed = False

    def put(self, text: str, tag: T | None = None) -> bool:
        """Queue a frame; False when the outbox is closed (nothing queued)."""
        if self.closed:
            return False
        self._queue.append((text, tag))
        self._bytes += len(text)
        self._wake.set()
        if self._bytes - self._oldest() > self._max:  # not reading: stop, keep what it missed
            self.closed = True
            log.warning("websocket peer not reading (%d bytes queued): closing", self._bytes)
            self._ws.fail_connection(self._not_reading, "outbound limit reached: not reading")
            if self._writer is not None:  # it waits on the peer that does not read: stop it,
                self._writer.cancel()  # so the session detaches now, not after the writer's 5 s
        return True

    def _oldest(self) -> int:
        """Bytes of the frame being written, else of the next one to be."""
        if self._inflight_bytes:
            return self._inflight_bytes
        head = self._queue[0] if self._queue else None
        return len(head[0]) if isinstance(head, tuple) else 0

    def close(self, code: int, reason: str) -> None:
        """Close after the frames already queued."""
        if not self.closed:
            self.closed = True
            self._queue.append(_Close(code, reason))
            self._wake.set()

    async def run(self) -> None:
        """The writer task: send queued frames in order; a queued close ends the socket."""
        self._writer = asyncio.current_task()
        with contextlib.suppress(ConnectionClosed, asyncio.CancelledError):
            while True:
                while not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                item = self._queue.popleft()
                if isinstance(item, _Close):
                    await self._ws.close(item.code, item.reason)
                    return
                batch = self._batch(item)
                self._inflight = [tag for _, tag in batch if tag is not None]
                self._inflight_bytes = sum(len(text) for text, _ in batch)
                if len(batch) == 1:
                    await self._ws.send(batch[0][0])
                else:
                    await self._send_many([text for text, _ in batch])
                self._bytes -= self._inflight_bytes
                self._inflight, self._inflight_bytes = [], 0
        self.closed = True

    def _batch(self, first: tuple[str, T | None]) -> list[tuple[str, T | None]]:
        """``first`` and the frames queued right behind it, up to :data:`BATCH_BYTES`."""
        batch, size = [first], len(first[0])
        queue = self._queue
        while queue and isinstance(head := queue[0], tuple) and size + len(head[0]) <= BATCH_BYTES:
            batch.append(head)
            size += len(head[0])
            queue.popleft()
        return batch

    async def _send_many(self, texts: list[str]) -> None:
        """Send ``texts`` as one text message each, in a single write to the socket. (Sanic's
        ``send`` writes each message on its own and dispatches a signal per write: with a
        few hundred players each reporting its position every second, that was over a third
        of the control process's CPU, docs/PERFORMANCE.md.)"""
        ws = self._ws
        async with ws.conn_mutex:
            fut = ws.data_finished_fut
            if ws.ws_proto.state is OPEN and fut is not None and not fut.done():
                for text in texts:
                    ws.ws_proto.send_text(text.encode())
                chunks = ws.ws_proto.data_to_send()
                # an empty chunk is the end of the stream: sanic's send_data handles it
                data = [b"".join(chunks)] if all(chunks) else chunks
                await ws.send_data(data)  # type: ignore[no-untyped-call]  # sanic: untyped
                return
        for text in texts:  # closing: one at a time, failing as sanic's send does
            await ws.send(text)

    def unsent(self) -> list[T]:
        """Tags of frames queued but never written, oldest first."""
        tags = list(self._inflight)
        tags += [i[1] for i in self._queue if not isinstance(i, _Close) and i[1] is not None]
        self._queue.clear()
        return tags
