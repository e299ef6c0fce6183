"""A scriptable Discord voice server for the close-policy tests: real aiohttp websocket server
and UDP socket on loopback, speaking the project's ``ServerGateway`` (voice/gateway_server.py).

It serves one voice session (no DAVE: op 4 carries ``dave_protocol_version`` 0) and records
everything: client messages with arrival times, every UDP datagram. A test makes it misbehave
(close with a code, refuse a resume, stop acking heartbeats) to drive the client's policy.
The DAVE end-to-end tests run against the built-in voice server instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import WSMsgType, web

from audionode.voice import rtp
from audionode.voice.crypto import SUPPORTED_MODES, TransportCipher, cipher_for
from audionode.voice.gateway import Side, VoiceGateway
from audionode.voice.gateway_server import ServerGateway
from audionode.voice.opcodes import Heartbeat, Identify, Resume, SelectProtocol
from audionode.voice.wire import GatewayError


@dataclass
class Received:
    at: float
    socket: int
    op: int
    d: Any


@dataclass
class Script:
    """What the server does; tests change it between steps."""

    modes: list[str] = field(default_factory=lambda: list(SUPPORTED_MODES))
    heartbeat_ms: float = 13750
    ack_heartbeats: bool = True
    close_on_identify: int | None = None
    close_on_resume: int | None = None
    token: str = "tok"
    session_id: str = "sess"
    dave_version: int = 0
    """op 4 ``dave_protocol_version``; this server never runs an MLS group itself."""


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: ScriptedServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if rtp.classify(data) is rtp.DatagramKind.DISCOVERY_REQUEST:
            self.server.discoveries += 1
            if self.server.drop_discoveries > 0:
                self.server.drop_discoveries -= 1
                return
            req = rtp.parse_discovery(data)
            assert self.transport is not None
            reply = rtp.pack_discovery_response(req.ssrc, str(addr[0]), int(addr[1]))
            self.transport.sendto(reply, addr)
            return
        self.server.datagrams.append((time.monotonic(), data))


class ScriptedServer:
    def __init__(self) -> None:
        self.script = Script()
        self.received: list[Received] = []
        self.datagrams: list[tuple[float, bytes]] = []
        self.close_codes: list[int | None] = []
        """Close codes the client sent, per socket that it closed."""
        self.discoveries = 0
        self.drop_discoveries = 0
        self.sockets: list[web.WebSocketResponse] = []
        self.gateway: ServerGateway | None = None
        self.keys: list[bytes] = []
        self.ssrcs: list[int] = []
        self.identifies = 0
        self.resumes = 0
        self._udp: _Udp | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.udp_port = 0

    @property
    def endpoint(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def live(self) -> web.WebSocketResponse:
        return self.sockets[-1]

    def cipher(self) -> TransportCipher:
        assert self.gateway is not None and self.gateway.mode is not None
        return cipher_for(self.gateway.mode, self.keys[-1])

    def ops(self, op: int) -> list[Received]:
        return [r for r in self.received if r.op == op]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        loop = asyncio.get_running_loop()
        _, self._udp = await loop.create_datagram_endpoint(
            lambda: _Udp(self), local_addr=("127.0.0.1", 0)
        )
        assert self._udp.transport is not None
        self.udp_port = self._udp.transport.get_extra_info("sockname")[1]

    async def stop(self) -> None:
        for ws in self.sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.close()

    async def kill(self, code: int, reason: str = "") -> None:
        """Close the live socket with ``code`` (as Discord does on 4014, 4015...)."""
        await self.live.close(code=code, message=reason.encode())

    def drop_tcp(self) -> None:
        """Lose the live socket without a close frame (a crashed server: 1006)."""
        transport = self.live._req.transport if self.live._req is not None else None
        assert transport is not None
        transport.abort()

    async def push(self, frame: str | bytes) -> None:
        """Send a numbered server message on the live socket."""
        if isinstance(frame, str):
            await self.live.send_str(frame)
        else:
            await self.live.send_bytes(frame)

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        if request.query.get("v") != "8":
            await ws.close(code=4020, message=b"bad version")
            return ws
        self.sockets.append(ws)
        index = len(self.sockets) - 1
        await ws.send_str(VoiceGateway(Side.SERVER).hello(self.script.heartbeat_ms))
        fresh: ServerGateway = VoiceGateway(Side.SERVER)
        gw: ServerGateway | None = None
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            self._record(index, msg.data)
            try:
                if gw is None:
                    gw = await self._first(ws, fresh, msg.data)
                else:
                    await self._on(ws, gw, msg.data)
            except GatewayError as exc:
                await ws.close(code=exc.close_code, message=str(exc).encode()[:100])
        self.close_codes.append(ws.close_code)
        return ws

    def _record(self, index: int, data: str | bytes) -> None:
        if isinstance(data, bytes):
            self.received.append(Received(time.monotonic(), index, data[0], data[1:]))
        else:
            m = json.loads(data)
            self.received.append(Received(time.monotonic(), index, m["op"], m["d"]))

    async def _first(
        self, ws: web.WebSocketResponse, fresh: ServerGateway, data: str | bytes
    ) -> ServerGateway | None:
        events = fresh.feed(data)
        ev = events[0]
        s = self.script
        if isinstance(ev, Identify):
            self.identifies += 1
            if s.close_on_identify is not None:
                await ws.close(code=s.close_on_identify, message=b"scripted")
                return None
            assert (ev.token, ev.session_id) == (s.token, s.session_id), ev
            ssrc = 1000 + self.identifies
            self.ssrcs.append(ssrc)
            self.gateway = fresh
            await ws.send_str(fresh.ready(ssrc, "127.0.0.1", self.udp_port, s.modes))
            return fresh
        if isinstance(ev, Resume):
            self.resumes += 1
            gw = self.gateway
            replay = gw.resume_connection(ev.seq_ack) if gw is not None else None
            if s.close_on_resume is not None or replay is None:
                await ws.close(code=s.close_on_resume or 4006, message=b"cannot resume")
                return None
            for frame in replay:
                await (ws.send_str(frame) if isinstance(frame, str) else ws.send_bytes(frame))
            return gw
        await ws.close(code=4003, message=b"not authenticated")
        return None

    async def _on(self, ws: web.WebSocketResponse, gw: ServerGateway, data: str | bytes) -> None:
        for ev in gw.feed(data):
            if isinstance(ev, Heartbeat) and self.script.ack_heartbeats:
                await ws.send_str(gw.heartbeat_ack(ev.t))
            elif isinstance(ev, SelectProtocol):
                key = os.urandom(32)
                self.keys.append(key)
                await ws.send_str(gw.session_description(key, self.script.dave_version))


@contextlib.asynccontextmanager
async def scripted_server() -> AsyncIterator[ScriptedServer]:
    server = ScriptedServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
