"""Test media made with PyAV, and helpers to analyse what a pipeline produced."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from audionode.media.events import PipelineEvent, TrackFailed, TrackFinished
from audionode.media.frames import Frame
from audionode.media.pipeline import Pipeline

RATE = 48000
Pcm = npt.NDArray[np.float32]

# container format, encoder, file extension
FORMATS: dict[str, tuple[str, str]] = {
    "opus": ("ogg", "libopus"),
    "webm": ("webm", "libopus"),
    "mp3": ("mp3", "libmp3lame"),
    "m4a": ("ipod", "aac"),
    "flac": ("flac", "flac"),
    "wav": ("wav", "pcm_s16le"),
}


def tone(freqs: Sequence[float], seconds: float, amplitude: float = 0.3, rate: int = RATE) -> Pcm:
    """Sum of sines, the same on both channels: shape (samples, 2)."""
    t = np.arange(int(seconds * rate)) / rate
    sig = sum(np.sin(2 * np.pi * f * t) for f in freqs) * (amplitude / max(1, len(freqs)))
    return np.stack([sig, sig], axis=1).astype(np.float32)


def write_media(
    path: Path, pcm: Pcm, kind: str, rate: int = RATE, options: dict[str, str] | None = None
) -> list[bytes]:
    """Encode ``pcm`` into ``path`` as ``kind`` (a FORMATS key); return the packets written."""
    fmt, codec = FORMATS[kind]
    packets: list[bytes] = []
    with av.open(str(path), "w", format=fmt, options=options or {}) as out:
        stream = out.add_stream(codec, rate=rate, layout="stereo")
        for i in range(0, len(pcm), 960):
            chunk = np.ascontiguousarray(pcm[i : i + 960].T)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate = rate
            frame.pts = i
            for p in stream.encode(frame):
                packets.append(bytes(p))
                out.mux(p)
        for p in stream.encode(None):
            packets.append(bytes(p))
            out.mux(p)
    return packets


def demuxed_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def decode_opus(frames: Sequence[Frame] | Sequence[bytes]) -> Pcm:
    """Decode 20 ms opus packets to float32 stereo, one 960-sample block per packet."""
    dec = av.CodecContext.create("libopus", "r")
    assert isinstance(dec, av.AudioCodecContext)
    dec.sample_rate = RATE
    dec.layout = "stereo"
    resampler = av.AudioResampler(format="flt", layout="stereo", rate=RATE)
    out = []
    for f in frames:
        data = f.opus if isinstance(f, Frame) else f
        for d in dec.decode(av.Packet(data)):
            for r in resampler.resample(d):
                out.append(r.to_ndarray().reshape(-1, 2))
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 2), np.float32)


def rms(pcm: Pcm) -> float:
    return float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64)))) if len(pcm) else 0.0


def frame_levels(pcm: Pcm) -> list[float]:
    return [rms(pcm[i : i + 960]) for i in range(0, len(pcm) - 959, 960)]


def band_level(pcm: Pcm, freq: float, width: float = 30.0, channel: int = 0) -> float:
    """Amplitude-like level of the spectrum around ``freq`` (Hann-windowed FFT)."""
    x = pcm[:, channel].astype(np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / RATE)
    sel = (freqs > freq - width) & (freqs < freq + width)
    return float(np.sqrt(np.sum(spec[sel] ** 2)) / len(x))


def peak_freq(pcm: Pcm, channel: int = 0) -> float:
    x = pcm[:, channel].astype(np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / RATE)[int(np.argmax(spec))])


def db(a: float, b: float) -> float:
    return 20 * float(np.log10(max(a, 1e-12) / max(b, 1e-12)))


class Recorder:
    """Collects a pipeline's frames (as fast as it makes them) and its events."""

    def __init__(self, pipeline: Pipeline, events: queue.Queue[PipelineEvent]) -> None:
        self.pipeline = pipeline
        self.events = events
        self.seen: list[PipelineEvent] = []
        self.frames: list[Frame] = []

    def drain_events(self) -> list[PipelineEvent]:
        while True:
            try:
                self.seen.append(self.events.get_nowait())
            except queue.Empty:
                return self.seen

    def run_until(
        self,
        done: Callable[[list[PipelineEvent]], bool],
        timeout: float = 10.0,
        pace: float = 0.0,
    ) -> list[Frame]:
        """Pop frames (one per ``pace`` seconds, or as fast as they come) until
        ``done(events)`` holds; when popping fast, also until the made frames are out.

        Checked after every frame: a passthrough track's packets go to the popper straight
        from its reader (``media/lane.py``), so a fast popper would otherwise run through the
        whole read-ahead before a test's next command."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = self.pipeline.buffer.pop()
            if frame is not None:
                self.frames.append(frame)
                if pace:
                    time.sleep(pace)
            if done(self.drain_events()) and (pace or not len(self.pipeline.buffer)):
                return self.frames
            if frame is None:
                time.sleep(0.001)
        raise AssertionError(f"timed out; events so far: {self.drain_events()}")

    def until_ended(self, track: int, timeout: float = 10.0, pace: float = 0.0) -> list[Frame]:
        return self.run_until(
            lambda evs: any(
                isinstance(e, TrackFinished | TrackFailed) and e.track == track for e in evs
            ),
            timeout,
            pace,
        )
