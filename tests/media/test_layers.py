"""Mixer layers (issue 15 item 4): a source over the music with its own volume and ducking,
ending by itself or when removed, forcing decoding while it plays; and a live opus feed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audionode.media.events import LayerEnded, LayerStarted, TrackFinished
from audionode.media.layers import FEED_FRAMES, FeedLayer, LayerSet
from audionode.media.pipeline import Pipeline
from audionode.sources.api import Playable
from tests.media.mediafiles import (
    Recorder,
    band_level,
    decode_opus,
    demuxed_packets,
    tone,
    write_media,
)


def file(path: Path) -> Playable:
    return Playable.from_bytes(path.read_bytes())


def _ended(layer: int) -> object:
    return lambda evs: any(isinstance(e, LayerEnded) and e.layer == layer for e in evs)


def test_a_layer_is_heard_over_the_music_at_its_volume_and_ends_by_itself(
    media_dir: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    pipeline.play(file(media_dir / "long440.opus"), 1)
    rec.run_until(lambda _e: len(rec.frames) >= 20, timeout=5)
    pipeline.add_layer(3, file(media_dir / "b660.wav"), volume=0.5)
    rec.run_until(_ended(3), timeout=10)
    frames = rec.until_ended(1)
    pcm = decode_opus(frames)
    before, during = pcm[2 * 4800 : 18 * 960], pcm[40 * 960 : 60 * 960]
    assert band_level(before, 660) < 0.01 * band_level(before, 440)
    # both tones at once while the layer plays, the layer at half its level (0.3 -> 0.15)
    ratio = band_level(during, 660) / band_level(during, 440)
    assert 0.4 < ratio < 0.6, ratio
    starts = [e for e in rec.seen if isinstance(e, LayerStarted)]
    ends = [e for e in rec.seen if isinstance(e, LayerEnded)]
    assert [s.layer for s in starts] == [3] and [(e.layer, e.reason) for e in ends] == [
        (3, "finished")
    ]
    # passthrough while no layer plays: the last frames are the file's own packets again
    source = demuxed_packets(media_dir / "long440.opus")
    assert frames[-1].opus in source and frames[5].opus in source
    assert not any(f.opus in source for f in frames[40:60]), "decoded while the layer played"


def test_ducking_lowers_the_music_while_the_layer_plays(
    media_dir: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    pipeline.play(file(media_dir / "long440.opus"), 1)
    rec.run_until(lambda _e: len(rec.frames) >= 10, timeout=5)
    pipeline.add_layer(1, file(media_dir / "b660.wav"), volume=1.0, duck=0.25)
    rec.run_until(_ended(1), timeout=10)
    pcm = decode_opus(rec.until_ended(1))
    music_before = band_level(pcm[960 : 9 * 960], 440)
    music_ducked = band_level(pcm[25 * 960 : 45 * 960], 440)
    music_after = band_level(pcm[-40 * 960 : -5 * 960], 440)
    assert 0.2 < music_ducked / music_before < 0.3
    assert music_after / music_before > 0.9


def test_a_removed_layer_stops_and_layers_play_while_paused_and_stopped(
    media_dir: Path, tmp_path: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    write_media(tmp_path / "long660.wav", tone([660], 5.0), "wav")
    pipeline.add_layer(9, file(tmp_path / "long660.wav"), volume=1.0)  # nothing else plays
    rec.run_until(lambda _e: len(rec.frames) >= 25, timeout=5, pace=0.002)
    pipeline.pause()
    rec.run_until(lambda _e: len(rec.frames) >= 40, timeout=5, pace=0.002)
    pipeline.remove_layer(9)
    rec.run_until(_ended(9), timeout=5)
    pcm = decode_opus(rec.frames)
    assert len(rec.frames) < 100, "the five-second layer was cut short"
    assert band_level(pcm[5 * 960 : 35 * 960], 660) > 0.05
    assert [(e.layer, e.reason) for e in rec.seen if isinstance(e, LayerEnded)] == [(9, "stopped")]
    assert not any(isinstance(e, TrackFinished) for e in rec.seen)


def test_a_layer_that_cannot_be_opened_ends_with_an_error_and_the_music_goes_on(
    media_dir: Path, pipeline: Pipeline, rec: Recorder
) -> None:
    pipeline.play(file(media_dir / "long440.opus"), 1)
    pipeline.add_layer(2, Playable.from_bytes(b"not audio at all" * 10), volume=1.0)
    rec.run_until(_ended(2), timeout=5)
    [end] = [e for e in rec.seen if isinstance(e, LayerEnded)]
    assert end.reason == "error" and end.message
    frames = rec.until_ended(1)
    assert len(frames) >= 140  # three seconds of music, whole


def test_a_feed_layer_plays_pushed_audio_and_bounds_its_backlog() -> None:
    seen: list[object] = []
    layers = LayerSet(seen.append)
    feed = FeedLayer(-1, volume=0.5, duck=None)
    layers.add(feed)
    layers.poll()
    assert seen == [LayerStarted(-1)]
    assert layers.mix(960) == (None, None), "nothing pushed yet"
    feed.push(tone([880], 0.02))
    assert layers.mix(960) == (None, None), "one block: still buffering"
    pcm = tone([880], 0.5)
    for i in range(FEED_FRAMES + 4):
        feed.push(pcm[i * 960 : (i + 1) * 960])
    assert feed.overflowed == 5
    out = []
    while (got := layers.mix(960)[0]) is not None:
        out.append(got)
    assert len(out) == FEED_FRAMES
    mixed = np.concatenate(out)
    assert np.allclose(mixed, pcm[4 * 960 : 14 * 960] * 0.5), "the newest ten blocks, halved"
