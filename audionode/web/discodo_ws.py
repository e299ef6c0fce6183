"""``/ws``: the Discodo control websocket, a thin Sanic driver over ``protocol/discodo_session.py``.

The protocol decisions live in the sans-I/O session; this module moves frames between it, the
socket and :class:`~audionode.service.NodeService`. Outbound frames go through a queue drained
by one writer task, so emitting an event never waits on the socket; the queue is bounded in
bytes (``control.max_outbound_bytes``): a peer that stops reading is closed with 4008 and its
session keeps the events it never got.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from sanic import Blueprint, Request
from sanic.server.websockets.impl import WebsocketImplProtocol
from websockets.exceptions import ConnectionClosed

from audionode import __version__
from audionode.control.events import CloseReason, ControlEvent
from audionode.errors import AudionodeError, for_peer
from audionode.protocol import discodo_map as m
from audionode.protocol.discodo import CloseCode
from audionode.protocol.discodo_session import Close, DiscodoSession, Identify, Item
from audionode.protocol.discodo_session import Request as OpRequest
from audionode.service import NodeService
from audionode.web.auth import check_authorization
from audionode.web.context import service_of

log = logging.getLogger(__name__)
bp = Blueprint("discodo_ws")


class WsSink:
    """The EventSink of one socket: a byte-bounded queue and the writer task that drains it."""

    def __init__(self, ws: WebsocketImplProtocol, conn: DiscodoSession, max_bytes: int) -> None:
        self._ws = ws
        self._conn = conn
        self._max = max_bytes
        self._queue: deque[tuple[str, ControlEvent | None] | Close] = deque()
        self._bytes = 0
        self._wake = asyncio.Event()
        self._inflight: ControlEvent | None = None
        self.closed = False

    def deliver(self, event: ControlEvent) -> bool:
        if self.closed:
            return False
        self._put(self._conn.event(event), event)
        return True

    def flush(self) -> None:
        """Queue the session's replies (after each call into it)."""
        for text in self._conn.data_to_send():
            self._put(text, None)

    def close(self, reason: CloseReason) -> None:
        self.close_with(Close(m.close_code(reason), reason.value))

    def close_with(self, close: Close) -> None:
        if not self.closed:
            self.closed = True
            self._queue.append(close)
            self._wake.set()

    def _put(self, text: str, event: ControlEvent | None) -> None:
        if self.closed:
            return
        self._queue.append((text, event))
        self._bytes += len(text)
        self._wake.set()
        if self._bytes > self._max:  # the peer is not reading: stop, keep what it missed
            self.closed = True
            log.warning("control socket not reading (%d bytes queued): closing 4008", self._bytes)
            self._ws.fail_connection(CloseCode.NOT_READING, "outbound limit reached: not reading")

    async def run_writer(self) -> None:
        """Send queued frames in order; a queued close ends the socket after them."""
        with contextlib.suppress(ConnectionClosed, asyncio.CancelledError):
            while True:
                while not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                item = self._queue.popleft()
                if isinstance(item, Close):
                    await self._ws.close(item.code, item.reason)
                    return
                text, self._inflight = item
                await self._ws.send(text)
                self._bytes -= len(text)
                self._inflight = None
        self.closed = True

    def unsent(self) -> list[ControlEvent]:
        """Events queued but never written, oldest first (kept by the session)."""
        events = [self._inflight] if self._inflight is not None else []
        events += [i[1] for i in self._queue if not isinstance(i, Close) and i[1] is not None]
        self._queue.clear()
        return events


class ControlConnection:
    """One bot socket: authentication, then frames through the session, one at a time."""

    def __init__(self, service: NodeService, ws: WebsocketImplProtocol) -> None:
        cfg = service.config
        self.service = service
        self.ws = ws
        self.conn = DiscodoSession(
            cfg.heartbeat_interval, __version__, time.monotonic(), cfg.control.max_json_depth
        )
        self.sink = WsSink(ws, self.conn, cfg.control.max_outbound_bytes)

    async def run(self, authorization: str | None) -> None:
        try:
            check_authorization(authorization, self.service.config.password)
        except AudionodeError as e:
            close = self.conn.forbid(e.message)
            for text in self.conn.data_to_send():
                await self.ws.send(text)
            await self.ws.close(close.code, close.reason)
            return
        writer = asyncio.create_task(self.sink.run_writer())
        self.conn.hello()
        self.sink.flush()
        try:
            await self._read_loop()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer), timeout=5)
        finally:
            writer.cancel()
            if self.conn.ref is not None:
                self.service.disconnect(self.conn.ref, self.sink, self.sink.unsent())

    async def _read_loop(self) -> None:
        while not self.sink.closed:
            remaining = self.conn.deadline - time.monotonic()
            try:
                data = await self.ws.recv(timeout=max(remaining, 0.0))
            except ConnectionClosed:
                return
            if data is None:
                close = self.conn.expire(time.monotonic())
                if close is not None:
                    self.sink.close_with(close)
                continue
            try:
                items = self.conn.receive(data, time.monotonic())
            except Exception as e:  # our bug: answer it like any error, keep the socket
                self.conn.fail(None, for_peer(e, "control frame"), None)
                items = []
            for item in items:
                await self._handle(item)
            self.sink.flush()

    async def _handle(self, item: Item) -> None:
        if isinstance(item, Close):
            self.sink.close_with(item)
        elif isinstance(item, Identify):
            await self._identify(item)
        else:
            await self._request(item)

    async def _identify(self, item: Identify) -> None:
        try:
            result, kept = await self.service.identify(item.ref, self.sink)
        except Exception as e:
            self.conn.fail("IDENTIFY", for_peer(e, "IDENTIFY"), None)
            return
        self.conn.identified(result)
        self.sink.flush()
        for event in kept:
            self.sink.deliver(event)

    async def _request(self, item: OpRequest) -> None:
        try:
            result = await self.service.execute(item.key, item.command)
        except Exception as e:
            self.conn.fail(item.op, for_peer(e, f"control op {item.op}"), item.guild)
        else:
            self.conn.reply(item, result)


async def control_socket(request: Request, ws: WebsocketImplProtocol) -> None:
    await ControlConnection(service_of(request), ws).run(request.headers.get("authorization"))


bp.add_websocket_route(control_socket, "/ws")
