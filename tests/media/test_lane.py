"""The passthrough lane (media/lane.py): a pure passthrough track's packets go to the popper
straight from its reader, and every control change, position event, NextWanted, gapless join
and crossfade behaves as on the normal path."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from audionode import native
from audionode.media.events import NextWanted, Position, TrackStarted
from audionode.media.frames import Frame
from audionode.media.lane import Lane
from audionode.media.pipeline import Pipeline
from audionode.sources.api import Playable
from tests.media.mediafiles import (
    Recorder,
    band_level,
    decode_opus,
    demuxed_packets,
    frame_levels,
    tone,
    write_media,
)


@pytest.fixture(scope="module")
def long_opus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 s of 440 Hz then 880 Hz (4 s each), Ogg/Opus."""
    path = tmp_path_factory.mktemp("lane") / "long8.opus"
    write_media(path, np.concatenate([tone([440], 4.0), tone([880], 4.0)]), "opus")
    return path


def file(path: Path) -> Playable:
    return Playable.from_bytes(path.read_bytes())


def steady(frames: list[Frame]) -> bool:
    """Positions advance by one frame (20 ms, rounded) after the first, which the encoder's
    pre-skip shortens."""
    pos = [f.position_ms for f in frames]
    return pos[0] == 0 and all(b - a in (19, 20, 21) for a, b in pairwise(pos[1:]))


def open_lane(pipeline: Pipeline) -> Lane:
    lane = pipeline.buffer.lane
    assert isinstance(lane, Lane) and lane.open, "the lane did not open"
    return lane


@pytest.fixture(params=["native demux", "pyav demux"])
def demux(request: pytest.FixtureRequest) -> Iterator[str]:
    """The lane with either demuxer (decision 0019): the native one when built, and PyAV."""
    native.configure(request.param == "native demux")
    try:
        yield request.param
    finally:
        native.configure(True)


def test_a_plain_passthrough_track_plays_by_the_lane_byte_for_byte(
    long_opus: Path, pipeline: Pipeline, rec: Recorder, demux: str
) -> None:
    pipeline.play(file(long_opus), 1)
    rec.run_until(lambda _e: len(rec.frames) >= 10, timeout=5)
    open_lane(pipeline)
    # the lane's packets are the reader's, not made frames: ready to pop, not counted
    assert pipeline.buffer.ready() and len(pipeline.buffer) == 0
    frames = rec.until_ended(1)
    assert [f.opus for f in frames] == demuxed_packets(long_opus)
    assert steady(frames)
    assert {f.track for f in frames} == {1}


def test_a_command_closes_the_lane_at_once_and_the_next_frame_has_it(
    long_opus: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    source = demuxed_packets(long_opus)
    pipeline.play(file(long_opus), 1)
    rec.run_until(lambda _e: len(rec.frames) >= 20, timeout=5)
    lane = open_lane(pipeline)
    before = len(rec.frames)
    pipeline.set_volume(0.2)
    assert not lane.open  # closed by the call itself, before the producer's turn
    rec.run_until(lambda _e: len(rec.frames) >= before + 10, timeout=5, pace=0.005)
    assert pipeline.buffer.lane is None
    # every frame before the call is the source's packet; the first one after it is quieter
    assert [f.opus for f in rec.frames[:before]] == source[:before]
    levels = frame_levels(decode_opus(rec.frames))
    reference = float(np.mean(levels[5:before]))
    assert levels[before + 1] < 0.5 * reference, (levels[before - 2 : before + 3], reference)
    assert steady(rec.frames)
    pipeline.set_volume(1.0)  # back to passthrough: the lane opens again
    rec.run_until(lambda _e: len(rec.frames) >= before + 30, timeout=5, pace=0.005)
    open_lane(pipeline)
    tail = rec.until_ended(1)[before + 30 :]
    assert [f.opus for f in tail] == source[before + 30 :]


def test_pause_stops_the_lane_at_the_next_pop_and_resume_loses_nothing(
    long_opus: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    pipeline.play(file(long_opus), 1)
    rec.run_until(lambda _e: len(rec.frames) >= 10, timeout=5)
    open_lane(pipeline)
    pipeline.pause()
    assert pipeline.buffer.pop() is None
    pipeline.resume()
    frames = rec.until_ended(1)
    assert [f.opus for f in frames] == demuxed_packets(long_opus)


def test_commands_racing_the_popper_never_lose_or_reorder_a_packet(
    long_opus: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    # volume 1.0 is a command that changes nothing: each one closes the lane, the producer
    # makes frames on the normal path, and the lane opens again, while packets are popped
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            pipeline.set_volume(1.0)
            stop.wait(0.002)

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        pipeline.play(file(long_opus), 1)
        frames = rec.until_ended(1)
    finally:
        stop.set()
        thread.join()
    assert [f.opus for f in frames] == demuxed_packets(long_opus)
    assert steady(frames)


def test_position_events_and_next_wanted_keep_their_timing(
    long_opus: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    pipeline.play(file(long_opus), 1)
    rec.run_until(lambda _e: len(rec.frames) >= 10, timeout=5, pace=0.003)
    open_lane(pipeline)
    frames = rec.until_ended(1, pace=0.003)
    reports = [e for e in rec.seen if isinstance(e, Position) and e.track == 1]
    positions = [e.position_ms for e in reports]
    # a report that waited for its turn says how long, in the lane's frames (20 ms each)
    assert all(e.age_ms % 20 == 0 and 0 <= e.age_ms < 1000 for e in reports), reports
    # the frames the normal path names: the first, then each that is a second past the last
    expected = [frames[0].position_ms]
    for f in frames:
        if f.position_ms - expected[-1] >= 1000:
            expected.append(f.position_ms)
    assert positions == expected and len(positions) == 8, (positions, expected)
    wanted = [e for e in rec.seen if isinstance(e, NextWanted)]
    # preload 5 s: asked for when 5 s are left (at the producer's next turn: popped here 6.7
    # times faster than the sender does, that may be a few frames later)
    assert len(wanted) == 1 and 4600 <= wanted[0].remaining_ms <= 5000, wanted


def test_gapless_join_and_crossfade_after_a_lane(
    long_opus: Path, media_dir: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    source = demuxed_packets(long_opus)
    pipeline.play(file(long_opus), 1)
    pipeline.queue_next(file(media_dir / "b660.opus"), 2)
    rec.run_until(lambda _e: len(rec.frames) >= 10, timeout=5)
    open_lane(pipeline)
    frames = rec.until_ended(2)
    assert [f.opus for f in frames] == source + demuxed_packets(media_dir / "b660.opus")

    rec.frames.clear()
    pipeline.set_crossfade(0.4)
    pipeline.play(file(long_opus), 3)
    pipeline.queue_next(file(media_dir / "b660.opus"), 4)
    rec.run_until(lambda evs: sum(isinstance(e, TrackStarted) for e in evs) == 4, timeout=5)
    frames = rec.until_ended(4)
    # 8 s + 1 s overlapping by 0.4 s; untouched until the fade begins
    whole = len(source) + len(demuxed_packets(media_dir / "b660.opus"))
    assert abs(len(frames) - (whole - 20)) <= 1, (len(frames), whole)
    first = [f.track for f in frames].index(4)
    assert abs(first - (len(source) - 20)) <= 1, (first, len(source))
    assert [f.opus for f in frames[: first - 2]] == source[: first - 2]
    pcm = decode_opus(frames)
    fade = pcm[(first + 5) * 960 : (first + 15) * 960]
    assert band_level(fade, 880) > 0.005 and band_level(fade, 660) > 0.005
