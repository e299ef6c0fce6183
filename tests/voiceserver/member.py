"""The tests' independent voice client: real aiohttp websocket + UDP socket + davey.

It is the check on both of the project's voice implementations: the voice server's gateway and
the node's own voice client (``voice/client.py``). It follows docs/discord-voice.md §1.2 (join
flow),
§1.4 (seq_ack), §1.5 (heartbeats, opt-in), §2.7 (DAVE call sequence) on raw JSON and davey,
sharing nothing with either but the RTP/AEAD codecs, so that a mistake there cannot hide behind
the same mistake here. Everything it sees is recorded with arrival times for the invariant
checks; :meth:`VoiceMember.leaks` flags audio that reached it without DAVE.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp
import davey

from audionode.tasks import wait_ended
from audionode.voice import rtp
from audionode.voice.crypto import Opened, TransportCipher, choose_mode, cipher_for
from audionode.voice.packetizer import SILENCE_FRAME, Packetizer, silence_frames


@dataclass
class Packet:
    at: float
    data: bytes
    opus: bytes | None = None
    """The frame inside, opened on arrival (transport, then DAVE with the keys of that moment,
    as a real listener must); None when it could not be opened then."""
    error: str | None = None


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, member: VoiceMember) -> None:
        self.member = member
        self.discovery: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if rtp.classify(data) is rtp.DatagramKind.DISCOVERY_RESPONSE:
            if not self.discovery.done():
                self.discovery.set_result(data)
            return
        packet = Packet(time.monotonic(), data)
        self.member.open_live(packet)
        self.member.packets.append(packet)
        self.member.poke()


class _Dave:
    """The FrameEncryptor the packetizer calls: DAVE once the group is up, plain before."""

    def __init__(self, member: VoiceMember) -> None:
        self.member = member

    def encrypt_opus(self, frame: bytes) -> bytes:
        m = self.member
        if m.dave_version and m.dave is not None and m.dave.ready:
            out: bytes = m.dave.encrypt_opus(frame)
            return out
        m.plain_frames_sent += 1
        return frame


@dataclass
class VoiceMember:
    live: ClassVar[list[VoiceMember]] = []
    """Members not closed yet; the conftest closes leftovers after each test."""

    base_url: str
    server_id: str | int
    user_id: int
    channel_id: int
    session_id: str
    token: str
    mode: str | None = None
    """Force a transport mode; None = choose_mode() (AES-GCM when offered)."""
    max_dave: int = davey.DAVE_PROTOCOL_VERSION
    heartbeat: bool = False
    """Send op 3 at Hello's interval (§1.5); off by default so tests can watch a silent socket."""
    # what we saw
    seq_ack: int = -1
    json_seen: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    binary_seen: list[tuple[float, int, int]] = field(default_factory=list)  # (at, seq, op)
    packets: list[Packet] = field(default_factory=list)
    ssrc_user: dict[int, int] = field(default_factory=dict)
    recognized: set[int] = field(default_factory=set)
    key_packages_sent: int = 0
    plain_frames_sent: int = 0
    close_code: int | None = None
    # negotiated
    ready: dict[str, Any] = field(default_factory=dict)
    ssrc: int = 0
    cipher: TransportCipher | None = None
    packetizer: Packetizer | None = None
    dave_version: int = 0
    dave: davey.DaveSession | None = None
    pending: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        VoiceMember.live.append(self)
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._reader: asyncio.Task[None] | None = None
        self._beats: asyncio.Task[None] | None = None
        self._decrypted: dict[bytes, bytes] = {}
        self._changed = asyncio.Event()
        self._ext: bytes | None = None
        self.error: Exception | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- connection --

    async def connect(self, http: aiohttp.ClientSession, *, version: int = 8) -> None:
        """Identify, IP discovery, select protocol, wait for op 4 (§1.2 step 3)."""
        self._loop = asyncio.get_running_loop()
        self._ws = await http.ws_connect(f"{self.base_url}/?v={version}")
        self._reader = asyncio.create_task(self._read())
        await self.send(
            0,
            {
                "server_id": str(self.server_id),
                "user_id": str(self.user_id),
                "session_id": self.session_id,
                "token": self.token,
                "max_dave_protocol_version": self.max_dave,
            },
        )
        self.ready = (await self.wait_op(2))["d"]
        self.ssrc = self.ready["ssrc"]
        loop = asyncio.get_running_loop()
        self._udp, proto = await loop.create_datagram_endpoint(
            lambda: _Udp(self), remote_addr=(self.ready["ip"], self.ready["port"])
        )
        self._udp.sendto(rtp.pack_discovery_request(self.ssrc))
        found = rtp.parse_discovery(await asyncio.wait_for(proto.discovery, 5))
        mode = self.mode or choose_mode(self.ready["modes"])
        await self.send(
            1, {"protocol": "udp", "data": {"address": found.ip, "port": found.port, "mode": mode}}
        )
        await self.wait_op(4)
        await self.send(5, {"speaking": 0, "delay": 0, "ssrc": self.ssrc})

    async def resume(self, http: aiohttp.ClientSession) -> None:
        """A new websocket + op 7 with our seq_ack (§1.6); UDP, key and counters stay."""
        if self._reader is not None:
            self._reader.cancel()
        self._ws = await http.ws_connect(f"{self.base_url}/?v=8")
        self.close_code = None
        self._reader = asyncio.create_task(self._read())
        await self.send(
            7,
            {
                "server_id": str(self.server_id),
                "session_id": self.session_id,
                "token": self.token,
                "seq_ack": self.seq_ack,
            },
        )

    async def close(self) -> None:
        if self in VoiceMember.live:
            VoiceMember.live.remove(self)
        if self._loop is not None and self._loop.is_closed():
            return  # left behind by a test that failed: its sockets went with its loop
        if self._beats is not None:
            self._beats.cancel()
        if self._ws is not None:
            await self._ws.close()
        await wait_ended(self._reader)
        if self._udp is not None:
            self._udp.close()

    async def drop_websocket(self) -> None:
        """Lose the websocket abruptly (no close handshake), keeping UDP."""
        assert self._ws is not None and self._reader is not None
        self._reader.cancel()
        transport = self._ws._response.connection.transport  # type: ignore[union-attr]
        transport.abort()  # type: ignore[union-attr]

    async def send(self, op: int, d: Any) -> None:
        assert self._ws is not None
        await self._ws.send_str(json.dumps({"op": op, "d": d}))

    async def send_binary(self, op: int, payload: bytes) -> None:
        assert self._ws is not None
        await self._ws.send_bytes(bytes([op]) + payload)  # client frames carry no seq (§1.4)

    # -- waiting --

    def ops(self, op: int) -> list[dict[str, Any]]:
        return [m for _, m in self.json_seen if m["op"] == op]

    def ops_at(self, op: int) -> list[tuple[float, dict[str, Any]]]:
        """``ops`` with arrival times."""
        return [(t, m) for t, m in self.json_seen if m["op"] == op]

    def poke(self) -> None:
        """Wake :meth:`wait_for` (new websocket frame or datagram)."""
        self._changed.set()
        self._changed.clear()

    async def wait_for(self, predicate: Any, within: float = 5.0) -> None:
        async def loop() -> None:
            while not predicate():
                if self.error is not None:
                    raise AssertionError("the member's reader failed") from self.error
                await self._changed.wait()

        await asyncio.wait_for(loop(), within)

    async def wait_op(self, op: int, count: int = 1, within: float = 5.0) -> dict[str, Any]:
        await self.wait_for(
            lambda: len(VoiceMember.ops(self, op)) >= count or self.close_code is not None, within
        )
        if len(VoiceMember.ops(self, op)) < count:
            raise AssertionError(f"closed with {self.close_code} while waiting for op {op}")
        return VoiceMember.ops(self, op)[count - 1]

    async def wait_closed(self, within: float = 5.0) -> int:
        await self.wait_for(lambda: self.close_code is not None, within)
        assert self.close_code is not None
        return self.close_code

    @property
    def dave_ready(self) -> bool:
        """DAVE in force and our group established (a transition may still be pending)."""
        return bool(self.dave_version and self.dave is not None and self.dave.ready)

    async def wait_dave_ready(self, within: float = 10.0) -> None:
        await self.wait_for(lambda: self.dave_ready and not self.pending, within)

    # -- reading --

    async def _read(self) -> None:
        try:
            await self._read_frames()
        except Exception as e:
            self.error = e
            self.poke()
            raise

    async def _read_frames(self) -> None:
        assert self._ws is not None
        ws = self._ws
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                self.json_seen.append((time.monotonic(), data))
                self.seq_ack = data.get("seq", self.seq_ack)
                await self._on_json(data["op"], data["d"])
            elif msg.type is aiohttp.WSMsgType.BINARY:
                seq, op = struct.unpack_from(">HB", msg.data)
                self.seq_ack = seq
                self.binary_seen.append((time.monotonic(), seq, op))
                await self._on_binary(op, msg.data[3:])
            self.poke()
        if ws is self._ws:
            self.close_code = ws.close_code
            self.poke()

    async def _beat(self, interval: float) -> None:
        """op 3 ``{t, seq_ack}`` every ``interval`` seconds (§1.4, §1.5)."""
        while True:
            await asyncio.sleep(interval)
            await self.send(3, {"t": int(time.time() * 1000), "seq_ack": self.seq_ack})

    async def _on_json(self, op: int, d: Any) -> None:
        if op == 8 and self.heartbeat:
            if self._beats is not None:
                self._beats.cancel()
            self._beats = asyncio.create_task(self._beat(d["heartbeat_interval"] / 1000))
        elif op == 4:
            self.cipher = cipher_for(d["mode"], d["secret_key"])
            if self.packetizer is None:
                self.packetizer = Packetizer(self.ssrc, encryptor=_Dave(self))
            self.packetizer.set_cipher(self.cipher)
            self.dave_version = d["dave_protocol_version"]
            if self.dave_version:
                await self._reinit_dave()
        elif op == 5:
            self.ssrc_user[d["ssrc"]] = int(d["user_id"])
        elif op == 11:
            self.recognized |= {int(u) for u in d["user_ids"]}
        elif op == 13:
            self.recognized.discard(int(d["user_id"]))
        elif op == 21:
            self.pending[d["transition_id"]] = d["protocol_version"]
            if d["transition_id"] == 0:
                self._execute(0)
            else:
                if d["protocol_version"] == 0 and self.dave is not None:
                    self.dave.set_passthrough_mode(True, 120)
                await self.send(23, {"transition_id": d["transition_id"]})
        elif op == 22:
            self._execute(d["transition_id"])
        elif op == 24 and d["epoch"] == 1:
            self.dave_version = d["protocol_version"]
            await self._reinit_dave()

    def _execute(self, tid: int) -> None:
        if tid in self.pending:
            self.dave_version = self.pending.pop(tid)

    async def _reinit_dave(self) -> None:
        if self.dave is None:
            self.dave = davey.DaveSession(self.dave_version, self.user_id, self.channel_id)
        else:
            self.dave.reinit(self.dave_version, self.user_id, self.channel_id)
        if self._ext is not None:
            self.dave.set_external_sender(self._ext)
        await self.send_binary(26, self.dave.get_serialized_key_package())
        self.key_packages_sent += 1

    async def _on_binary(self, op: int, payload: bytes) -> None:
        if op == 25:
            self._ext = payload
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
                await self.send_binary(28, cw.commit + (cw.welcome or b""))
        elif op in (29, 30):
            (tid,) = struct.unpack_from(">H", payload)
            try:
                if op == 29:
                    self.dave.process_commit(payload[2:])
                else:
                    self.dave.process_welcome(payload[2:])
            except Exception:
                await self.send(31, {"transition_id": tid})
                await self._reinit_dave()
                return
            if tid:
                self.pending[tid] = self.dave_version
                await self.send(23, {"transition_id": tid})

    # -- media --

    async def play(self, frames: list[bytes], *, silence: int = 5) -> None:
        """speaking 1, (50 ms), frames at 20 ms pacing (absolute deadlines), silence, speaking 0."""
        assert self.packetizer is not None and self._udp is not None
        await self.send(5, {"speaking": 1, "delay": 0, "ssrc": self.ssrc})
        # op 5 and RTP travel on different sockets: leave the relay a head start of 50 ms so
        # that listeners can check "speaking before audio" on arrival times.
        await asyncio.sleep(0.05)
        start = time.monotonic()
        for i, frame in enumerate([*frames, *silence_frames(silence)]):
            self._udp.sendto(self.packetizer.packet(frame))
            await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))
        await self.send(5, {"speaking": 0, "delay": 0, "ssrc": self.ssrc})

    def open_live(self, packet: Packet) -> None:
        """Open an RTP packet as it arrives; the outcome goes into ``packet``."""
        if self.cipher is None or rtp.classify(packet.data) is not rtp.DatagramKind.RTP:
            return
        try:
            o = self.cipher.open(packet.data)
        except Exception as exc:
            packet.error = f"transport: {exc}"
            return
        frame, user = o.payload, self.ssrc_user.get(o.header.ssrc)
        if frame == SILENCE_FRAME or frame[-2:] != b"\xfa\xfa":
            packet.opus = frame
        elif user is not None and self.dave is not None:
            try:
                packet.opus = self.dave_decrypt(user, frame)
            except Exception as exc:
                packet.error = f"DAVE: {exc}"

    def opened_at(self, ssrc: int) -> list[tuple[float, Opened]]:
        """(arrival time, opened packet) of every RTP packet of ``ssrc``, transport-decrypted
        (raises on any AEAD failure); RTCP and keepalives are left out."""
        assert self.cipher is not None
        out = []
        for p in self.packets:
            if rtp.classify(p.data) is rtp.DatagramKind.RTP and rtp.seq_ts_ssrc(p.data)[2] == ssrc:
                out.append((p.at, self.cipher.open(p.data)))
        return out

    def opened(self, ssrc: int) -> list[Opened]:
        """Transport-decrypt every received RTP packet of ``ssrc`` (raises on AEAD failure)."""
        return [o for _, o in self.opened_at(ssrc)]

    def dave_decrypt(self, user_id: int, frame: bytes) -> bytes:
        """The opus inside a DAVE frame of ``user_id`` (davey refuses to open a frame twice, so
        frames opened on arrival are answered from what was opened then)."""
        opus = self._decrypted.get(frame)
        if opus is None:
            assert self.dave is not None
            opus = self._decrypted[frame] = bytes(
                self.dave.decrypt(user_id, davey.MediaType.audio, frame)
            )
        return opus

    def leaks(self, ssrc: int, after: float = 0.0) -> list[tuple[float, bytes]]:
        """Audio of ``ssrc`` that arrived without DAVE (§2.1): neither the silence frame nor a
        frame ending in the ``FA FA`` marker. In a channel with DAVE in force, each is a leak."""
        return [
            (at, o.payload)
            for at, o in self.opened_at(ssrc)
            if at > after and o.payload != SILENCE_FRAME and o.payload[-2:] != b"\xfa\xfa"
        ]

    def media_frames(self, ssrc: int) -> list[bytes]:
        """Transport-, then DAVE-decrypt the frames of ``ssrc``; silence frames stay as they are."""
        assert self.dave is not None
        user = self.ssrc_user[ssrc]
        frames = []
        for _, o in self.opened_at(ssrc):
            if o.payload == SILENCE_FRAME:
                frames.append(o.payload)
            else:
                frames.append(self.dave_decrypt(user, o.payload))
        return frames
