"""CPU per frame of the media side alone: N pipelines producing, one thread popping like the
sender (one frame per pipeline every 20 ms, absolute deadlines), no network, no crypto.

    python -m bench.pipeline_micro [--players 300] [--mode passthrough|transcode]
                                   [--seconds 10] [--buffer-frames 3] [--no-hold]

Prints the CPU of every thread of the process per frame made (the popping thread included:
it stands in for the sender's ``pop``), the frames that were not ready when popped (nulled),
and the thread breakdown, so a change to the producer, the readers or the frame buffer is
measured apart from the sender's sealing and sending (``bench/sender_micro.py``). Like the
sender (``Sender(batch=producer)``), the popping thread holds the producer's wake-ups during
its tick and hands them over at the end (``--no-hold``: every pop wakes the producer at once,
as this benchmark did before the passthrough lane).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from audionode.config import EngineConfig
from audionode.media.pipeline import Pipeline
from audionode.media.producer import shared
from audionode.sources.api import Playable
from bench import media


def thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds of every thread of this process, by native id (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--players", type=int, default=300)
    p.add_argument("--mode", choices=("passthrough", "transcode"), default="passthrough")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--buffer-frames", type=int, default=3)
    p.add_argument("--no-hold", action="store_true")
    a = p.parse_args()
    length = a.seconds + a.warmup + 5
    with tempfile.TemporaryDirectory() as tmp:
        if a.mode == "passthrough":
            data = media.ogg_opus(Path(tmp) / "a.ogg", length).read_bytes()
        else:
            data = media.mp3(Path(tmp) / "a.mp3", length).read_bytes()
    cfg = EngineConfig(buffer_frames=a.buffer_frames, complexity=10, bitrate=128000)
    pipelines = [Pipeline(cfg) for _ in range(a.players)]
    for i, pipeline in enumerate(pipelines):
        pipeline.start()
        pipeline.play(Playable.from_bytes(data), i + 1)
    ticks = int((a.seconds + a.warmup) / 0.02)
    producer = shared()
    popped = nulled = 0
    deadline = time.monotonic()
    for tick in range(ticks):
        if tick == int(a.warmup / 0.02):
            cpu0, popped, nulled = thread_cpu(), 0, 0
        if not a.no_hold:
            producer.hold()
        for pipeline in pipelines:
            if pipeline.buffer.pop() is None:
                nulled += 1
            else:
                popped += 1
        if not a.no_hold:
            producer.release()
        deadline += 0.02
        delay = deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    cpu1 = thread_cpu()
    for pipeline in pipelines:
        pipeline.close()
    names = {t.native_id: t.name for t in threading.enumerate()}
    by_thread = {
        names.get(tid, name): cpu - cpu0.get(tid, (name, 0.0))[1]
        for tid, (name, cpu) in cpu1.items()
    }
    total = sum(by_thread.values())
    print(
        f"{a.players} {a.mode} pipelines, buffer {a.buffer_frames} frames, {a.seconds:g} s: "
        f"{total / a.seconds:.3f} cores, {total / max(1, popped) * 1e6:.1f} us CPU per frame; "
        f"popped {popped}, nulled {nulled} ({100 * nulled / max(1, popped + nulled):.2f} %)"
    )
    for name, cpu in sorted(by_thread.items(), key=lambda kv: -kv[1]):
        if cpu > 0.005:
            print(f"  {name:>12}: {cpu / a.seconds:.3f} cores, {cpu / max(1, popped) * 1e6:.1f} us")


if __name__ == "__main__":
    main()
