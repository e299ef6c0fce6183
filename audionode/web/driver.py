"""The loop both websocket front doors share: frames into a sans-I/O session, items out.

A session (``protocol/discodo_session.py``, ``protocol/rpc_session.py``) tells when the socket
falls silent for too long (``deadline``/``expire``) and turns each frame into items; the front's
handler runs each item (calling the service) and the session's replies are flushed after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from sanic.server.websockets.impl import WebsocketImplProtocol
from websockets.exceptions import ConnectionClosed

from audionode.web.outbox import Outbox


class Closing(Protocol):
    code: int
    reason: str


class Session(Protocol):
    @property
    def deadline(self) -> float: ...

    def expire(self, now: float) -> Any: ...


async def serve(
    ws: WebsocketImplProtocol,
    session: Session,
    outbox: Outbox[Any],
    receive: Callable[[str | bytes, float], list[Any]],
    handle: Callable[[Any], Awaitable[None]],
    flush: Callable[[], None],
) -> None:
    """Run the socket until it or the outbox closes; then give the writer 5 s to finish."""
    writer = asyncio.create_task(outbox.run())
    flush()
    try:
        while not outbox.closed:
            remaining = session.deadline - time.monotonic()
            try:
                data = await ws.recv(timeout=max(remaining, 0.0))
            except ConnectionClosed:
                break
            if data is None:
                close: Closing | None = session.expire(time.monotonic())
                if close is not None:
                    outbox.close(close.code, close.reason)
                continue
            for item in receive(data, time.monotonic()):
                await handle(item)
            flush()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(writer), timeout=5)
    finally:
        writer.cancel()
