"""The pipeline end to end: real files in, opus frames out, decoded and measured."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import pytest

from audionode.errors import BadRequest, Conflict
from audionode.media.events import NextWanted, TrackFailed, TrackFinished, TrackStarted
from audionode.media.pipeline import Pipeline
from audionode.media.reader import TrackReader
from audionode.netpolicy import InputPolicy
from audionode.sources.api import Playable
from tests.media.mediafiles import (
    FORMATS,
    Recorder,
    band_level,
    decode_opus,
    demuxed_packets,
    frame_levels,
    peak_freq,
    rms,
    tone,
    write_media,
)


def file(path: Path) -> Playable:
    return Playable.from_bytes(path.read_bytes())


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_every_format_plays_its_full_length_at_the_right_pitch(
    kind: str, media_dir: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    pipeline.play(file(media_dir / f"a440.{kind}"), 7)
    frames = rec.until_ended(7)
    pcm = decode_opus(frames)
    assert {f.track for f in frames} == {7}
    # 1 s of audio; encoders pad a little (mp3/aac priming), never a whole extra 60 ms
    assert 49 <= len(frames) <= 53, len(frames)
    assert abs(peak_freq(pcm[4800:-4800]) - 440) < 5
    assert abs(rms(pcm[4800:-4800]) - 0.3 / 2**0.5) < 0.03
    started = [e for e in rec.seen if isinstance(e, TrackStarted)]
    assert started and started[0].passthrough == (kind in ("opus", "webm"))
    assert started[0].duration_ms is not None and abs(started[0].duration_ms - 1000) < 60
    finished = [e for e in rec.seen if isinstance(e, TrackFinished)]
    assert finished[0].reason == "finished"


@pytest.mark.parametrize("kind", ["opus", "webm"])
def test_opus_passthrough_is_byte_identical(
    kind: str, media_dir: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    path = media_dir / f"a440.{kind}"
    pipeline.play(file(path), 1)
    frames = rec.until_ended(1)
    assert [f.opus for f in frames] == demuxed_packets(path)
    positions = [f.position_ms for f in frames]
    assert positions == sorted(positions) and positions[-1] >= 960


def test_volume_switches_passthrough_to_decoding_and_back(
    media_dir: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    path = media_dir / "long440.opus"
    source = demuxed_packets(path)
    pipeline.play(file(path), 1)
    rec.run_until(lambda _e: len(rec.frames) >= 30, timeout=5)
    pipeline.set_volume(0.25)
    rec.run_until(lambda _e: len(rec.frames) >= 80, timeout=5)
    pipeline.set_volume(1.0)
    frames = rec.until_ended(1)
    by_pos = {round(f.position_ms / 20): f.opus for f in frames}
    src_by_pos = {i: p for i, p in enumerate(source)}
    identical = [i for i, data in by_pos.items() if src_by_pos.get(i) == data]
    changed = [i for i in by_pos if src_by_pos.get(i) != by_pos[i]]
    # the start and the end are forwarded untouched, the middle was re-encoded
    assert min(identical) == 0 and max(identical) >= len(source) - 2
    assert min(changed) >= 30 and max(changed) <= 90
    levels = frame_levels(decode_opus(frames))
    assert max(levels[45:70]) < 0.4 * min(levels[5:25])


def test_gapless_join_has_no_silent_frame(
    media_dir: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    pipeline.play(file(media_dir / "odd440.wav"), 1)
    pipeline.queue_next(file(media_dir / "odd660.wav"), 2)
    frames = rec.until_ended(2)
    levels = frame_levels(decode_opus(frames))
    # 0.517 s + 0.503 s = 1.020 s = 51 frames, without a gap or an extra frame
    assert len(frames) == 51
    assert min(levels[1:-1]) > 0.15, min(levels)
    tracks = [f.track for f in frames]
    switch = tracks.index(2)
    assert set(tracks[:switch]) == {1} and set(tracks[switch:]) == {2}
    assert switch == 26  # frame 25 holds the end of track 1 and the start of track 2
    assert frames[switch].position_ms < 20


def test_play_after_the_end_keeps_the_last_frames_of_the_finished_track(
    media_dir: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    # A player plays the next track only once it heard TrackFinished: by then the finished
    # track's last frames sit in the buffer, and they must still be sent (issue 11 item 9).
    pipeline.play(file(media_dir / "odd440.wav"), 1)
    rec.run_until(lambda evs: any(isinstance(e, TrackFinished) for e in evs), pace=0.005)
    time.sleep(0.05)
    assert len(pipeline.buffer) >= 2  # the finished track's last frames, not yet sent
    pipeline.play(file(media_dir / "odd660.wav"), 2)
    frames = rec.until_ended(2)
    tracks = [f.track for f in frames]
    # 0.517 s is 25.85 frames: all 26 of them, the last padded, then the 26 of 0.503 s
    assert tracks == [1] * 26 + [2] * 26
    assert [e.reason for e in rec.seen if isinstance(e, TrackFinished)] == ["finished"] * 2


def test_gapless_passthrough_join(media_dir: Path, pipeline: Pipeline, rec: Recorder) -> None:
    pipeline.play(file(media_dir / "a440.opus"), 1)
    pipeline.queue_next(file(media_dir / "b660.opus"), 2)
    frames = rec.until_ended(2)
    expected = demuxed_packets(media_dir / "a440.opus") + demuxed_packets(media_dir / "b660.opus")
    assert [f.opus for f in frames] == expected


def test_crossfade_overlaps_by_the_configured_seconds(
    media_dir: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    pipeline.set_crossfade(0.4)
    pipeline.pause()  # let both tracks open before the first frame is made
    pipeline.play(file(media_dir / "a440.wav"), 1)
    pipeline.queue_next(file(media_dir / "b660.wav"), 2)
    rec.run_until(lambda evs: sum(isinstance(e, TrackStarted) for e in evs) == 2)
    pipeline.resume()
    frames = rec.until_ended(2)
    pcm = decode_opus(frames)
    # 1 s + 1 s overlapping by 0.4 s
    assert abs(len(frames) - 80) <= 1, len(frames)
    blocks = [pcm[i : i + 960] for i in range(0, len(pcm) - 959, 960)]
    both = [
        i for i, b in enumerate(blocks) if band_level(b, 440) > 0.005 and band_level(b, 660) > 0.005
    ]
    overlap_s = (max(both) - min(both) + 1) * 0.02
    assert 0.32 <= overlap_s <= 0.42, overlap_s
    assert 29 <= min(both) <= 31
    assert min(frame_levels(pcm)[1:-1]) > 0.1
    assert frames[min(both)].track == 2


@pytest.mark.parametrize("name", ["long440.opus", "long440.wav"])
def test_volume_change_is_heard_within_100_ms(
    media_dir: Path, pipeline: Pipeline, rec: Recorder, name: str
) -> None:
    """Pop frames at the sender's pace, change the volume, and find the first quieter frame.
    From passthrough, and from decoded frames handed to the encoder as they are (issue 17)."""
    pipeline.play(file(media_dir / name), 1)
    rec.run_until(lambda _e: len(rec.frames) >= 25, timeout=5, pace=0.02)
    before = len(rec.frames)
    pipeline.set_volume(0.2)
    rec.run_until(lambda _e: len(rec.frames) >= before + 15, timeout=5, pace=0.02)
    pipeline.stop()
    levels = frame_levels(decode_opus(rec.frames))
    reference = sum(levels[10:before]) / (before - 10)
    first_quiet = next(i for i in range(before, len(levels)) if levels[i] < 0.8 * reference)
    latency_frames = first_quiet - before + 1
    assert latency_frames * 20 <= 100, f"change heard after {latency_frames} frames"
    assert max(levels[first_quiet + 2 : first_quiet + 10]) < 0.3 * reference


def test_seek_jumps_to_the_requested_content(
    media_dir: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    for track, name in ((1, "halves.wav"), (2, "halves.opus")):
        pipeline.play(file(media_dir / name), track)
        rec.run_until(lambda _e: len(rec.frames) >= 10, timeout=5)
        pipeline.seek(1500)
        rec.frames.clear()
        frames = rec.until_ended(track)
        assert 1480 <= frames[0].position_ms <= 1520, frames[0].position_ms
        assert 23 <= len(frames) <= 27
        assert abs(peak_freq(decode_opus(frames)[960:]) - 880) < 5
        rec.frames.clear()


def test_start_and_end_positions(media_dir: Path, pipeline: Pipeline, rec: Recorder) -> None:
    pipeline.play(file(media_dir / "halves.wav"), 1, start_ms=1200, end_ms=1600)
    frames = rec.until_ended(1)
    assert len(frames) == 20
    assert frames[0].position_ms == 1200
    assert abs(peak_freq(decode_opus(frames)[960:]) - 880) < 5


def test_pause_stops_production_and_resume_continues(
    media_dir: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    pipeline.play(file(media_dir / "a440.wav"), 1)
    rec.run_until(lambda _e: len(rec.frames) >= 5, timeout=5)
    pipeline.pause()
    assert pipeline.paused
    time.sleep(0.03)  # a frame being made when pause() was called may still arrive
    rec.run_until(lambda _e: True, timeout=2)  # whatever was buffered
    paused_at = len(rec.frames)
    time.sleep(0.1)
    assert pipeline.buffer.pop() is None
    pipeline.resume()
    frames = rec.until_ended(1)
    assert paused_at <= 9 and len(frames) == 50


def test_stop_skip_and_replace_report_their_reasons(
    media_dir: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    pipeline.play(file(media_dir / "long440.opus"), 1)
    rec.run_until(lambda _e: len(rec.frames) >= 3, timeout=5)
    pipeline.play(file(media_dir / "long440.opus"), 2)
    pipeline.queue_next(file(media_dir / "b660.wav"), 3)
    rec.run_until(lambda _e: any(f.track == 2 for f in rec.frames), timeout=5)
    pipeline.skip()
    rec.run_until(lambda _e: any(f.track == 3 for f in rec.frames), timeout=5)
    pipeline.stop()
    rec.run_until(lambda evs: sum(isinstance(e, TrackFinished) for e in evs) == 3, timeout=5)
    reasons = {e.track: e.reason for e in rec.seen if isinstance(e, TrackFinished)}
    assert reasons == {1: "replaced", 2: "skipped", 3: "stopped"}
    assert pipeline.buffer.pop() is None


def test_next_wanted_is_reported_before_the_end(
    media_dir: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    pipeline.play(file(media_dir / "a440.wav"), 1)
    rec.until_ended(1)
    wanted = [e for e in rec.seen if isinstance(e, NextWanted)]
    assert wanted and wanted[0].track == 1 and wanted[0].remaining_ms <= 1000


def test_bad_inputs_fail_the_track_and_playback_continues(
    media_dir: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    # Queued first: a local track fails within a producer turn or two, and a track queued
    # only after the current one ended waits for a skip (Pipeline.queue_next).
    pipeline.queue_next(file(media_dir / "a440.wav"), 2)
    pipeline.play(Playable.from_bytes(b"this is not audio" * 100), 1)
    frames = rec.until_ended(2)
    failed = [e for e in rec.seen if isinstance(e, TrackFailed)]
    assert failed[0].track == 1
    assert "Invalid data found when processing input" in failed[0].message
    assert len(frames) == 50 and {f.track for f in frames} == {2}


def test_unreachable_url_fails_with_a_clear_message(pipeline: Pipeline, rec: Recorder) -> None:
    loopback = InputPolicy(allow_private=True)  # the default policy refuses before connecting
    pipeline.play(Playable.from_url("http://127.0.0.1:9/nothing.mp3", policy=loopback), 1)
    rec.until_ended(1)
    failed = [e for e in rec.seen if isinstance(e, TrackFailed)]
    assert failed and failed[0].message.endswith(": could not connect to 127.0.0.1")


def test_corrupted_middle_of_a_file_does_not_crash(
    media_dir: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    data = bytearray((media_dir / "a440.mp3").read_bytes())
    mid = len(data) // 2
    data[mid : mid + 2000] = bytes(range(256)) * 7 + bytes(208)
    pipeline.play(Playable.from_bytes(bytes(data)), 1)
    pipeline.queue_next(file(media_dir / "b660.wav"), 2)
    frames = rec.until_ended(2)
    # the frame joining the two tracks counts as track 1's
    assert any(f.track == 1 for f in frames) and sum(f.track == 2 for f in frames) in (49, 50)


def test_invalid_control_input_is_refused(pipeline: Pipeline, media_dir: Path) -> None:
    with pytest.raises(Conflict, match="nothing is playing"):
        pipeline.seek(1000)
    with pytest.raises(BadRequest, match="volume"):
        pipeline.set_volume(10.5)
    pipeline.set_volume(10.0)  # Lavalink's 1000 %
    with pytest.raises(BadRequest, match="end position"):
        pipeline.play(file(media_dir / "a440.wav"), 1, start_ms=500, end_ms=100)
    with pytest.raises(BadRequest, match="crossfade"):
        pipeline.set_crossfade(-1)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_many_track_changes_do_not_grow_memory(
    tmp_path: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    # The soak's question: does a worker keep anything per track? 220 short tracks of three
    # kinds (passthrough Ogg, decoded MP3 and WAV) one after the other in one pipeline: the
    # process's RSS after the last 200 stays within a few MB of where it was after 20
    # (allocator warm-up: about 2 MB, then flat up to 1400 tracks).
    kinds = ("opus", "mp3", "wav")
    sources = {}
    for kind in kinds:
        write_media(tmp_path / f"short.{kind}", tone([440], 0.2), kind)
        sources[kind] = (tmp_path / f"short.{kind}").read_bytes()
    warm = 0.0
    for serial in range(1, 221):
        pipeline.play(Playable.from_bytes(sources[kinds[serial % 3]]), serial)
        rec.until_ended(serial)
        assert not any(isinstance(e, TrackFailed) for e in rec.seen), rec.seen
        rec.frames.clear()
        rec.seen.clear()
        if serial == 20:
            gc.collect()
            warm = _rss_mb()
    gc.collect()
    grown = _rss_mb() - warm
    print(f"RSS after 20 tracks {warm:.1f} MB, after 220 {warm + grown:.1f} MB")
    assert grown < 6.0, grown  # a container or reader kept per track would be tens of MB


def _readers_alive() -> int:
    return sum(isinstance(o, TrackReader) for o in gc.get_objects())


def test_a_finished_track_is_freed_without_the_cyclic_gc(
    tmp_path: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    # The engine runs the cyclic GC rarely (engine/gcpolicy.py): a finished track that only a
    # reference cycle frees keeps its reader, container and buffers until the next full
    # collection. In the soak that was +50 KB per track end on every guild, 15-40 MB per round
    # of track changes at 300 guilds (docs/PERFORMANCE.md, "Soak").
    write_media(tmp_path / "short.opus", tone([440], 0.2), "opus")
    write_media(tmp_path / "short.mp3", tone([440], 0.2), "mp3")
    sources = [
        Playable.from_bytes((tmp_path / "short.opus").read_bytes()),
        file(tmp_path / "short.mp3"),
    ]
    gc.collect()
    before = _readers_alive()
    gc.disable()
    try:
        for serial in range(1, 31):
            pipeline.play(sources[serial % 2], serial)
            rec.until_ended(serial)
            rec.frames.clear()
            rec.seen.clear()
        time.sleep(0.2)  # the producer's turn that releases the last reader
        alive = _readers_alive() - before
    finally:
        gc.enable()
    assert alive <= 2, f"{alive} readers of 30 finished tracks still alive without gc"
