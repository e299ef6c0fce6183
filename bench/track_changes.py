"""Memory across track changes: N pipelines in this process, each playing a short local
Ogg/Opus track and queuing it again whenever the pipeline asks for its next track; the
process's RSS after every round (every pipeline started one more track).

    python -m bench.track_changes [--players 150] [--track-seconds 3] [--rounds 40]

Frames are popped as fast as the pipelines make them (no 20 ms pacing, no network), so 40
rounds take seconds. A per-track leak grows the RSS by the same amount every round; the
allocator's warm-up levels off after a few rounds (docs/PERFORMANCE.md, "Soak").
"""

from __future__ import annotations

import argparse
import queue
import tempfile
import time
from pathlib import Path

from audionode.config import EngineConfig
from audionode.media.events import NextWanted, PipelineEvent, TrackStarted
from audionode.media.pipeline import Pipeline
from audionode.playable import Playable
from bench import media


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--players", type=int, default=150)
    p.add_argument("--track-seconds", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=40)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        track = str(media.ogg_opus(Path(tmp) / "t.ogg", args.track_seconds))
        events: queue.SimpleQueue[tuple[int, PipelineEvent]] = queue.SimpleQueue()
        pipelines = []
        for i in range(args.players):
            pipeline = Pipeline(EngineConfig(), on_event=lambda e, i=i: events.put((i, e)))
            pipeline.start()
            pipeline.play(Playable.from_url(track), track=1)
            pipelines.append(pipeline)
        started, serial, t0 = 0, 2, time.monotonic()
        while started < args.players * args.rounds:
            for pipeline in pipelines:
                pipeline.buffer.pop()
            while True:
                try:
                    i, event = events.get_nowait()
                except queue.Empty:
                    break
                if isinstance(event, NextWanted):
                    pipelines[i].queue_next(Playable.from_url(track), track=serial)
                    serial += 1
                elif isinstance(event, TrackStarted):
                    started += 1
                    if started % args.players == 0:
                        print(
                            f"round {started // args.players}: RSS {rss_mb():.1f} MB"
                            f" ({time.monotonic() - t0:.1f} s)",
                            flush=True,
                        )
            time.sleep(0.001)
        for pipeline in pipelines:
            pipeline.close()


if __name__ == "__main__":
    main()
