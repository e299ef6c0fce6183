"""CPU cost of the media pipeline per second of audio.

    .venv/bin/python -m bench.media_cost [--seconds 30] [--repeat 3]

Measures, on the same generated music-like audio (a chord plus noise, stereo, 48 kHz):

- passthrough: an Ogg/Opus file through the Pipeline (packets forwarded, nothing decoded);
- transcode:   an MP3 file through the Pipeline (decode, resample, libopus encode at
               complexity 10, 128 kbit/s);
- bare libopus: the same PCM encoded by libopus alone (the floor for any transcoder);
- mp3 decode:  the MP3 decoded alone (to see where the transcode time goes).

CPU time is the process's (all threads) ``time.process_time`` minus the popping thread's own
``thread_time`` (it stands in for the sender); frames are popped as fast as the pipeline
makes them. Each figure is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import queue
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from audionode.config import EngineConfig
from audionode.media.codec import OpusEncoder
from audionode.media.events import PipelineEvent, TrackFailed, TrackFinished
from audionode.media.pipeline import Pipeline
from audionode.sources.api import Playable

RATE = 48000


def music(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(1)
    chord = sum(np.sin(2 * np.pi * f * t + i) for i, f in enumerate((220, 277.2, 329.6, 440)))
    wobble = 0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t)
    left = 0.15 * chord * wobble + 0.05 * rng.standard_normal(len(t))
    right = 0.15 * chord * (1 - wobble) + 0.05 * rng.standard_normal(len(t))
    return np.stack([left, right], axis=1).astype(np.float32)


def write(path: Path, pcm: np.ndarray, fmt: str, codec: str) -> None:
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=RATE, layout="stereo")
        stream.bit_rate = 192000
        for i in range(0, len(pcm), 960):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm[i : i + 960].T), format="fltp", layout="stereo"
            )
            frame.sample_rate = RATE
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def cpu_of(fn: Callable[[], float | None], repeat: int) -> float:
    """Best process CPU time of ``fn`` minus what ``fn`` reports as its own polling cost."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        own = fn() or 0.0
        best = min(best, time.process_time() - start - own)
    return best


def run_pipeline(data: bytes) -> float:
    """Play ``data`` to the end; return the CPU the popping (main) thread used, which is
    the test harness standing in for the sender, not the pipeline."""
    own = time.thread_time()
    events: queue.Queue[PipelineEvent] = queue.Queue()
    pipeline = Pipeline(EngineConfig(complexity=10, bitrate=128000), on_event=events.put)
    pipeline.start()
    try:
        pipeline.play(Playable.from_bytes(data), 1)
        while True:
            if pipeline.buffer.pop() is not None:
                continue
            done = [e for e in list(events.queue) if isinstance(e, TrackFinished | TrackFailed)]
            if done and not len(pipeline.buffer):
                if isinstance(done[0], TrackFailed):
                    raise RuntimeError(done[0].message)
                return time.thread_time() - own
            time.sleep(0.0005)
    finally:
        pipeline.close()


def bare_encode(pcm: np.ndarray) -> None:
    """Only libopus (through the same PyAV wrapper the pipeline uses)."""
    enc = OpusEncoder(128000, 10)
    for i in range(0, len(pcm) - 959, 960):
        enc.encode(pcm[i : i + 960])


def decode_only(path: Path) -> None:
    with av.open(str(path)) as c:
        for _frame in c.decode(audio=0):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    pcm = music(args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        opus, mp3 = Path(tmp) / "in.opus", Path(tmp) / "in.mp3"
        write(opus, pcm, "ogg", "libopus")
        write(mp3, pcm, "mp3", "libmp3lame")
        results = {
            "passthrough (ogg/opus)": cpu_of(lambda: run_pipeline(opus.read_bytes()), args.repeat),
            "transcode (mp3 -> opus c10)": cpu_of(
                lambda: run_pipeline(mp3.read_bytes()), args.repeat
            ),
            "bare libopus encode (c10)": cpu_of(lambda: bare_encode(pcm), args.repeat),
            "mp3 decode only": cpu_of(lambda: decode_only(mp3), args.repeat),
        }
    print(f"audio: {args.seconds:g} s stereo 48 kHz; best of {args.repeat}")
    print(f"{'':30} {'CPU s':>8} {'CPU s per audio s':>18} {'realtime x':>11}")
    for name, cpu in results.items():
        per = cpu / args.seconds
        print(f"{name:30} {cpu:8.3f} {per:18.5f} {1 / per if per else float('inf'):11.0f}")
    bare = results["bare libopus encode (c10)"]
    print(f"transcode / bare encode   = {results['transcode (mp3 -> opus c10)'] / bare:.2f}")
    print(f"passthrough / bare encode = {results['passthrough (ogg/opus)'] / bare:.3f}")
    print(f"passthrough / transcode   = "
          f"{results['passthrough (ogg/opus)'] / results['transcode (mp3 -> opus c10)']:.3f}")


if __name__ == "__main__":
    main()
