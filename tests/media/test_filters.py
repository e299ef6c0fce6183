"""Every Lavalink filter (and the raw libavfilter escape hatch) measured on decoded output."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audionode.media.events import TrackFailed
from audionode.media.filters import stages
from audionode.media.pipeline import Pipeline
from audionode.protocol.filters import FilterError, parse_filters
from audionode.sources.api import Playable
from tests.media.mediafiles import (
    Pcm,
    Recorder,
    band_level,
    db,
    decode_opus,
    frame_levels,
    peak_freq,
    rms,
    tone,
    write_media,
)

# libopus adds ~6.5 ms of delay and a fade-in; measure away from the edges
EDGE = 4800


@pytest.fixture(scope="module")
def sounds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Playable]:
    d = tmp_path_factory.mktemp("filters")
    left = tone([1000], 1.0)
    left[:, 1] = 0
    made = {
        "a440": tone([440], 1.0),
        "chord": tone([100, 1000, 4000], 1.0, amplitude=0.6),
        "low_high": tone([100, 5000], 1.0, amplitude=0.5),
        "center": tone([220, 1000], 1.0, amplitude=0.5),
        "left": left,
        "long_left": np.concatenate([left] * 3),
    }
    out = {}
    for name, pcm in made.items():
        write_media(d / f"{name}.wav", pcm, "wav")
        out[name] = Playable.from_bytes((d / f"{name}.wav").read_bytes())
    return out


def render(pipeline: Pipeline, rec: Recorder, playable: Playable, filters: Any) -> Pcm:
    rec.drain_events()
    rec.seen.clear()
    rec.frames.clear()
    pipeline.set_filters(filters)
    pipeline.play(playable, 1)
    pcm = decode_opus(rec.until_ended(1))
    assert not [e for e in rec.seen if isinstance(e, TrackFailed)]
    return pcm


def test_volume(pipeline: Pipeline, rec: Recorder, sounds: dict[str, Playable]) -> None:
    dry = render(pipeline, rec, sounds["a440"], {})
    wet = render(pipeline, rec, sounds["a440"], {"volume": 0.5})
    assert db(rms(wet[EDGE:-EDGE]), rms(dry[EDGE:-EDGE])) == pytest.approx(-6.0, abs=0.7)


def test_equalizer_boosts_and_mutes_single_bands(
    pipeline: Pipeline, rec: Recorder, sounds: dict[str, Playable]
) -> None:
    dry = render(pipeline, rec, sounds["chord"], {})
    eq = {"equalizer": [{"band": 8, "gain": 0.5}, {"band": 3, "gain": -0.25}]}
    wet = render(pipeline, rec, sounds["chord"], eq)
    change = {
        f: db(band_level(wet[EDGE:], f), band_level(dry[EDGE:], f)) for f in (100, 1000, 4000)
    }
    assert change[1000] > 7  # 1000 Hz band x3 = +9.5 dB
    assert change[100] < -20  # 100 Hz band muted
    assert abs(change[4000]) < 2.5  # untouched band


def test_karaoke_removes_the_centre_but_keeps_the_sides_and_the_bass_band(
    pipeline: Pipeline, rec: Recorder, sounds: dict[str, Playable]
) -> None:
    dry = render(pipeline, rec, sounds["center"], {})
    wet = render(pipeline, rec, sounds["center"], {"karaoke": {"level": 1.0, "monoLevel": 1.0}})
    assert db(band_level(wet[EDGE:], 1000), band_level(dry[EDGE:], 1000)) < -15
    assert db(band_level(wet[EDGE:], 220), band_level(dry[EDGE:], 220)) > -4
    left_dry = render(pipeline, rec, sounds["left"], {})
    left_wet = render(pipeline, rec, sounds["left"], {"karaoke": {}})
    assert abs(db(rms(left_wet[EDGE:, 0]), rms(left_dry[EDGE:, 0]))) < 2


def test_timescale_speed_pitch_and_rate(
    pipeline: Pipeline, rec: Recorder, sounds: dict[str, Playable]
) -> None:
    fast = render(pipeline, rec, sounds["a440"], {"timescale": {"speed": 1.5}})
    assert len(fast) / 48000 == pytest.approx(1 / 1.5, abs=0.05)
    assert peak_freq(fast[EDGE:]) == pytest.approx(440, abs=5)
    high = render(pipeline, rec, sounds["a440"], {"timescale": {"pitch": 1.5}})
    assert len(high) / 48000 == pytest.approx(1.0, abs=0.05)
    assert peak_freq(high[EDGE:]) == pytest.approx(660, abs=6)
    rate = render(pipeline, rec, sounds["a440"], {"timescale": {"rate": 1.25}})
    assert len(rate) / 48000 == pytest.approx(0.8, abs=0.05)
    assert peak_freq(rate[EDGE:]) == pytest.approx(550, abs=6)


def envelope(x: Pcm, channel: int = 0, step: int = 480) -> np.ndarray:
    return np.array([rms(x[i : i + step, channel]) for i in range(0, len(x) - step, step)])


def test_tremolo_modulates_the_amplitude_at_its_frequency(
    pipeline: Pipeline, rec: Recorder, sounds: dict[str, Playable]
) -> None:
    wet = render(pipeline, rec, sounds["a440"], {"tremolo": {"frequency": 4.0, "depth": 0.9}})
    env = envelope(wet[EDGE:])
    assert env.min() < 0.4 * env.max()
    spectrum = np.abs(np.fft.rfft(env - env.mean()))
    freqs = np.fft.rfftfreq(len(env), 0.01)
    assert freqs[int(np.argmax(spectrum))] == pytest.approx(4.0, abs=0.6)


def zero_crossing_pitch(x: Pcm, window: int = 2400) -> np.ndarray:
    sig = x[:, 0]
    out = []
    for i in range(0, len(sig) - window, window):
        w = sig[i : i + window]
        crossings = np.count_nonzero((w[:-1] < 0) & (w[1:] >= 0))
        out.append(crossings * 48000 / window)
    return np.array(out)


def test_vibrato_modulates_the_pitch(
    pipeline: Pipeline, rec: Recorder, sounds: dict[str, Playable]
) -> None:
    dry = render(pipeline, rec, sounds["a440"], {})
    wet = render(pipeline, rec, sounds["a440"], {"vibrato": {"frequency": 5.0, "depth": 1.0}})
    assert zero_crossing_pitch(dry[EDGE:]).std() < 3
    assert zero_crossing_pitch(wet[EDGE:]).std() > 8
    assert abs(db(rms(wet[EDGE:]), rms(dry[EDGE:]))) < 2  # pitch moves, loudness does not


def test_rotation_pans_between_the_channels(
    pipeline: Pipeline, rec: Recorder, sounds: dict[str, Playable]
) -> None:
    wet = render(pipeline, rec, sounds["a440"], {"rotation": {"rotationHz": 2.0}})
    left, right = envelope(wet[EDGE:], 0), envelope(wet[EDGE:], 1)
    assert left.min() < 0.3 * left.max() and right.min() < 0.3 * right.max()
    assert np.corrcoef(left, right)[0, 1] < -0.5


def test_distortion_adds_harmonics(
    pipeline: Pipeline, rec: Recorder, sounds: dict[str, Playable]
) -> None:
    dry = render(pipeline, rec, sounds["a440"], {})
    wet = render(pipeline, rec, sounds["a440"], {"distortion": {"scale": 3.0, "sinScale": 2.0}})
    assert db(band_level(wet[EDGE:], 1320), band_level(dry[EDGE:], 1320)) > 20


def test_channel_mix_swaps_channels(
    pipeline: Pipeline, rec: Recorder, sounds: dict[str, Playable]
) -> None:
    swap = {"leftToLeft": 0.0, "leftToRight": 1.0, "rightToLeft": 1.0, "rightToRight": 0.0}
    wet = render(pipeline, rec, sounds["left"], {"channelMix": swap})
    assert rms(wet[EDGE:, 0]) < 0.01 and rms(wet[EDGE:, 1]) > 0.15


def test_low_pass_keeps_lows_and_cuts_highs(
    pipeline: Pipeline, rec: Recorder, sounds: dict[str, Playable]
) -> None:
    dry = render(pipeline, rec, sounds["low_high"], {})
    wet = render(pipeline, rec, sounds["low_high"], {"lowPass": {"smoothing": 20.0}})
    assert db(band_level(wet[EDGE:], 5000), band_level(dry[EDGE:], 5000)) < -15
    assert db(band_level(wet[EDGE:], 100), band_level(dry[EDGE:], 100)) > -3


def test_raw_libavfilter_filters(
    pipeline: Pipeline, rec: Recorder, sounds: dict[str, Playable]
) -> None:
    fast = render(pipeline, rec, sounds["a440"], {"raw": {"atempo": "2.0"}})
    assert len(fast) / 48000 == pytest.approx(0.5, abs=0.05)
    dry = render(pipeline, rec, sounds["a440"], {})
    quiet = render(pipeline, rec, sounds["a440"], {"raw": {"volume": "0.5"}})
    assert db(rms(quiet[EDGE:-EDGE]), rms(dry[EDGE:-EDGE])) == pytest.approx(-6.0, abs=0.7)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"volume": 5.5}, "invalid filter `volume`: expected `float` <= 5.0"),
        ({"equalizer": [{"band": 15, "gain": 0.1}]}, "`equalizer[0].band`: expected `int` <= 14"),
        ({"equalizer": [{"band": 1, "gain": -0.3}]}, "`equalizer[0].gain`"),
        ({"timescale": {"speed": 0}}, "invalid filter `timescale.speed`"),
        ({"tremolo": {"depth": 1.5}}, "invalid filter `tremolo.depth`"),
        ({"vibrato": {"frequency": 20}}, "`vibrato.frequency`: expected `float` <= 14"),
        ({"karaoke": {"level": "loud"}}, "invalid filter `karaoke.level`: expected `float`"),
        ({"karaoke": {"loudness": 1}}, "unknown parameter `karaoke.loudness`"),
        ({"echo": {}}, "unknown filter `echo`"),
        ({"raw": {"amovie": "/etc/passwd"}}, "`raw.amovie`: not an allowed libavfilter"),
        ({"raw": {"equalizer": "f=1000:g=zz"}}, 'raw.equalizer`: Unable to parse "g" option'),
        ({"raw": {"atempo": "7000"}}, "`raw.atempo`: Value 7000.000000 for parameter 'tempo' out"),
        ({"raw": {"lowpass": "nosuch=1"}}, "`raw.lowpass`: No such option: nosuch"),
    ],
)
def test_invalid_filters_are_refused_precisely(
    pipeline: Pipeline, filters: dict[str, Any], message: str
) -> None:
    with pytest.raises(FilterError) as err:
        pipeline.set_filters(filters)
    assert message in str(err.value)
    assert err.value.status == 400


def test_an_invalid_filter_leaves_playback_and_the_current_filters_untouched(
    pipeline: Pipeline, rec: Recorder, sounds: dict[str, Playable]
) -> None:
    good = pipeline.set_filters({"volume": 0.5})
    pipeline.play(sounds["long_left"], 1)
    rec.run_until(lambda _e: len(rec.frames) >= 20, timeout=5)
    with pytest.raises(FilterError):
        pipeline.set_filters({"timescale": {"speed": -1}})
    assert pipeline.filters == good
    frames = rec.until_ended(1)
    assert len(frames) == 150
    assert not [e for e in rec.seen if isinstance(e, TrackFailed)]


def test_a_filter_change_is_heard_within_100_ms(
    pipeline: Pipeline, rec: Recorder, sounds: dict[str, Playable]
) -> None:
    """Swap the channels of a left-only tone while popping at the sender's pace."""
    pipeline.play(sounds["long_left"], 1)
    rec.run_until(lambda _e: len(rec.frames) >= 25, timeout=5, pace=0.02)
    before = len(rec.frames)
    pipeline.set_filters({"channelMix": {"leftToLeft": 0.0, "leftToRight": 1.0}})
    rec.run_until(lambda _e: len(rec.frames) >= before + 12, timeout=5, pace=0.02)
    pipeline.stop()
    right = frame_levels(decode_opus(rec.frames)[:, 1:].repeat(2, axis=1))
    first = next(i for i in range(before, len(right)) if right[i] > 0.05)
    assert (first - before + 1) * 20 <= 100, f"heard after {first - before + 1} frames"


