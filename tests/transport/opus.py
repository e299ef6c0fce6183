"""Real opus frames for the transport tests: a generated sine through PyAV's libopus encoder,
and a libopus decoder for the listener side (tests may import av; transport/ and voice/ may not).
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

RATE = 48000
FRAME = 960  # 20 ms


@dataclass(frozen=True)
class OpusFrame:
    """Satisfies ``transport.sender.Frame``."""

    opus: bytes
    track: int
    position_ms: int


def sine_opus(seconds: float, freq: float = 440.0, bitrate: int = 64000) -> list[bytes]:
    """``seconds`` of a stereo sine encoded as 20 ms opus packets (the encoder flush may add one
    packet: docs/discord-voice.md summary; callers slice what they need)."""
    enc = av.CodecContext.create("libopus", "w")
    assert isinstance(enc, av.AudioCodecContext)
    enc.sample_rate = RATE
    enc.layout = "stereo"
    enc.format = "s16"
    enc.bit_rate = bitrate
    enc.open()
    n = round(seconds * RATE / FRAME)
    t = np.arange(n * FRAME) / RATE
    mono = (np.sin(2 * np.pi * freq * t) * 12000).astype(np.int16)
    stereo = np.repeat(mono, 2)  # interleaved L R
    packets: list[bytes] = []
    for i in range(n):
        chunk = stereo[i * FRAME * 2 : (i + 1) * FRAME * 2].reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
        frame.sample_rate = RATE
        frame.pts = i * FRAME
        packets.extend(bytes(p) for p in enc.encode(frame))
    packets.extend(bytes(p) for p in enc.encode(None))
    return packets


class OpusDecoder:
    """Decodes one stream of 20 ms packets; counts the samples per channel it produced."""

    def __init__(self) -> None:
        dec = av.CodecContext.create("libopus", "r")
        assert isinstance(dec, av.AudioCodecContext)
        dec.sample_rate = RATE
        dec.layout = "stereo"
        self._dec = dec
        self.samples = 0

    def decode(self, packet: bytes) -> int:
        """Decode one packet; return its samples per channel (raises on undecodable data)."""
        got = sum(f.samples for f in self._dec.decode(av.Packet(packet)))
        self.samples += got
        return got
