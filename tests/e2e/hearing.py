"""What a listener hears from the bot, frame by frame, across the bot's reconnections.

The listener (``tests/transport/listener.py``) keeps raw packets; DAVE keys change whenever the
node's voice client joins the group again (a node restart), so frames are DAVE-decrypted as
they arrive, not at the end. Each 20 ms frame is decoded and labelled with the strongest of
the frequencies a test expects, so a test can count how much of a track it heard before and
after a restart.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import av
import numpy as np

from audionode.tasks import cancel_and_wait
from audionode.voice import rtp
from audionode.voice.packetizer import SILENCE_FRAME
from tests.transport.listener import Listener

FRAME = 0.020
RATE = 48000
_FLOOR = 0.01
"""Spectral level below which a frame counts as silent (a tone at full level is ~0.25)."""
_RETRY = 2.0
"""Seconds a DAVE frame is retried before it counts as undecryptable."""


@dataclass
class Heard:
    at: float
    ssrc: int
    tone: float | None
    """The expected frequency heard in this frame, or None (silence or none of them)."""


@dataclass
class Ear:
    """Create inside a running loop; :meth:`close` when done."""

    listener: Listener
    user_id: int
    tones: tuple[float, ...]
    frames: list[Heard] = field(default_factory=list)
    undecryptable: int = 0

    def __post_init__(self) -> None:
        self._seen = 0
        self._pending: list[tuple[float, int, bytes]] = []
        self._decoders: dict[int, av.CodecContext] = {}
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.poll()
            await asyncio.sleep(FRAME)

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self.poll()

    def poll(self) -> None:
        packets = self.listener.packets
        fresh, self._seen = packets[self._seen :], len(packets)
        cipher = self.listener.cipher
        for p in fresh:
            if cipher is None or rtp.classify(p.data) is not rtp.DatagramKind.RTP:
                continue
            ssrc = rtp.seq_ts_ssrc(p.data)[2]
            frame = cipher.open(p.data).payload
            if frame == SILENCE_FRAME:
                self.frames.append(Heard(p.at, ssrc, None))
            else:
                self._pending.append((p.at, ssrc, frame))
        self._drain()

    def _drain(self) -> None:
        """Decrypt pending frames in order; stop at one whose key has not arrived yet."""
        now = time.monotonic()  # the listener's clock
        while self._pending:
            at, ssrc, frame = self._pending[0]
            try:
                plain = (
                    self.listener.dave_decrypt(self.user_id, frame)
                    if frame.endswith(b"\xfa\xfa")
                    else frame
                )
            except Exception:
                if now - at < _RETRY:
                    return
                self.undecryptable += 1
                self._pending.pop(0)
                continue
            self._pending.pop(0)
            self.frames.append(Heard(at, ssrc, self._label(self._decode(ssrc, plain))))

    def _decode(self, ssrc: int, opus: bytes) -> np.ndarray:
        dec = self._decoders.get(ssrc)
        if dec is None:
            dec = self._decoders[ssrc] = av.CodecContext.create("libopus", "r")
            dec.sample_rate = RATE
            dec.layout = "stereo"
        chunks = []
        for out in dec.decode(av.Packet(opus)):
            arr = out.to_ndarray()
            chunks.append(arr[0] if out.format.is_planar else arr.reshape(-1, 2)[:, 0])
        return np.concatenate(chunks).astype(np.float64) if chunks else np.zeros(0)

    def _label(self, pcm: np.ndarray) -> float | None:
        if len(pcm) == 0:
            return None
        t = np.arange(len(pcm)) / RATE
        levels = [abs(np.dot(pcm, np.exp(-2j * np.pi * f * t))) / len(pcm) for f in self.tones]
        best = int(np.argmax(levels))
        return self.tones[best] if levels[best] >= _FLOOR else None

    # --- questions ------------------------------------------------------------------------------

    def count(self, tone: float, ssrc: int | None = None, since: float = 0.0) -> int:
        """Frames of ``tone`` heard (from ``ssrc``, after ``since``)."""
        return sum(
            1
            for h in self.frames
            if h.tone == tone and h.at >= since and (ssrc is None or h.ssrc == ssrc)
        )

    def audible(self, since: float) -> int:
        """Frames with any expected tone heard after ``since``."""
        return sum(1 for h in self.frames if h.at >= since and h.tone is not None)

    def ssrcs(self) -> list[int]:
        """The bot's SSRCs in the order they were first heard (one per voice identify)."""
        out: list[int] = []
        for h in sorted(self.frames, key=lambda h: h.at):
            if h.ssrc not in out:
                out.append(h.ssrc)
        return out
