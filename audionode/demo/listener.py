"""A receive-only voice client: a member of the channel who listens to the bot.

It is the demo's ears, and it is the node's own voice client: the sans-I/O session of
``voice/client.py`` (handshake, heartbeats, DAVE, the receive path of docs/discord-voice.md
§1.10 and §2.1) driven by ``transport/voice_conn.py``, with the receive path turned on::

    UDP RTP ─▶ VoiceClient.receive_datagram: transport open (§1.10) ─▶ SSRC → user (op 5)
            ─▶ DaveState.decrypt (§2.1) ─▶ AudioPacket ─▶ Listener: OpusDecoder ─▶ Stream

Call :meth:`Listener.connect` (returns once op 4 is processed), let audio arrive, read
:attr:`Listener.streams` (one :class:`Stream` per sending SSRC), then :meth:`Listener.close`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import aiohttp
import numpy as np

from audionode.config import VoiceConfig
from audionode.media.codec import OpusDecoder, Pcm
from audionode.transport.voice_conn import VoiceConnection
from audionode.voice import rtp
from audionode.voice.dave import DaveState
from audionode.voice.events import (
    AudioPacket,
    ReceiveEvent,
    ReceiveFailed,
    SpeakingChanged,
    VoiceEvent,
)
from audionode.voice.packetizer import SILENCE_FRAME


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
        self.endpoint = endpoint
        self.guild_id, self.user_id, self.channel_id = guild_id, user_id, channel_id
        self.session_id, self.token = session_id, token
        self.streams: dict[int, Stream] = {}
        self.users: dict[int, int] = {}
        """SSRC → user id, from op 5."""
        self.voice_events: list[VoiceEvent] = []
        self.conn = self._connection(None)

    def _connection(self, http: aiohttp.ClientSession | None) -> VoiceConnection:
        return VoiceConnection(
            self.guild_id,
            self.user_id,
            self.session_id,
            self.channel_id,
            self.token,
            self.endpoint,
            VoiceConfig(),
            self.voice_events.append,
            http=http,
            on_receive=self.hear,
        )

    # --- lifecycle ---------------------------------------------------------------------------

    async def connect(self, http: aiohttp.ClientSession, within: float = 10.0) -> None:
        """Join the channel; return once op 4 is processed (media will be received).
        Raises :class:`~audionode.errors.VoiceError` when the server refuses or on timeout."""
        self.conn = self._connection(http)
        self.conn.settings = VoiceConfig(connect_timeout=within)
        await self.conn.connect()

    async def close(self) -> None:
        """Leave: close the websocket (1000) and the UDP socket; idempotent."""
        await self.conn.close()

    @property
    def mode(self) -> str | None:
        """The transport encryption mode op 4 settled on."""
        return self.conn.mode

    @property
    def dave(self) -> DaveState:
        return self.conn.dave

    # --- what the session heard ----------------------------------------------------------------

    def hear(self, event: ReceiveEvent, at: float | None = None) -> None:
        """One receive event of the session: decode audio, count failures, map SSRCs."""
        if isinstance(event, SpeakingChanged):
            self.users[event.ssrc] = event.user_id
            self._stream(event.ssrc).user_id = event.user_id
        elif isinstance(event, ReceiveFailed):
            stream = self._stream(event.ssrc)
            stream.packets += 1
            stream.errors.append(event.reason)
        elif isinstance(event, AudioPacket):
            self._decode(self._stream(event.ssrc), event, at)

    def _stream(self, ssrc: int) -> Stream:
        stream = self.streams.get(ssrc)
        if stream is None:
            stream = self.streams[ssrc] = Stream(ssrc, self.users.get(ssrc))
        return stream

    def _decode(self, stream: Stream, packet: AudioPacket, at: float | None) -> None:
        stream.packets += 1
        stream.user_id = packet.user_id
        if stream.last_seq is not None:
            stream.lost += max(0, rtp.seq_delta(packet.sequence, stream.last_seq) - 1)
        stream.last_seq = packet.sequence
        try:
            pcm = stream.decoder.decode(packet.opus)
        except ValueError as exc:
            stream.errors.append(f"opus: {exc}")
            return
        stream.dave_frames += packet.e2ee
        silence = packet.opus == SILENCE_FRAME
        stream.chunks.append(Chunk(time.monotonic() if at is None else at, pcm, silence))
