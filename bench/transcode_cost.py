"""Transcode cost: our pipeline against a bare PyAV loop doing the same work, same run.

    python -m bench.transcode_cost [--seconds 60] [--rounds 5] [--poll 0.2]

All turn the same MP3 (44.1 kHz stereo, 128 kbit/s, made by ``bench/media.py``) into 20 ms
libopus frames at 48 kHz, complexity 10, 128 kbit/s, with the same libraries (PyAV's libav and
libopus):

- **ours**: a ``Pipeline`` (reader turns and producer turns on the shared producer thread,
  mixer, gain, frame buffer) playing the track from memory, its buffer popped as fast as frames
  come (no 20 ms pacing, so the figure is CPU per frame, not wall time);
- **bare**: ``av.open`` → decode → ``AudioResampler`` (flt, stereo, 48 kHz) → cut into 960-
  sample frames with numpy → ``libopus`` encode, in one loop (the loop issue 17 names);
- **lean**: the same with the resampler cutting the 960-sample frames itself
  (``frame_size=960``) and its frames handed to the encoder as they are: no numpy at all, the
  least Python a PyAV transcode can have. Printed for reference; the target is against bare.

What is counted, so that the comparison is fair:

- CPU time of the whole process (every thread) while the frames are made, **less the CPU of
  the thread popping our buffer** (this bench's stand-in for the sender, which the bare loop
  does not have; measured and printed apart as "consumer"). The producer's side of the frame
  buffer (the wake-ups a pop causes) stays counted.
- A consumer that keeps up: it polls every ``--poll`` ms (0.2) when the buffer is empty. The
  buffer holds 3 frames, about 0.75 ms of work; polled more slowly (0.5 ms, this bench's first
  version) it is often full, and the producer then sleeps and is woken once per refill, a cost
  the bare loop, which never waits, does not pay (10-50 µs per frame more in runs on this
  VM).
- The same amount of **decoding**: our reader decodes ``engine.decode_ahead`` (3 s) ahead of
  the frames the mixer took, so when the last frame is popped it has decoded more than the
  bare loop would have. The bare and lean loops therefore go on decoding and resampling
  (without encoding) until they have decoded as many samples as our reader did.

Each is divided by the frames encoded. Ours, bare and lean alternate ``--rounds`` times so a
change of the machine's load hits all of them; the ratio of the medians is the figure (issue
17 target: ours within 15 % of bare), and the median of each round's own ratio (ours against
the bare loop run right after it) is printed beside it, as it cancels slow changes of load.
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
RATE = 48000


def ours(data: bytes, frames: int, poll: float = 0.0002) -> tuple[float, float, int]:
    """(CPU seconds per frame, the popping thread's CPU seconds per frame, samples decoded)
    of a Pipeline making ``frames`` frames, its buffer polled every ``poll`` s when empty."""
    cfg = EngineConfig(complexity=10, bitrate=128000)
    pipeline = Pipeline(cfg)
    pipeline.start()
    cpu0, own0 = time.process_time(), time.thread_time()
    pipeline.play(Playable.from_bytes(data), 1)
    made = 0
    while made < frames:
        if pipeline.buffer.pop() is None:
            time.sleep(poll)
        else:
            made += 1
    cpu, own = time.process_time() - cpu0, time.thread_time() - own0
    deck = pipeline._mixer.current
    assert deck is not None
    decoded = deck.reader.decoded
    pipeline.close()
    return (cpu - own) / frames, own / frames, decoded


def _encoder() -> av.AudioCodecContext:
    enc = av.CodecContext.create("libopus", "w")
    assert isinstance(enc, av.AudioCodecContext)
    enc.sample_rate, enc.layout, enc.format = RATE, "stereo", "flt"
    enc.bit_rate = 128000
    enc.options = {"application": "audio", "compression_level": "10"}
    return enc


def bare(data: bytes, frames: int, decode: int) -> float:
    """CPU seconds per frame of the bare loop encoding ``frames`` frames and decoding at
    least ``decode`` samples (48 kHz)."""
    cpu0 = time.process_time()
    enc = _encoder()
    resampler = av.AudioResampler(format="flt", layout="stereo", rate=RATE)
    pending = np.zeros((0, 2), dtype=np.float32)
    made = pts = decoded = 0
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                decoded += out.samples
                if made >= frames:
                    continue
                pcm = out.to_ndarray().reshape(-1, 2)
                pending = np.concatenate([pending, pcm])
                while len(pending) >= FRAME and made < frames:
                    chunk = np.ascontiguousarray(pending[:FRAME]).reshape(1, -1)
                    pending = pending[FRAME:]
                    f = av.AudioFrame.from_ndarray(chunk, format="flt", layout="stereo")
                    f.sample_rate, f.pts = RATE, pts
                    pts += FRAME
                    for packet in enc.encode(f):
                        bytes(packet)
                    made += 1
            if made >= frames and decoded >= decode:
                break
    return (time.process_time() - cpu0) / made


def lean(data: bytes, frames: int, decode: int) -> float:
    """CPU seconds per frame of the lean loop (the resampler cuts the frames)."""
    cpu0 = time.process_time()
    enc = _encoder()
    resampler = av.AudioResampler(format="flt", layout="stereo", rate=RATE, frame_size=FRAME)
    made = decoded = 0
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                decoded += out.samples
                if made < frames:
                    for packet in enc.encode(out):
                        bytes(packet)
                    made += 1
            if made >= frames and decoded >= decode:
                break
    return (time.process_time() - cpu0) / made


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="audio per measurement")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--poll", type=float, default=0.2, help="ms between polls of an empty buffer")
    a = p.parse_args()
    frames = int(a.seconds / 0.02)
    with tempfile.TemporaryDirectory() as tmp:
        data = media.mp3(Path(tmp) / "a.mp3", a.seconds + 10).read_bytes()
    ours(data, 100), bare(data, 100, 0), lean(data, 100, 0)  # warm (imports, allocations)
    mine, consumer, theirs, least = [], [], [], []
    for _ in range(a.rounds):
        cpu, own, decoded = ours(data, frames, a.poll / 1000)
        mine.append(cpu)
        consumer.append(own)
        theirs.append(bare(data, frames, decoded))
        least.append(lean(data, frames, decoded))
        print(
            f"  ours {cpu * 1e6:.1f} us/frame (+ consumer {own * 1e6:.1f}), "
            f"bare {theirs[-1] * 1e6:.1f}, lean {least[-1] * 1e6:.1f}; "
            f"decoded {decoded / RATE - a.seconds:.2f} s past the last frame"
        )
    m, t, lo = statistics.median(mine), statistics.median(theirs), statistics.median(least)
    paired = statistics.median(x / y for x, y in zip(mine, theirs, strict=True))
    print(
        f"transcode MP3 44.1 kHz -> opus 48 kHz c10 128k, {frames} frames x {a.rounds}, "
        f"poll {a.poll:g} ms: ours {m * 1e6:.1f} us/frame (consumer "
        f"{statistics.median(consumer) * 1e6:.1f} apart), bare {t * 1e6:.1f}, lean "
        f"{lo * 1e6:.1f}; ours/bare {m / t:.3f} (per round {paired:.3f}), ours/lean {m / lo:.3f}"
    )


if __name__ == "__main__":
    main()
