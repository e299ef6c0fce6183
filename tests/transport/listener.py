"""The second member of the end-to-end tests: a voice client that listens.

Written straight from docs/discord-voice.md (§1.2 join flow, §1.4 seq, §1.8 discovery, §2.7 DAVE
call sequence) on raw JSON, a plain asyncio UDP socket and ``davey``, without the node's
gateway/DAVE/connection code, so that a mistake there cannot hide behind the same mistake here.
Everything it receives is kept with its arrival time (``time.monotonic()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
import davey

from audionode.voice import rtp
from audionode.voice.crypto import Opened, TransportCipher, choose_mode, cipher_for


@dataclass
class Packet:
    at: float
    data: bytes


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.transport: asyncio.DatagramTransport | None = None
        self.discovery: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        now = time.monotonic()
        if len(data) == rtp.DISCOVERY_SIZE and data[:2] == b"\x00\x02":
            if not self.discovery.done():
                self.discovery.set_result(data)
            return
        self.listener.packets.append(Packet(now, data))
        self.listener.changed()


@dataclass
class Listener:
    url: str
    server_id: int
    user_id: int
    channel_id: int
    session_id: str
    token: str
    json_seen: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    packets: list[Packet] = field(default_factory=list)
    seq_ack: int = -1
    ssrc: int = 0
    cipher: TransportCipher | None = None
    dave: davey.DaveSession | None = None
    dave_version: int = 0
    recognized: set[int] = field(default_factory=set)
    pending: dict[int, int] = field(default_factory=dict)
    close_code: int | None = None

    def __post_init__(self) -> None:
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._udp: _Udp | None = None
        self._reader: asyncio.Task[None] | None = None
        self._external: bytes | None = None
        self._event = asyncio.Event()

    # --- connecting ---------------------------------------------------------------------------

    async def connect(self, http: aiohttp.ClientSession) -> None:
        self._ws = await http.ws_connect(f"{self.url}/?v=8")
        self._reader = asyncio.create_task(self._read())
        await self._send(
            0,
            {
                "server_id": str(self.server_id),
                "user_id": str(self.user_id),
                "session_id": self.session_id,
                "token": self.token,
                "max_dave_protocol_version": davey.DAVE_PROTOCOL_VERSION,
            },
        )
        ready = (await self.wait_op(2))["d"]
        self.ssrc = ready["ssrc"]
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(
            lambda: _Udp(self), remote_addr=(ready["ip"], ready["port"])
        )
        self._udp = proto
        assert proto.transport is not None
        proto.transport.sendto(rtp.pack_discovery_request(self.ssrc))
        raw = await asyncio.wait_for(proto.discovery, 5)
        ip = raw[8:72].split(b"\0")[0].decode()
        port = struct.unpack(">H", raw[72:74])[0]
        mode = choose_mode(ready["modes"])
        await self._send(
            1, {"protocol": "udp", "data": {"address": ip, "port": port, "mode": mode}}
        )
        await self.wait_op(4)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.close()

    # --- waiting ------------------------------------------------------------------------------

    def changed(self) -> None:
        self._event.set()
        self._event.clear()

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        async def poll() -> None:
            while not predicate():
                await self._event.wait()

        await asyncio.wait_for(poll(), within)

    def ops(self, op: int) -> list[tuple[float, dict[str, Any]]]:
        return [(t, m) for t, m in self.json_seen if m["op"] == op]

    async def wait_op(self, op: int, within: float = 5.0) -> dict[str, Any]:
        await self.wait_for(lambda: bool(self.ops(op)) or self.close_code is not None, within)
        assert self.ops(op), f"closed with {self.close_code} while waiting for op {op}"
        return self.ops(op)[-1][1]

    @property
    def dave_ready(self) -> bool:
        return bool(self.dave_version and self.dave is not None and self.dave.ready)

    # --- media --------------------------------------------------------------------------------

    def opened(self, ssrc: int) -> list[tuple[float, Opened]]:
        """Transport-decrypt every packet of ``ssrc`` (an AEAD failure raises)."""
        assert self.cipher is not None
        out = []
        for p in self.packets:
            if rtp.classify(p.data) is not rtp.DatagramKind.RTP:
                continue
            if rtp.seq_ts_ssrc(p.data)[2] == ssrc:
                out.append((p.at, self.cipher.open(p.data)))
        return out

    def dave_decrypt(self, user_id: int, frame: bytes) -> bytes:
        assert self.dave is not None
        return bytes(self.dave.decrypt(user_id, davey.MediaType.audio, frame))

    # --- websocket ----------------------------------------------------------------------------

    async def _send(self, op: int, d: Any) -> None:
        assert self._ws is not None
        await self._ws.send_str(json.dumps({"op": op, "d": d}))

    async def _send_binary(self, op: int, payload: bytes) -> None:
        assert self._ws is not None
        await self._ws.send_bytes(bytes([op]) + payload)

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                m = json.loads(msg.data)
                self.json_seen.append((time.monotonic(), m))
                self.seq_ack = m.get("seq", self.seq_ack)
                await self._on_json(m["op"], m["d"])
            elif msg.type is aiohttp.WSMsgType.BINARY:
                seq, op = struct.unpack_from(">HB", msg.data)
                self.seq_ack = seq
                await self._on_binary(op, msg.data[3:])
            self.changed()
        self.close_code = self._ws.close_code
        self.changed()

    async def _on_json(self, op: int, d: Any) -> None:
        if op == 4:
            self.cipher = cipher_for(d["mode"], d["secret_key"])
            self.dave_version = d["dave_protocol_version"]
            if self.dave_version:
                await self._new_key_package()
        elif op == 11:
            self.recognized |= {int(u) for u in d["user_ids"]}
        elif op == 13:
            self.recognized.discard(int(d["user_id"]))
        elif op == 21:
            tid = d["transition_id"]
            self.pending[tid] = d["protocol_version"]
            if tid == 0:
                self.dave_version = self.pending.pop(0)
            else:
                await self._send(23, {"transition_id": tid})
        elif op == 22:
            if d["transition_id"] in self.pending:
                self.dave_version = self.pending.pop(d["transition_id"])
        elif op == 24 and d["epoch"] == 1:
            self.dave_version = d["protocol_version"]
            await self._new_key_package()

    async def _new_key_package(self) -> None:
        if self.dave is None:
            self.dave = davey.DaveSession(self.dave_version, self.user_id, self.channel_id)
        else:
            self.dave.reinit(self.dave_version, self.user_id, self.channel_id)
        if self._external is not None:
            self.dave.set_external_sender(self._external)
        await self._send_binary(26, self.dave.get_serialized_key_package())

    async def _on_binary(self, op: int, payload: bytes) -> None:
        if op == 25:
            self._external = payload
            if self.dave is not None:
                self.dave.set_external_sender(payload)
            return
        if self.dave is None:
            return
        if op == 27:
            optype = (
                davey.ProposalsOperationType.append
                if payload[0] == 0
                else davey.ProposalsOperationType.revoke
            )
            cw = self.dave.process_proposals(optype, payload[1:], [*self.recognized, self.user_id])
            if cw is not None:
                await self._send_binary(28, cw.commit + (cw.welcome or b""))
        elif op in (29, 30):
            (tid,) = struct.unpack_from(">H", payload)
            try:
                if op == 29:
                    self.dave.process_commit(payload[2:])
                else:
                    self.dave.process_welcome(payload[2:])
            except ValueError:
                await self._send(31, {"transition_id": tid})
                await self._new_key_package()
                return
            if tid:
                self.pending[tid] = self.dave_version
                await self._send(23, {"transition_id": tid})
