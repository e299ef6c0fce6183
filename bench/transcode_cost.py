"""Transcode cost: our pipeline against a bare PyAV loop doing the same work, same run.

    python -m bench.transcode_cost [--seconds 60] [--rounds 3]

Both turn the same MP3 (44.1 kHz stereo, 128 kbit/s, made by ``bench/media.py``) into 20 ms
libopus frames at 48 kHz, complexity 10, 128 kbit/s, with the same libraries (PyAV's libav and
libopus):

- **ours**: a ``Pipeline`` (reader thread, producer thread, mixer, gain, frame buffer) playing
  the track from memory, its buffer popped as fast as frames come (no 20 ms pacing, so the
  figure is CPU per frame, not wall time);
- **bare**: ``av.open`` → decode → ``AudioResampler`` (flt, stereo, 48 kHz) → cut into 960-
  sample frames → ``libopus`` encode, in one loop.

The process's CPU time (every thread) per frame is measured for each, alternating ours/bare
``--rounds`` times so a change of the machine's load hits both; the ratio of the medians is
the figure (issue 17 target: ours within 15 % of bare).
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from audionode.config import EngineConfig
from audionode.media.pipeline import Pipeline
from audionode.playable import Playable
from bench import media

FRAME = 960


def ours(data: bytes, frames: int) -> float:
    """CPU seconds per frame of a Pipeline making ``frames`` frames."""
    cfg = EngineConfig(complexity=10, bitrate=128000)
    pipeline = Pipeline(cfg)
    pipeline.start()
    cpu0 = time.process_time()
    pipeline.play(Playable.from_bytes(data), 1)
    made = 0
    while made < frames:
        if pipeline.buffer.pop() is None:
            time.sleep(0.0005)
        else:
            made += 1
    cpu = time.process_time() - cpu0
    pipeline.close()
    return cpu / frames


def bare(data: bytes, frames: int) -> float:
    """CPU seconds per frame of the bare decode + resample + encode loop."""
    cpu0 = time.process_time()
    enc = av.CodecContext.create("libopus", "w")
    assert isinstance(enc, av.AudioCodecContext)
    enc.sample_rate, enc.layout, enc.format = 48000, "stereo", "flt"
    enc.bit_rate = 128000
    enc.options = {"application": "audio", "compression_level": "10"}
    resampler = av.AudioResampler(format="flt", layout="stereo", rate=48000)
    pending = np.zeros((0, 2), dtype=np.float32)
    made = pts = 0
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                pcm = out.to_ndarray().reshape(-1, 2)
                pending = np.concatenate([pending, pcm])
                while len(pending) >= FRAME and made < frames:
                    chunk = np.ascontiguousarray(pending[:FRAME]).reshape(1, -1)
                    pending = pending[FRAME:]
                    f = av.AudioFrame.from_ndarray(chunk, format="flt", layout="stereo")
                    f.sample_rate, f.pts = 48000, pts
                    pts += FRAME
                    for packet in enc.encode(f):
                        bytes(packet)
                    made += 1
            if made >= frames:
                break
    return (time.process_time() - cpu0) / made


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="audio per measurement")
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    frames = int(a.seconds / 0.02)
    with tempfile.TemporaryDirectory() as tmp:
        data = media.mp3(Path(tmp) / "a.mp3", a.seconds + 5).read_bytes()
    ours(data, 100), bare(data, 100)  # warm both (imports, first allocations)
    mine, theirs = [], []
    for _ in range(a.rounds):
        mine.append(ours(data, frames))
        theirs.append(bare(data, frames))
        print(f"  ours {mine[-1] * 1e6:.1f} us/frame, bare {theirs[-1] * 1e6:.1f} us/frame")
    m, t = statistics.median(mine), statistics.median(theirs)
    print(
        f"transcode MP3 44.1 kHz -> opus 48 kHz c10 128k, {frames} frames x {a.rounds}: "
        f"ours {m * 1e6:.1f} us/frame, bare {t * 1e6:.1f} us/frame, ours/bare {m / t:.3f}"
    )


if __name__ == "__main__":
    main()
