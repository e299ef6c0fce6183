"""One voice websocket with ordered, synchronous sends (used by :mod:`.voice_conn`)."""

from __future__ import annotations

import asyncio
from typing import Final

import aiohttp

ABANDON_CODE: Final = 4000
"""Close code for a socket we drop in order to resume: anything but 1000 keeps the session."""


class GatewaySocket:
    """One websocket of a voice session: an outbox drained by a writer task keeps every send in
    order (``send`` is synchronous, so the 20 ms sender can call it), plus the socket's heartbeat
    task and why/how it was closed by this side."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.outbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.writer = asyncio.create_task(self._write())
        self.heartbeat: asyncio.Task[None] | None = None
        self.unacked = 0
        self.abandoned: str | None = None
        """Why this side dropped the socket to resume or reconnect (reported as a lost socket)."""
        self.final: tuple[int, str] | None = None
        """The close frame to send when the connection is being closed or replaced."""

    def send(self, message: str | bytes) -> None:
        """Queue a text (``str``) or binary (``bytes``) frame; never blocks. Frames queued after
        the socket died are dropped with it (op 5 is re-sent after a resume)."""
        self.outbox.put_nowait(message)

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

    async def abandon(self, reason: str) -> None:
        """Drop this socket but keep the session: any code but 1000 says "coming back"."""
        self.abandoned = reason
        await self.ws.close(code=ABANDON_CODE, message=reason.encode()[:120])

    async def dispose(self) -> None:
        """Stop the tasks and close the socket with :attr:`final` (default: abandon)."""
        for task in (self.writer, self.heartbeat):
            if task is not None:
                task.cancel()
        code, reason = self.final or (ABANDON_CODE, "")
        if not self.ws.closed:
            await self.ws.close(code=code, message=reason.encode()[:120])
