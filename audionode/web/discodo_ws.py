"""``/ws``: the Discodo control websocket, a thin Sanic driver over ``protocol/discodo_session.py``.

The protocol decisions live in the sans-I/O session; this module moves frames between it, the
socket and :class:`~audionode.service.NodeService`. Outbound frames go through an
:class:`~audionode.web.outbox.Outbox` (a peer that stops reading is closed with 4008 and its
session keeps the events it never got).
"""

from __future__ import annotations

import logging
import time

from sanic import Blueprint, Request
from sanic.server.websockets.impl import WebsocketImplProtocol

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
from audionode.web.driver import serve
from audionode.web.outbox import Outbox

log = logging.getLogger(__name__)
bp = Blueprint("discodo_ws")


class WsSink:
    """The EventSink of one socket: session events and replies through its outbox."""

    def __init__(self, ws: WebsocketImplProtocol, conn: DiscodoSession, max_bytes: int) -> None:
        self._conn = conn
        self.outbox: Outbox[ControlEvent] = Outbox(ws, max_bytes, CloseCode.NOT_READING)

    @property
    def closed(self) -> bool:
        return self.outbox.closed

    def deliver(self, event: ControlEvent) -> bool:
        return self.outbox.put(self._conn.event(event), event)

    def flush(self) -> None:
        """Queue the session's replies (after each call into it)."""
        for text in self._conn.data_to_send():
            self.outbox.put(text)

    def close(self, reason: CloseReason) -> None:
        self.outbox.close(m.close_code(reason), reason.value)

    def close_with(self, close: Close) -> None:
        self.outbox.close(close.code, close.reason)

    def unsent(self) -> list[ControlEvent]:
        """Events queued but never written, oldest first (kept by the session)."""
        return self.outbox.unsent()


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
        self.conn.hello()
        try:
            await serve(
                self.ws, self.conn, self.sink.outbox, self._receive, self._handle, self.sink.flush
            )
        finally:
            if self.conn.ref is not None:
                self.service.disconnect(self.conn.ref, self.sink, self.sink.unsent())

    def _receive(self, data: str | bytes, now: float) -> list[Item]:
        try:
            return self.conn.receive(data, now)
        except Exception as e:  # our bug: answer it like any error, keep the socket
            self.conn.fail(None, for_peer(e, "control frame"), None)
            return []

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
