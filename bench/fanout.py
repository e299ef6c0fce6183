"""Fan-out cost, media side: one live source to N players through one shared encode
(``media/fanout.py``) against N passthrough pipelines, in the same run.

    python -m bench.fanout [--players 200] [--seconds 10]

Both cases pop one frame per player every 20 ms (absolute deadlines, like the sender) and
count the process's CPU (every thread) per frame popped; no network and no crypto (those are
per connection either way: ``bench/sender_micro.py``). The shared case transcodes (MP3 →
opus, complexity 10) once for all players; the passthrough case forwards Ogg/Opus packets,
one pipeline per player.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from audionode.config import EngineConfig
from audionode.media.fanout import SharedEncode
from audionode.media.frames import Frame
from audionode.media.pipeline import Pipeline
from audionode.playable import Playable
from bench import media


def paced(
    pops: list[Callable[[], Frame | None]], seconds: float, warmup: float
) -> tuple[float, int]:
    """CPU seconds per popped frame after ``warmup``, and the frames not ready."""
    ticks = int((seconds + warmup) / 0.02)
    popped = nulled = 0
    cpu0 = time.process_time()
    deadline = time.monotonic()
    for tick in range(ticks):
        if tick == int(warmup / 0.02):
            cpu0, popped, nulled = time.process_time(), 0, 0
        for pop in pops:
            if pop() is None:
                nulled += 1
            else:
                popped += 1
        deadline += 0.02
        delay = deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return (time.process_time() - cpu0) / max(1, popped), nulled


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--players", type=int, default=200)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    a = p.parse_args()
    length = a.seconds + a.warmup + 5
    with tempfile.TemporaryDirectory() as tmp:
        ogg = media.ogg_opus(Path(tmp) / "a.ogg", length).read_bytes()
        mp3 = media.mp3(Path(tmp) / "a.mp3", length).read_bytes()
    cfg = EngineConfig(complexity=10, bitrate=128000)

    shared_pipe = Pipeline(cfg)
    shared_pipe.start()
    source = Playable.from_bytes(mp3)
    encode = SharedEncode(("bench",), source, shared_pipe)
    shared_pipe.play(source, 1)
    tees = [encode.join(i, i + 1) for i in range(a.players)]
    shared_cpu, shared_nulled = paced([t.pop for t in tees], a.seconds, a.warmup)
    for t in tees:
        t.close()

    pipes = [Pipeline(cfg) for _ in range(a.players)]
    for i, pipe in enumerate(pipes):
        pipe.start()
        pipe.play(Playable.from_bytes(ogg), i + 1)
    pass_cpu, pass_nulled = paced([pp.buffer.pop for pp in pipes], a.seconds, a.warmup)
    for pipe in pipes:
        pipe.close()

    print(
        f"{a.players} players, {a.seconds:g} s: shared transcode {shared_cpu * 1e6:.1f} us CPU "
        f"per player-frame (nulled {shared_nulled}); passthrough pipelines "
        f"{pass_cpu * 1e6:.1f} us (nulled {pass_nulled}); shared / passthrough "
        f"{shared_cpu / pass_cpu:.3f}"
    )


if __name__ == "__main__":
    main()
