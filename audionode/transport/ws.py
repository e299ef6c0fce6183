"""One voice websocket with ordered, synchronous sends (used by :mod:`.voice_conn`)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

import aiohttp

from audionode.voice.client import ABANDON_CODE

_REASON_MAX: Final = 120
"""Bytes of a close reason we send (a close frame holds at most 123)."""


class GatewaySocket:
    """One websocket of a voice session: an outbox drained by a writer task keeps every send in
    order (``send`` is synchronous, so the 20 ms sender can call it), and how this side wants
    it closed."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.outbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.writer = asyncio.create_task(self._write())
        self._closer: asyncio.Task[None] | None = None
        self.final: tuple[int, str] = (ABANDON_CODE, "")
        """The close frame to send when this side closes the socket."""

    def send(self, message: str | bytes) -> None:
        """Queue a text (``str``) or binary (``bytes``) frame; never blocks. Frames queued after
        the socket died are dropped with it (op 5 is re-sent after a resume)."""
        self.outbox.put_nowait(message)

    def close_soon(self, code: int, reason: str) -> None:
        """Close with ``code`` once what is queued has been written; the read loop then ends."""
        self.final = (code, reason)
        if self._closer is None:
            self._closer = asyncio.create_task(self._close_after_writes())

    async def _write(self) -> None:
        while True:
            message = await self.outbox.get()
            try:
                if isinstance(message, str):
                    await self.ws.send_str(message)
                else:
                    await self.ws.send_bytes(message)
            except (aiohttp.ClientError, ConnectionError):
                return  # the read loop sees the close and reports it
            finally:
                self.outbox.task_done()

    async def _close_after_writes(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.outbox.join(), 1.0)
        await self._close()

    async def _close(self) -> None:
        if not self.ws.closed:
            code, reason = self.final
            await self.ws.close(code=code, message=reason.encode()[:_REASON_MAX])

    async def dispose(self) -> None:
        """Stop the tasks and close the socket with :attr:`final` (default: abandon, 4000)."""
        for task in (self.writer, self._closer):
            if task is not None:
                task.cancel()
        await self._close()
