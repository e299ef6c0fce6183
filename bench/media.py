"""Media for the stream benchmarks, made with PyAV, and the bare-libopus reference cost.

The audio is music-like rather than a pure tone (a pure sine is unrealistically cheap for
opus): a drifting four-note chord with vibrato, a pulse every half second, and quiet noise.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

FRAME = 960
RATE = 48000


def music(seconds: float, rate: int) -> np.ndarray:
    """Float32 stereo, shape (samples, 2), within [-1, 1]."""
    n = int(seconds * rate)
    t = np.arange(n, dtype=np.float64) / rate
    rng = np.random.default_rng(7)
    left = np.zeros(n)
    for i, f in enumerate((220.0, 277.18, 329.63, 440.0)):
        vibrato = 1.0 + 0.004 * np.sin(2 * np.pi * (5.0 + i) * t)
        left += 0.12 * np.sin(2 * np.pi * f * vibrato * t + i)
    pulse = np.exp(-((t % 0.5) * 30.0)) * np.sin(2 * np.pi * 90.0 * t)
    noise = rng.standard_normal(n) * 0.02
    right = np.roll(left, rate // 100) * 0.9
    out = np.stack([left + 0.3 * pulse + noise, right + 0.3 * pulse + noise[::-1]], axis=1)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _write(path: Path, fmt: str, codec: str, rate: int, seconds: float, bitrate: int) -> Path:
    pcm = music(seconds, rate)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="stereo")
        stream.bit_rate = bitrate  # type: ignore[union-attr]
        stream.format = "flt" if codec == "libopus" else "fltp"  # type: ignore[union-attr]
        if codec == "libopus":
            stream.options = {"compression_level": "10"}
        enc_size = stream.codec_context.frame_size or FRAME  # type: ignore[union-attr]
        step = enc_size if enc_size > 0 else FRAME
        fmt_name = stream.codec_context.format.name  # type: ignore[union-attr]
        for i in range(0, len(pcm) - step + 1, step):
            chunk = pcm[i : i + step]
            if fmt_name.endswith("p"):  # planar
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(chunk.T), format=fmt_name, layout="stereo"
                )
            else:
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(chunk.reshape(1, -1)), format=fmt_name, layout="stereo"
                )
            frame.sample_rate = rate
            frame.pts = i
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):  # type: ignore[union-attr]
                out.mux(packet)
        for packet in stream.encode(None):  # type: ignore[union-attr]
            out.mux(packet)
    return path


def ogg_opus(path: Path, seconds: float) -> Path:
    """Passthrough input: Ogg/Opus, 48 kHz stereo, 128 kbit/s, 20 ms packets."""
    return _write(path, "ogg", "libopus", RATE, seconds, 128_000)


def mp3(path: Path, seconds: float) -> Path:
    """Transcode input: MP3, 44.1 kHz stereo, 128 kbit/s (so it is resampled as well)."""
    return _write(path, "mp3", "libmp3lame", 44100, seconds, 128_000)


def _encode_all(frames: list[np.ndarray], complexity: int) -> float:
    """CPU seconds libopus (a fresh encoder) takes for ``frames``."""
    ctx = av.CodecContext.create("libopus", "w")
    assert isinstance(ctx, av.AudioCodecContext)
    ctx.sample_rate, ctx.layout, ctx.format, ctx.bit_rate = RATE, "stereo", "flt", 128_000
    ctx.time_base = Fraction(1, RATE)
    ctx.options = {"application": "audio", "compression_level": str(complexity)}
    started = time.process_time()
    for i, samples in enumerate(frames):
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = RATE, i * FRAME, Fraction(1, RATE)
        ctx.encode(frame)
    return time.process_time() - started


def bare_libopus(
    path: Path, seconds: float, complexity: int = 10, repeat: int = 3
) -> dict[str, float]:
    """CPU seconds per audio second to encode ``seconds`` of ``path`` (decoded and resampled
    to 48 kHz float stereo beforehand, untimed) with libopus through PyAV, 128 kbit/s, in
    20 ms frames: the floor a transcoding stream cannot go under. The best of ``repeat``
    runs (single runs on this VM vary by up to 1.7x)."""
    resampler = av.AudioResampler(format="flt", layout="stereo", rate=RATE)
    chunks = []
    with av.open(str(path)) as src:
        for frame in src.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1, 2) for f in resampler.resample(frame)]
    pcm = np.concatenate(chunks)[: int(seconds * RATE)]
    frames = [
        np.ascontiguousarray(pcm[i : i + FRAME]).reshape(1, -1)
        for i in range(0, len(pcm) - FRAME + 1, FRAME)
    ]
    cpu = min(_encode_all(frames, complexity) for _ in range(repeat))
    audio = len(frames) * FRAME / RATE
    return {"cpu_s": cpu, "audio_s": audio, "cpu_per_audio_s": cpu / audio}


@contextlib.contextmanager
def busy_neighbour() -> Iterator[None]:
    """A process spinning in Python for the duration: the bare-libopus figure measured beside
    it shows what a loaded machine (the node's case: every core busy) does to the same
    encoder (on this 2-core VM once measured 28 % slower: shared caches and memory bandwidth
    of the host), which the quiet figure does not show."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        yield
    finally:
        proc.kill()
        proc.wait()
