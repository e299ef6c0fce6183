"""What the listener heard from the bot: every audio frame decrypted (transport, then DAVE) and
decoded, with its arrival time and the SSRC it came from (a failover brings a new SSRC)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audionode.voice import rtp
from audionode.voice.packetizer import SILENCE_FRAME
from tests.e2e.chain import band_level, decode, dominant
from tests.transport.listener import Listener

__all__ = ["Ears", "Heard", "band_level", "decode", "dominant"]


@dataclass(frozen=True)
class Heard:
    at: float
    """Arrival time (``time.monotonic()``)."""
    ssrc: int
    opus: bytes


class Ears:
    """Decrypts what the listener received from the bot, once per packet (a DAVE frame cannot
    be decrypted twice: davey refuses a replayed nonce), and keeps the result."""

    def __init__(self, listener: Listener, user_id: int) -> None:
        self.listener = listener
        self.user_id = user_id
        self.heard: list[Heard] = []
        self.undecryptable = 0
        """Frames sent before the listener shared the bot's DAVE key (a connection's first)."""
        self._done = 0

    def frames(self) -> list[Heard]:
        """Every non-silence frame from the bot so far, in arrival order."""
        packets = self.listener.packets
        for p in packets[self._done :]:
            self._take(p.at, p.data)
        self._done = len(packets)
        return self.heard

    def _take(self, at: float, data: bytes) -> None:
        listener = self.listener
        assert listener.cipher is not None
        if rtp.classify(data) is not rtp.DatagramKind.RTP:
            return
        payload = listener.cipher.open(data).payload
        if payload == SILENCE_FRAME:
            return
        if payload.endswith(b"\xfa\xfa"):
            try:
                payload = listener.dave_decrypt(self.user_id, payload)
            except Exception:
                self.undecryptable += 1
                return
        self.heard.append(Heard(at, rtp.seq_ts_ssrc(data)[2], payload))


def windows(frames: list[Heard], size: int = 5) -> list[tuple[float, np.ndarray]]:
    """Decoded ``size``-frame windows (arrival time of the first frame, left channel)."""
    return [
        (frames[i].at, decode([f.opus for f in frames[i : i + size]]))
        for i in range(0, len(frames) - size + 1, size)
    ]
