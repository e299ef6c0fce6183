"""What the listener heard from the bot: every audio frame decrypted (transport, then DAVE) and
decoded, with its arrival time and the SSRC it came from (a failover brings a new SSRC)."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

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


F0, RATE_HZ = 300.0, 100.0
"""The test sweep: ``F0 + RATE_HZ * t`` Hz at ``t`` seconds into the track."""


def write_sweep(path: Path, seconds: float) -> Path:
    """A WAV (48 kHz, 16-bit stereo) whose frequency tells the position: a linear sweep."""
    t = np.arange(int(seconds * 48000)) / 48000
    mono = 0.5 * np.sin(2 * np.pi * (F0 * t + RATE_HZ * t * t / 2))
    pcm = (np.repeat(mono[:, None], 2, axis=1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(pcm.tobytes())
    return path


def sweep_position(pcm: np.ndarray, rate: int = 48000) -> float:
    """Where in the sweep ``pcm`` was taken (seconds, at its middle): the peak frequency, found
    to a fraction of a bin by parabolic interpolation."""
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    spectrum[0] = 0
    k = int(np.argmax(spectrum))
    if 0 < k < len(spectrum) - 1:
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
        k += 0.5 * (a - c) / (a - 2 * b + c)
    return (k * rate / len(pcm) - F0) / RATE_HZ


def position_at_end(frames: list[Heard]) -> float:
    """The sweep position at the end of the last 100 ms of ``frames``."""
    return sweep_position(decode([f.opus for f in frames[-5:]])) + 0.05


def position_at_start(frames: list[Heard]) -> float:
    """The sweep position at the start of the first 100 ms of ``frames``."""
    return sweep_position(decode([f.opus for f in frames[:5]])) - 0.05
