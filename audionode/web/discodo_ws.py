"""``/ws``: the Discodo-style control websocket (seed 002), a thin driver over NodeService.

Frames are handled one at a time in arrival order (Discodo ran each op as its own task, so
replies could overtake each other). Outbound frames go through a queue drained by one writer
task, so emitting an event never waits on the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sanic import Blueprint, Request
from sanic.server.websockets.impl import WebsocketImplProtocol
from websockets.exceptions import ConnectionClosed

from audionode import __version__
from audionode.errors import AudionodeError, NotIdentified
from audionode.protocol import discodo as proto
from audionode.protocol.discodo import CloseCode, Op
from audionode.service import NodeService
from audionode.session import Session
from audionode.web.auth import check_authorization
from audionode.web.context import service_of

log = logging.getLogger(__name__)
bp = Blueprint("discodo_ws")

_GRACE = 1.0
"""Seconds beyond 2 x heartbeat_interval before a silent socket is closed with 4003."""


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


class WsSink:
    """The EventSink of one socket: a queue and the writer task that drains it."""

    def __init__(self, ws: WebsocketImplProtocol) -> None:
        self._ws = ws
        self._queue: asyncio.Queue[tuple[str, Any] | _Close] = asyncio.Queue()
        self._inflight: tuple[str, Any] | None = None
        self.closed = False

    def send(self, op: str, d: Any) -> bool:
        if self.closed:
            return False
        self._queue.put_nowait((op, d))
        return True

    def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(_Close(code, reason))

    async def run_writer(self) -> None:
        """Send queued frames in order; a queued close ends the socket after them."""
        with contextlib.suppress(ConnectionClosed, asyncio.CancelledError):
            while True:
                item = await self._queue.get()
                if isinstance(item, _Close):
                    await self._ws.close(item.code, item.reason)
                    return
                self._inflight = item
                await self._ws.send(proto.encode(*item))
                self._inflight = None
        self.closed = True

    def unsent(self) -> list[tuple[str, Any]]:
        """Frames queued but never written, oldest first (kept by the session)."""
        items: list[tuple[str, Any]] = [self._inflight] if self._inflight else []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not isinstance(item, _Close):
                items.append(item)
        return items


class ControlConnection:
    """One bot socket: authentication, heartbeat watchdog and op dispatch."""

    def __init__(self, service: NodeService, ws: WebsocketImplProtocol) -> None:
        self.service = service
        self.ws = ws
        self.sink = WsSink(ws)
        self.session: Session | None = None
        self._handlers: dict[str, Callable[[Any], None]] = {
            Op.HEARTBEAT: self._heartbeat,
            Op.IDENTIFY: self._identify,
            Op.GET_STATUS: lambda d: self._reply(Op.STATUS, self.service.status()),
            Op.DISCORD_EVENT: lambda d: self.service.discord_event(self._session(), d),
            Op.VC_DESTROY: self._vc_destroy,
            Op.GET_STATE: lambda d: self._guild_reply(Op.GET_STATE, d, "describe"),
            Op.GET_QUEUE: lambda d: self._guild_reply(Op.GET_QUEUE, d, "describe_queue"),
        }

    async def run(self, authorization: str | None) -> None:
        try:
            check_authorization(authorization, self.service.config.password)
        except AudionodeError as e:
            await self.ws.send(proto.encode(Op.FORBIDDEN, e.message))
            await self.ws.close(CloseCode.AUTHENTICATION_FAILED, e.message)
            return
        writer = asyncio.create_task(self.sink.run_writer())
        interval = self.service.config.heartbeat_interval
        self.sink.send(Op.HELLO, {"heartbeat_interval": interval, "version": __version__})
        try:
            await self._read_loop(2 * interval + _GRACE)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer), timeout=5)
        finally:
            writer.cancel()
            if self.session is not None:
                self.service.disconnect(self.session, self.sink, self.sink.unsent())

    async def _read_loop(self, silence_limit: float) -> None:
        last = time.monotonic()
        while not self.sink.closed:
            remaining = last + silence_limit - time.monotonic()
            try:
                data = await self.ws.recv(timeout=max(remaining, 0.0))
            except ConnectionClosed:
                return
            if data is None:
                if time.monotonic() - last >= silence_limit:
                    self.sink.close(CloseCode.HEARTBEAT_TIMEOUT, "no message within 2 x heartbeat")
                continue
            last = time.monotonic()
            self._on_frame(data)

    def _on_frame(self, data: str | bytes) -> None:
        op: Any = None
        try:
            op, d = proto.decode_frame(data)
            handler = self._handlers.get(op)
            if handler is None:
                known = ", ".join(sorted(self._handlers))
                raise AudionodeError(
                    f"unknown op {op!r}; expected one of {known}", code="UNKNOWN_OP"
                )
            if self.session is None and op not in (Op.HEARTBEAT, Op.IDENTIFY):
                raise NotIdentified("send IDENTIFY first")
            handler(d)
        except proto.DecodeError as e:
            self.sink.close(CloseCode.DECODE_ERROR, str(e)[:120])
        except AudionodeError as e:
            self.sink.send(op, proto.error_payload(e.code, e.message))
        except Exception:
            log.exception("control op %r failed", op)
            self.sink.send(
                op, proto.error_payload("INTERNAL", "internal error; see the node's log")
            )

    def _session(self) -> Session:
        assert self.session is not None  # guarded by _on_frame
        return self.session

    def _reply(self, op: str, d: Any) -> None:
        self.sink.send(op, d)

    def _heartbeat(self, d: Any) -> None:
        self._reply(Op.HEARTBEAT_ACK, d)

    def _identify(self, d: Any) -> None:
        if self.session is not None:
            raise AudionodeError("this connection already identified", code="ALREADY_IDENTIFIED")
        ident = proto.parse(d, proto.Identify)
        result = self.service.identify(ident.user_id, ident.shard_id, self.sink)
        self.session = result.session
        self.sink.send(
            Op.IDENTIFIED,
            {
                "user_id": proto.snowflake(ident.user_id),
                "shard_id": ident.shard_id,
                "resumed": result.resumed,
            },
        )
        if result.resumed:
            voice_clients = self.service.voice_clients(result.session)
            self.sink.send(Op.RESUMED, {"voice_clients": voice_clients, "dropped": result.dropped})
            for op, payload in result.kept:
                self.sink.send(op, payload)

    def _vc_destroy(self, d: Any) -> None:
        req = proto.parse(d, proto.GuildRequest)
        self.service.destroy_player(self._session(), req.guild_id)

    def _guild_reply(self, op: str, d: Any, method: str) -> None:
        req = proto.parse(d, proto.GuildRequest)
        player = self.service.player(self._session(), req.guild_id)
        self.sink.send(op, getattr(player, method)())


async def control_socket(request: Request, ws: WebsocketImplProtocol) -> None:
    await ControlConnection(service_of(request), ws).run(request.headers.get("authorization"))


bp.add_websocket_route(control_socket, "/ws")
