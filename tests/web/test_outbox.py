"""The outbox on a real Sanic websocket: frames queued together are written to the socket
together (one write, counted by Sanic's own per-write signal) and still arrive as one message
each, in order; a lone frame goes as before."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from sanic import Request, Sanic
from sanic.server.websockets.impl import WebsocketImplProtocol

from audionode.web.outbox import BATCH_BYTES, Outbox

_names = itertools.count()

Script = Callable[[Outbox[int]], Any]


@asynccontextmanager
async def served(script: Script) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A Sanic app whose one websocket route runs ``script`` on an outbox; yields its URL and
    the data of every write Sanic made (its ``http.lifecycle.send`` signal, one per write)."""
    app: Sanic = Sanic(f"outbox_test_{next(_names)}", configure_logging=False)  # type: ignore[type-arg]
    app.config.TOUCHUP = False  # as the node's app (web/app.py)
    writes: list[bytes] = []

    @app.signal("http.lifecycle.send")
    async def sent(data: bytes) -> None:
        writes.append(data)

    @app.websocket("/ws")
    async def ws(request: Request, sock: WebsocketImplProtocol) -> None:
        outbox: Outbox[int] = Outbox(sock, 1 << 20, 4008)
        runner = asyncio.create_task(outbox.run())
        await script(outbox)
        outbox.close(1000, "done")
        await runner

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server: Any = await app.create_server(sock=listener, return_asyncio_server=True)
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}/ws", writes
    finally:
        await server.before_stop()
        server.close()
        await server.wait_closed()
        await server.after_stop()
        listener.close()


async def messages(url: str) -> list[str]:
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        return [m.data async for m in ws if m.type == aiohttp.WSMsgType.TEXT]


async def test_frames_queued_together_go_in_one_write_as_separate_messages() -> None:
    texts = [f'{{"op": "PLAYER_UPDATE", "n": {i}}}' for i in range(50)]

    async def script(outbox: Outbox[int]) -> None:
        await asyncio.sleep(0.05)  # past the handshake's writes
        for i, text in enumerate(texts):
            outbox.put(text, i)  # synchronously, as a batch of engine events is handled
        await asyncio.sleep(0.1)

    async with served(script) as (url, writes):
        got = await messages(url)
        assert got == texts
        carrying = [w for w in writes if b'"PLAYER_UPDATE"' in w]
        assert len(carrying) == 1 and carrying[0].count(b'"PLAYER_UPDATE"') == 50


async def test_frames_queued_apart_each_get_their_write() -> None:
    async def script(outbox: Outbox[int]) -> None:
        for i in range(3):
            outbox.put(f"alone {i}", i)
            await asyncio.sleep(0.02)

    async with served(script) as (url, writes):
        assert await messages(url) == ["alone 0", "alone 1", "alone 2"]
        assert len([w for w in writes if b"alone" in w]) == 3


async def test_a_batch_stops_at_batch_bytes() -> None:
    big = "x" * (BATCH_BYTES // 4)
    texts = [f"{i}{big}" for i in range(10)]

    async def script(outbox: Outbox[int]) -> None:
        await asyncio.sleep(0.05)
        for i, text in enumerate(texts):
            outbox.put(text, i)
        await asyncio.sleep(0.1)

    async with served(script) as (url, writes):
        assert await messages(url) == texts
        carrying = [w for w in writes if big.encode()[:100] in w]
        assert all(len(w) <= BATCH_BYTES + 10 * 16 for w in carrying)
        assert 3 <= len(carrying) <= 5  # 10 frames of a quarter: about 4 writes, not 10


async def test_unsent_names_every_frame_of_a_batch_that_was_not_written() -> None:
    outbox: Outbox[int] = Outbox(None, 1 << 20, 4008)  # type: ignore[arg-type]  # never run
    for i in range(3):
        outbox.put(f"frame {i}", i)
    first = outbox._queue.popleft()
    assert isinstance(first, tuple)
    batch = outbox._batch(first)
    outbox._inflight = [tag for _, tag in batch if tag is not None]
    assert outbox.unsent() == [0, 1, 2]
