"""Test audio: a sine tone encoded to 20 ms opus frames and decoded back, with PyAV's libopus."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

RATE = 48000
FRAME = 960


def tone_opus(freq: float, seconds: float, *, amplitude: float = 0.4) -> list[bytes]:
    """Opus packets (48 kHz stereo, 20 ms) of a sine; the encoder's flush packet is dropped so
    that there is exactly one packet per 20 ms frame."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = RATE
    enc.layout = "stereo"
    enc.format = "s16"
    enc.bit_rate = 96000
    enc.time_base = Fraction(1, RATE)
    enc.open()
    n = int(seconds * RATE) // FRAME
    t = np.arange(n * FRAME) / RATE
    mono = (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype(np.int16)
    stereo = np.repeat(mono[:, None], 2, axis=1)
    packets: list[bytes] = []
    for i in range(n):
        frame = av.AudioFrame.from_ndarray(
            stereo[i * FRAME : (i + 1) * FRAME].reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = RATE
        frame.pts = i * FRAME
        packets.extend(bytes(p) for p in enc.encode(frame))
    return packets[:n]


def decode_opus(frames: list[bytes]) -> tuple[np.ndarray, int]:
    """Decode every frame; return (left channel as float, samples per channel decoded)."""
    dec = av.CodecContext.create("libopus", "r")
    dec.sample_rate = RATE
    dec.layout = "stereo"
    chunks = []
    for f in frames:
        for out in dec.decode(av.Packet(f)):
            arr = out.to_ndarray()
            if out.format.is_planar:
                chunks.append(arr[0].astype(np.float64))
            else:
                chunks.append(arr.reshape(-1, 2)[:, 0].astype(np.float64))
    pcm = np.concatenate(chunks) if chunks else np.zeros(0)
    return pcm, len(pcm)


def dominant_frequency(pcm: np.ndarray, rate: int = RATE) -> float:
    """The strongest frequency of ``pcm`` (Hann window, rfft), to within rate/len Hz."""
    windowed = pcm * np.hanning(len(pcm))
    spectrum = np.abs(np.fft.rfft(windowed))
    spectrum[0] = 0
    return float(np.argmax(spectrum) * rate / len(pcm))


def snr_db(pcm: np.ndarray, freq: float, rate: int = RATE) -> float:
    """Energy within ±20 Hz of ``freq`` against everything else, in dB."""
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm)))) ** 2
    bins = np.fft.rfftfreq(len(pcm), 1 / rate)
    near = np.abs(bins - freq) <= 20
    return float(10 * np.log10(spectrum[near].sum() / max(spectrum[~near].sum(), 1e-12)))
