"""A loopback websocket proxy in front of the built-in voice server's gateway, for fault injection
from the test side (the voice server itself stays untouched).

The node's voice client connects to :attr:`FaultProxy.endpoint`; every websocket it opens is
relayed to the real gateway on a websocket of its own. Everything relayed is recorded with
arrival times, and a test can make the link misbehave the way Discord's does:

- :meth:`FaultProxy.close_live` closes the node's socket with any close code (4015, 4006, 4016...)
  while the server only sees a lost socket (4000, so its session stays resumable);
- :meth:`FaultProxy.abort_live` drops the TCP connection without a close frame (1006);
- :attr:`FaultProxy.drop` loses chosen server frames (heartbeat ACKs...);
- :attr:`FaultProxy.mutate` rewrites chosen server frames (a corrupted op 29 commit...).

UDP is not proxied: op 2 Ready names the server's own UDP port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

Frame = str | bytes
ABANDON = 4000
"""What the proxy tells the server when it cuts a link itself: not 1000, so resumable."""


def op_of(frame: Frame) -> int:
    """The opcode of a server frame (JSON ``op`` or the byte after a binary frame's seq)."""
    if isinstance(frame, bytes):
        return frame[2] if len(frame) > 2 else -1
    op: int = json.loads(frame).get("op", -1)
    return op


def seq_of(frame: Frame) -> int | None:
    """The ``seq`` a server frame carries (JSON ``seq`` or the binary u16 prefix), if any."""
    if isinstance(frame, bytes):
        return struct.unpack_from(">H", frame)[0] if len(frame) >= 2 else None
    seq: int | None = json.loads(frame).get("seq")
    return seq


@dataclass
class Seen:
    at: float
    link: int
    frame: Frame


@dataclass
class _Link:
    index: int
    client: web.WebSocketResponse
    upstream: aiohttp.ClientWebSocketResponse
    request: web.Request
    cut: bool = False


@dataclass
class FaultProxy:
    upstream: str
    """``ws://host:port`` of the real voice gateway."""
    http: aiohttp.ClientSession
    from_client: list[Seen] = field(default_factory=list)
    from_server: list[Seen] = field(default_factory=list)
    """Server frames that reached the client (dropped ones are in :attr:`dropped`)."""
    dropped: list[Seen] = field(default_factory=list)
    drop: Callable[[Frame], bool] = lambda frame: False
    mutate: Callable[[Frame], Frame] = lambda frame: frame
    links: list[_Link] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()

    @property
    def endpoint(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        for link in self.links:
            await link.upstream.close()
            await link.client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- what was relayed -------------------------------------------------------------------

    def client_ops(self, op: int) -> list[tuple[Seen, dict[str, Any]]]:
        """Client JSON frames with opcode ``op``, parsed."""
        out = []
        for s in self.from_client:
            if isinstance(s.frame, str) and (m := json.loads(s.frame))["op"] == op:
                out.append((s, m))
        return out

    def last_seq(self, link: int) -> int:
        """The last seq the server's frames on ``link`` carried to the client (-1 if none)."""
        seqs = [seq_of(s.frame) for s in self.from_server if s.link == link]
        return next((s for s in reversed(seqs) if s is not None), -1)

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    # --- faults -----------------------------------------------------------------------------

    @property
    def live(self) -> _Link:
        return self.links[-1]

    async def close_live(self, code: int, reason: str = "") -> None:
        """Close the client's live socket with ``code``; the server sees a lost socket."""
        link = self.live
        link.cut = True
        await link.client.close(code=code, message=reason.encode())
        await link.upstream.close(code=ABANDON)

    async def abort_live(self) -> None:
        """Drop the client's live TCP connection without a close frame (it sees 1006)."""
        link = self.live
        link.cut = True
        transport = link.request.transport
        assert transport is not None
        transport.abort()
        await link.upstream.close(code=ABANDON)

    # --- relaying ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        client = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20)
        await client.prepare(request)
        upstream = await self.http.ws_connect(f"{self.upstream}/?{request.query_string}")
        link = _Link(len(self.links), client, upstream, request)
        self.links.append(link)
        up = asyncio.create_task(self._to_server(link))
        down = asyncio.create_task(self._to_client(link))
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.gather(up, down, return_exceptions=True)
        return client

    def _seen(self, into: list[Seen], link: _Link, frame: Frame) -> None:
        into.append(Seen(time.monotonic(), link.index, frame))
        self._changed.set()

    async def _to_server(self, link: _Link) -> None:
        async for msg in link.client:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            self._seen(self.from_client, link, msg.data)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await _send(link.upstream, msg.data)
        if not link.cut:  # the client closed: pass its code on (1000 ends the session)
            await link.upstream.close(code=link.client.close_code or ABANDON)

    async def _to_client(self, link: _Link) -> None:
        while True:
            msg = await link.upstream.receive()
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            frame: Frame = msg.data
            if self.drop(frame):
                self._seen(self.dropped, link, frame)
                continue
            frame = self.mutate(frame)
            self._seen(self.from_server, link, frame)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await _send(link.client, frame)
        if not link.cut:  # the server closed (4014 on a move...): the client sees that close
            code = link.upstream.close_code or 1006
            reason = str(msg.extra or "") if msg.type is WSMsgType.CLOSE else ""
            await link.client.close(code=code, message=reason.encode())


async def _send(ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse, frame: Frame) -> None:
    if isinstance(frame, str):
        await ws.send_str(frame)
    else:
        await ws.send_bytes(frame)
