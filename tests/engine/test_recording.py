"""A recording without sockets (issue 15 item 3): ticks of per-user PCM in, Ogg/Opus files out on
the writer thread, the timeline kept, the bounds enforced, the receive side never waiting."""

from __future__ import annotations

import queue
import time
from pathlib import Path

import av
import numpy as np

from audionode.config import RecordingConfig
from audionode.engine import messages as m
from audionode.engine.recording import QUEUE_TICKS, Recording
from tests.voiceserver.audio import dominant_frequency

FRAME = 960


def sine(freq: float, ticks: int, start: int = 0) -> list[np.ndarray]:
    t = (np.arange(ticks * FRAME) + start * FRAME) / 48000
    mono = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    stereo = np.repeat(mono[:, None], 2, axis=1)
    return [stereo[i * FRAME : (i + 1) * FRAME] for i in range(ticks)]


def run(
    rec: Recording, reports: queue.Queue[m.Event], seen: list[m.Event] | None = None
) -> m.RecordingStopped:
    while True:
        event = reports.get(timeout=10)
        if seen is not None:
            seen.append(event)
        if isinstance(event, m.RecordingStopped):
            return event


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as f:
        return np.concatenate([fr.to_ndarray()[0] for fr in f.decode(audio=0)])


def test_files_keep_the_recordings_clock(tmp_path: Path) -> None:
    reports: queue.Queue[m.Event] = queue.Queue()
    rec = Recording(1, "r1", str(tmp_path / "r1"), RecordingConfig(), reports.put)
    rec.start()
    a, b = sine(440, 100), sine(660, 50)
    for i in range(100):
        rec.add(10, a[i])
        if i >= 50:  # user 20 is first heard half a second in
            rec.add(20, b[i - 50])
        rec.tick()
    rec.stop("stopped")
    seen: list[m.Event] = []
    stopped = run(rec, reports, seen)
    assert seen[0] == m.RecordingStarted(player=1, recording="r1", directory=str(tmp_path / "r1"))
    files = {f.name: f for f in stopped.files}
    assert stopped.reason == "stopped" and set(files) == {"mixed.ogg", "user-10.ogg", "user-20.ogg"}
    assert (files["user-20.ogg"].start, files["user-20.ogg"].seconds) == (1.0, 1.0)
    assert files["mixed.ogg"].seconds == files["user-10.ogg"].seconds == 2.0
    assert abs(dominant_frequency(decode(tmp_path / "r1" / "user-20.ogg")) - 660) < 3
    mixed = decode(tmp_path / "r1" / "mixed.ogg")
    assert abs(dominant_frequency(mixed[:40000]) - 440) < 3


def test_the_byte_bound_stops_it_and_the_receive_side_never_waits(tmp_path: Path) -> None:
    reports: queue.Queue[m.Event] = queue.Queue()
    cfg = RecordingConfig(max_bytes=1 << 16, bitrate=128000)
    rec = Recording(1, "r2", str(tmp_path / "r2"), cfg, reports.put)
    rec.start()
    noise = np.random.default_rng(1).uniform(-0.5, 0.5, (FRAME, 2)).astype(np.float32)
    began = time.perf_counter()
    ticks = 0
    while not rec.done and ticks < 5000:
        rec.add(10, noise)
        rec.tick()
        ticks += 1
        if ticks % QUEUE_TICKS == 0:
            time.sleep(0.05)  # let the writer catch up rather than overrun
    per_tick = (time.perf_counter() - began) / ticks
    stopped = run(rec, reports)
    assert stopped.reason == "max_bytes"
    assert sum(f.bytes for f in stopped.files) >= 1 << 16
    assert per_tick < 0.002, "add + tick only queue the tick"


def test_a_folder_that_cannot_be_made_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    reports: queue.Queue[m.Event] = queue.Queue()
    rec = Recording(1, "r3", str(tmp_path / "taken"), RecordingConfig(), reports.put)
    rec.start()
    stopped = run(rec, reports)
    assert stopped.reason == "error" and stopped.message and stopped.files == []
    assert rec.done
