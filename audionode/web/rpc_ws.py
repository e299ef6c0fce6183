"""``/rpc``: the seed-003 RPC front door, a thin Sanic driver over ``protocol/rpc_session.py``.

Authenticated by the seed's handshake (HELLO_ACK with the password, checked by ``web/auth.py``)
rather than a header. Requests run one at a time in arrival order; replies go through an
:class:`~audionode.web.outbox.Outbox` (a peer that stops reading is closed with 4008).
"""

from __future__ import annotations

import time

from sanic import Blueprint, Request
from sanic.server.websockets.impl import WebsocketImplProtocol

from audionode.control.events import CloseReason, ControlEvent
from audionode.errors import for_peer
from audionode.protocol.rpc import CloseCode
from audionode.protocol.rpc_session import Close, Identify, Item, RpcSession
from audionode.protocol.rpc_session import Request as Call
from audionode.service import NodeService
from audionode.web.auth import password_matches
from audionode.web.context import service_of
from audionode.web.driver import serve
from audionode.web.outbox import Outbox

bp = Blueprint("rpc_ws")


class RpcSink:
    """The EventSink of an RPC connection that identified: the seed has no server push, so
    session events are dropped (counted); bots poll ``getState``/``getQueue``."""

    def __init__(self, outbox: Outbox[ControlEvent]) -> None:
        self.outbox = outbox
        self.dropped = 0

    def deliver(self, event: ControlEvent) -> bool:
        self.dropped += 1
        return not self.outbox.closed

    def close(self, reason: CloseReason) -> None:
        code = CloseCode.SESSION_TAKEN_OVER if reason is CloseReason.TAKEN_OVER else 1001
        self.outbox.close(code, reason.value)


class RpcConnection:
    def __init__(self, service: NodeService, ws: WebsocketImplProtocol) -> None:
        cfg = service.config
        self.service = service
        self.ws = ws
        self.conn = RpcSession(
            round(cfg.heartbeat_interval * 1000),
            lambda supplied: password_matches(supplied, cfg.password),
            time.monotonic(),
            cfg.control.max_json_depth,
        )
        self.outbox: Outbox[ControlEvent] = Outbox(
            ws, cfg.control.max_outbound_bytes, CloseCode.NOT_READING
        )
        self.sink = RpcSink(self.outbox)

    def flush(self) -> None:
        for text in self.conn.data_to_send():
            self.outbox.put(text)

    async def run(self) -> None:
        try:
            await serve(
                self.ws, self.conn, self.outbox, self.conn.receive, self._handle, self.flush
            )
        finally:
            if self.conn.ref is not None:
                self.service.disconnect(self.conn.ref, self.sink, [])

    async def _handle(self, item: Item) -> None:
        if isinstance(item, Close):
            self.flush()
            self.outbox.close(item.code, item.reason)
        elif isinstance(item, Identify):
            await self._identify(item)
        else:
            await self._call(item)

    async def _identify(self, item: Identify) -> None:
        try:
            result, _ = await self.service.identify(item.ref, self.sink)
        except Exception as e:
            self.conn.fail(item, for_peer(e, "RPC IDENTIFY"))
        else:
            if self.conn.ref is not None and self.conn.ref != item.ref:
                self.service.disconnect(self.conn.ref, self.sink, [])
            self.conn.identified(item, result)

    async def _call(self, item: Call) -> None:
        try:
            result = await self.service.execute(item.key, item.command)
        except Exception as e:
            self.conn.fail(item, for_peer(e, f"RPC {item.name}"))
        else:
            self.conn.reply(item, result)


async def rpc_socket(request: Request, ws: WebsocketImplProtocol) -> None:
    await RpcConnection(service_of(request), ws).run()


bp.add_websocket_route(rpc_socket, "/rpc")
