"""A receive-only voice client: a member of the channel who listens to the bot.

It is the demo's ears and a worked example of the client side of ``docs/discord-voice.md``, built
on the package's sans-I/O voice core with thin I/O around it (an aiohttp websocket, one asyncio
UDP socket)::

    websocket                                ClientGateway / DaveState
    op 0 Identify  ──────────────────────▶   identify()                       §1.2
    ◀── op 8 Hello, op 2 Ready               feed() → Hello, Ready             §1.3
    UDP IP discovery (74 bytes each way)     VoiceUdp.discover()               §1.8
    op 1 Select Protocol ────────────────▶   select_protocol(choose_mode())   §1.10
    ◀── op 4 Session Description             cipher_for(); DaveState → op 26   §2.7
    ◀── ops 5, 11, 13, 21-25, 27, 29, 30     DaveState.handle() → ops 23, 28   §2.2
    UDP RTP ─▶ cipher.open() ─▶ DaveState.decrypt(sender, frame) ─▶ OpusDecoder

Call :meth:`Listener.connect` (returns once op 4 is processed), let audio arrive, read
:attr:`Listener.streams` (one :class:`Stream` per sending SSRC), then :meth:`Listener.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import aiohttp
import msgspec
import numpy as np

from audionode.errors import VoiceError
from audionode.media.codec import OpusDecoder, Pcm
from audionode.transport.udp import VoiceUdp
from audionode.transport.voice_conn import gateway_url
from audionode.voice import rtp
from audionode.voice.crypto import TransportCipher, choose_mode, cipher_for
from audionode.voice.dave import MAX_PROTOCOL_VERSION, DaveState
from audionode.voice.dave_frame import is_dave_frame
from audionode.voice.gateway import ClientGateway, GatewayError
from audionode.voice.opcodes import (
    ClientDisconnect,
    ClientsConnect,
    DaveExecuteTransition,
    DavePrepareEpoch,
    DavePrepareTransition,
    Hello,
    Op,
    Outgoing,
    Ready,
    SessionDescription,
    Speaking,
)
from audionode.voice.packetizer import SILENCE_FRAME
from audionode.voice.wire import BinaryMessage

_DAVE_JSON_OPS = {
    DavePrepareTransition: Op.DAVE_PREPARE_TRANSITION,
    DaveExecuteTransition: Op.DAVE_EXECUTE_TRANSITION,
    DavePrepareEpoch: Op.DAVE_PREPARE_EPOCH,
}


@dataclass
class Chunk:
    """One received 20 ms frame, decoded: arrival time (``time.monotonic()``) and PCM."""

    at: float
    pcm: Pcm
    silence: bool


@dataclass
class Stream:
    """Everything received from one SSRC (one member's microphone)."""

    ssrc: int
    user_id: int | None = None
    """Known once the server's op 5 Speaking maps the SSRC to a user (needed by DAVE)."""
    packets: int = 0
    dave_frames: int = 0
    """Audio frames that arrived end-to-end encrypted (DAVE footer, §2.1) and were opened."""
    lost: int = 0
    """Sequence numbers skipped (§1.9): packets that never arrived."""
    errors: list[str] = field(default_factory=list)
    """Why a packet could not be decrypted or decoded, one entry per packet."""
    chunks: list[Chunk] = field(default_factory=list)
    pending: list[tuple[float, bytes]] = field(default_factory=list)
    """Frames received before op 5 told us whose they are: DAVE cannot open them yet."""
    last_seq: int | None = None
    decoder: OpusDecoder = field(default_factory=OpusDecoder)

    @property
    def silence_frames(self) -> int:
        return sum(1 for c in self.chunks if c.silence)

    @property
    def audio_seconds(self) -> float:
        """Decoded seconds of real audio (the ``F8 FF FE`` silence frames left out)."""
        return sum(len(c.pcm) for c in self.chunks if not c.silence) / 48000

    def pcm(self) -> Pcm:
        """The whole decoded stream, left and right averaged, silence frames included."""
        if not self.chunks:
            return np.zeros(0, dtype=np.float32)
        mono: Pcm = np.concatenate([c.pcm for c in self.chunks]).mean(axis=1, dtype=np.float32)
        return mono


class Listener:
    """One listening member. ``endpoint`` is the voice gateway as VOICE_SERVER_UPDATE gives it
    (``host:port`` or a ``ws://`` URL); ``session_id``/``token`` come from the voice state."""

    def __init__(
        self,
        endpoint: str,
        guild_id: int,
        user_id: int,
        channel_id: int,
        session_id: str,
        token: str,
    ) -> None:
        self.url = gateway_url(endpoint)
        self.guild_id, self.user_id, self.channel_id = guild_id, user_id, channel_id
        self.session_id, self.token = session_id, token
        self.gateway = ClientGateway()
        self.dave = DaveState(user_id, channel_id)
        self.cipher: TransportCipher | None = None
        self.streams: dict[int, Stream] = {}
        self.users: dict[int, int] = {}
        """SSRC → user id, from op 5."""
        self.gateway_errors: list[str] = []
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._udp: VoiceUdp | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._active: asyncio.Future[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def connect(self, http: aiohttp.ClientSession, within: float = 10.0) -> None:
        """Join the channel; return once op 4 is processed (media will be received).
        Raises :class:`VoiceError` when the server closes the socket first or on timeout."""
        self._active = asyncio.get_running_loop().create_future()
        self._ws = await http.ws_connect(self.url)
        self._tasks.append(asyncio.create_task(self._read(self._ws)))
        await self._send(
            self.gateway.identify(
                self.guild_id, self.user_id, self.session_id, self.token, MAX_PROTOCOL_VERSION
            )
        )
        try:
            await asyncio.wait_for(asyncio.shield(self._active), within)
        except TimeoutError:
            raise VoiceError(f"listener: no op 4 from {self.url} within {within:g} s") from None

    async def close(self) -> None:
        """Leave: close the websocket (1000) and the UDP socket; idempotent."""
        if self._ws is not None:
            await self._ws.close()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._udp is not None:
            self._udp.close()

    @property
    def mode(self) -> str | None:
        """The transport encryption mode op 4 settled on."""
        return self.cipher.mode if self.cipher is not None else None

    # --- websocket -----------------------------------------------------------------------------

    async def _send(self, frame: str | bytes) -> None:
        assert self._ws is not None
        if isinstance(frame, str):
            await self._ws.send_str(frame)
        else:
            await self._ws.send_bytes(frame)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                break
            try:
                events = self.gateway.feed(msg.data)
            except GatewayError as exc:  # a bad frame is reported, not fatal
                self.gateway_errors.append(str(exc))
                continue
            for event in events:
                try:
                    await self._on_event(event)
                except VoiceError as exc:  # no discovery reply, no usable mode, DAVE refused...
                    self.gateway_errors.append(str(exc))
                    self._fail(exc)
        reason = f"{ws.close_code} {ws.exception() or ''}".strip()
        self._fail(VoiceError(f"listener: voice gateway closed: {reason}"))

    def _fail(self, exc: VoiceError) -> None:
        """Make :meth:`connect` raise ``exc`` if it is still waiting; no-op afterwards."""
        fut = self._active
        if fut is not None and not fut.done():
            fut.set_exception(exc)
            fut.exception()  # marked retrieved: connect() may have stopped waiting already

    async def _on_event(self, event: msgspec.Struct) -> None:
        if isinstance(event, Hello):
            interval = event.heartbeat_interval / 1000
            self._tasks.append(asyncio.create_task(self._heartbeat(interval)))
        elif isinstance(event, Ready):
            await self._on_ready(event)
        elif isinstance(event, SessionDescription):
            self.cipher = cipher_for(event.mode, event.secret_key)
            await self._send_dave(self.dave.on_session_description(event.dave_protocol_version))
            if self._active is not None and not self._active.done():
                self._active.set_result(None)
        elif isinstance(event, Speaking) and isinstance(event.user_id, str):
            self._on_speaking(event.ssrc, int(event.user_id))
        elif isinstance(event, ClientsConnect):
            self.dave.on_clients_connect(event.user_ids)
        elif isinstance(event, ClientDisconnect):
            self.dave.on_client_disconnect(event.user_id)
        elif isinstance(event, BinaryMessage):
            await self._send_dave(self.dave.handle(event.op, event.payload))
        elif (op := _DAVE_JSON_OPS.get(type(event))) is not None:
            await self._send_dave(self.dave.handle(op, event))

    async def _on_ready(self, ready: Ready) -> None:
        """op 2: open UDP, learn our external address (§1.8), pick the mode (§1.10)."""
        self._udp = await VoiceUdp.open(ready.ip, ready.port, self._on_datagram)
        found = await self._udp.discover(ready.ssrc)
        await self._send(
            self.gateway.select_protocol(found.ip, found.port, choose_mode(ready.modes))
        )

    async def _send_dave(self, messages: list[Outgoing]) -> None:
        for message in messages:
            await self._send(self.gateway.send(message))

    async def _heartbeat(self, interval: float) -> None:
        """op 3 with ``seq_ack`` every Hello interval (§1.5)."""
        while True:
            await asyncio.sleep(interval)
            await self._send(self.gateway.heartbeat(int(time.time() * 1000)))

    # --- media ---------------------------------------------------------------------------------

    def _on_speaking(self, ssrc: int, user_id: int) -> None:
        self.users[ssrc] = user_id
        stream = self.streams.setdefault(ssrc, Stream(ssrc))
        stream.user_id = user_id
        pending, stream.pending = stream.pending, []
        for at, frame in pending:
            self._hear(stream, at, frame)

    def _on_datagram(self, data: bytes, kind: rtp.DatagramKind) -> None:
        """Every datagram but the discovery reply: RTP is opened, RTCP and keepalives ignored."""
        if kind is not rtp.DatagramKind.RTP or self.cipher is None:
            return
        at, ssrc = time.monotonic(), rtp.seq_ts_ssrc(data)[2]
        stream = self.streams.setdefault(ssrc, Stream(ssrc, self.users.get(ssrc)))
        stream.packets += 1
        try:
            opened = self.cipher.open(data)  # transport layer (§1.10)
        except VoiceError as exc:
            stream.errors.append(str(exc))
            return
        header = opened.header
        if stream.last_seq is not None:
            stream.lost += max(0, rtp.seq_delta(header.sequence, stream.last_seq) - 1)
        stream.last_seq = header.sequence
        if stream.user_id is None:
            stream.pending.append((at, opened.payload))
        else:
            self._hear(stream, at, opened.payload)

    def _hear(self, stream: Stream, at: float, frame: bytes) -> None:
        """DAVE layer (§2.1: silence passes unencrypted), then opus."""
        assert stream.user_id is not None
        try:
            opus = self.dave.decrypt(stream.user_id, frame)
            pcm = stream.decoder.decode(opus)
        except (VoiceError, ValueError) as exc:
            stream.errors.append(str(exc))
            return
        stream.dave_frames += is_dave_frame(frame)
        stream.chunks.append(Chunk(at, pcm, frame == SILENCE_FRAME))