def test_parse_filters_accepts_lavalink_names_and_reports_identity() -> None:
    spec = parse_filters({"timescale": {"speed": 1.0}, "channelMix": {}, "volume": 1.0})
    assert not spec.is_identity  # a channelMix stage is present, even if neutral
    assert parse_filters({}).is_identity and parse_filters(None).is_identity
    assert not parse_filters({"volume": 0.9}).is_identity


_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=3),
    max_leaves=8,
)
_keys = st.sampled_from(
    ["volume", "equalizer", "karaoke", "timescale", "tremolo", "vibrato", "distortion",
     "rotation", "channelMix", "lowPass", "raw", "band", "gain", "speed", "level"]
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_keys, _json, max_size=4))
def test_any_json_gives_filters_or_a_filter_error(data: dict[str, Any]) -> None:
    try:
        spec = parse_filters(data)
    except FilterError as e:
        assert e.message.startswith(("invalid filter", "unknown filter", "unknown parameter"))
        return
    # the pure identity test (control plane) agrees with the stages the engine builds
    assert spec.is_identity == (spec.volume == 1.0 and not stages(spec))


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"timescale": {"speed": 1.0}},
        {"timescale": {"pitch": 2.0, "speed": 2.0}},
        {"equalizer": [{"band": 3, "gain": 0.0}]},
        {"rotation": {"rotationHz": 0.0}},
        {"lowPass": {"smoothing": 1.0}},
        {"lowPass": {"smoothing": 20.0}},
        {"karaoke": {}},
        {"volume": 0.5},
        {"raw": {"atempo": "1.25"}},
    ],
)
def test_identity_is_decided_without_libav_as_the_engine_would(data: dict[str, Any]) -> None:
    spec = parse_filters(data)
    assert spec.is_identity == (spec.volume == 1.0 and not stages(spec))
