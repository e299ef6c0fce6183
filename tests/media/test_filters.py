"""Every Lavalink filter and the whitelisted libav filters, measured on decoded output; the
whitelist checked against libav itself; what is refused, and how precisely."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import numpy as np
import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audionode.media import filtergraph
from audionode.media.events import FiltersFailed, TrackFailed, TrackFinished
from audionode.media.filtergraph import build_chain
from audionode.media.filters import stages
from audionode.media.pipeline import Pipeline
from audionode.protocol.filters import FilterError, Filters, parse_filters
from audionode.protocol.rawfilters import RAW_FILTERS, Bands, Choice, Flag, Num, NumList
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


def apply(pipeline: Pipeline, filters: Any, timeout: float = 5.0) -> Filters:
    """Set ``filters`` and wait until the pipeline plays them (they build off-thread)."""
    spec = pipeline.set_filters(filters)
    deadline = time.monotonic() + timeout
    while pipeline.filters is not spec:
        assert time.monotonic() < deadline, "the filters were never applied"
        time.sleep(0.002)
    return spec


def render(pipeline: Pipeline, rec: Recorder, playable: Playable, filters: Any) -> Pcm:
    rec.drain_events()
    rec.seen.clear()
    rec.frames.clear()
    apply(pipeline, filters)
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
        ({"raw": {"amovie": "/etc/passwd"}}, "`raw.amovie`: not a libav filter the node allows"),
        ({"raw": {"aeval": "exprs=sin(val(0))"}}, "`raw.aeval`: not a libav filter"),
        ({"pan": "stereo|c0=c1"}, "unknown filter `pan`"),
        ({"raw": {"equalizer": "f=1000:g=zz"}},
         "`raw.equalizer.gain`: expected a number between -30 and 30, got 'zz'"),
        ({"raw": {"atempo": "7000"}},
         "`raw.atempo.tempo`: expected a number between 0.5 and 4, got '7000'"),
        ({"raw": {"lowpass": "nosuch=1"}},
         "`raw.lowpass.nosuch`: not an allowed option (allowed: frequency (f), width_type (t)"),
        # no expression reaches libav: not as a value, not through filter-graph syntax
        ({"asetrate": "48000*1.25"}, "`raw.asetrate.sample_rate`: expected an integer between"),
        ({"volume": "1+1"}, "`raw.volume.volume`: expected a number between 0 and 5, got '1+1'"),
        ({"volume": "0.5,aeval=sin(val(0))"}, "`raw.volume`: expected plain options"),
        ({"equalizer": "f=1000[a];[a]aeval=0"}, "`raw.equalizer`: expected plain options"),
        ({"atempo": "tempo='1.5'"}, "`raw.atempo`: expected plain options"),
        ({"raw": {"acompressor": {"mode": "sideways"}}},
         "`raw.acompressor.mode`: expected one of downward, upward, got 'sideways'"),
        ({"raw": {"aecho": "0.8:0.9:1000|1800:0.3"}},
         "`raw.aecho`: delays, decays must have as many items each"),
        ({"raw": {"aecho": {"delays": [60000]}}},
         "`raw.aecho.delays`: expected a number between 1 and 5000, got 60000"),
        ({"raw": {"chorus": "0.5:0.9"}}, "`raw.chorus`: needs delays, decays, speeds, depths"),
        ({"raw": {"atempo": {"tempo": True}}}, "`raw.atempo.tempo`: expected a number"),
        ({"raw": {"atempo": 1.5}}, "`raw.atempo`: expected options as a string or an object"),
        ({"raw": {"atempo": "2:3"}}, "`raw.atempo`: `3` needs a name (name=value)"),
        ({"raw": {"atempo": "tempo=2", "volume": "3"}, "atempo": "2"},
         "invalid filter `atempo`: given both in `raw` and on its own"),
        ({"raw": {f"{n}": "" for n in ("anull", "earwax")} | {"x": ""}},
         "`raw.x`: not a libav filter the node allows"),
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


# -- Discodo's filter objects and the whitelisted libav filters ------------------------------


def test_discodo_filter_objects_play_as_typed_libav_filters(
    pipeline: Pipeline, rec: Recorder, sounds: dict[str, Playable]
) -> None:
    """Discodo's ``{"<filter>": "<args>"}``: parsed into typed options, then played."""
    spec = parse_filters({"atempo": "2.0", "volume": "0.5"})
    assert spec.raw == {"atempo": {"tempo": 2.0}, "volume": {"volume": 0.5}}
    assert spec.volume == 1.0  # the string form names libav's volume filter, not Lavalink's
    dry = render(pipeline, rec, sounds["a440"], {})
    wet = render(pipeline, rec, sounds["a440"], {"atempo": "2.0", "volume": "0.5"})
    assert len(wet) / 48000 == pytest.approx(0.5, abs=0.05)
    assert db(rms(wet[EDGE:-EDGE]), rms(dry[EDGE:-EDGE])) == pytest.approx(-6.0, abs=0.7)
    assert peak_freq(wet[EDGE:]) == pytest.approx(440, abs=5)


def test_discodos_anequalizer_preset_string_is_parsed_and_heard(
    pipeline: Pipeline, rec: Recorder, sounds: dict[str, Playable]
) -> None:
    preset = "|".join(f"c{c} f=1000 w=200 g=12 t=1" for c in (0, 1))
    spec = parse_filters({"anequalizer": preset})
    bands = spec.raw["anequalizer"]["params"]
    assert bands[1] == {"c": 1, "f": 1000.0, "w": 200.0, "g": 12.0, "t": 1}
    dry = render(pipeline, rec, sounds["chord"], {})
    wet = render(pipeline, rec, sounds["chord"], {"anequalizer": preset})
    assert db(band_level(wet[EDGE:], 1000), band_level(dry[EDGE:], 1000)) > 8
    assert abs(db(band_level(wet[EDGE:], 100), band_level(dry[EDGE:], 100))) < 2


def test_libav_option_strings_and_objects_give_the_same_typed_filters() -> None:
    forms = [
        {"equalizer": "f=1000:t=o:w=2:g=5"},
        {"raw": {"equalizer": "frequency=1000:width_type=o:width=2:gain=5"}},
        {"raw": {"equalizer": {"f": 1000, "t": "o", "w": 2, "g": 5}}},
    ]
    typed = [parse_filters(f).raw for f in forms]
    assert typed[0] == typed[1] == typed[2]
    assert typed[0] == {
        "equalizer": {"frequency": 1000.0, "width_type": "o", "width": 2.0, "gain": 5.0}
    }
    echo = parse_filters({"aecho": "0.8:0.9:1000|1800:0.3|0.25"}).raw["aecho"]
    assert echo == {"in_gain": 0.8, "out_gain": 0.9, "delays": [1000.0, 1800.0],
                    "decays": [0.3, 0.25]}
    assert stages(parse_filters({"aecho": "0.8:0.9:1000|1800:0.3|0.25"}))[0].args == (
        "in_gain=0.8:out_gain=0.9:delays=1000|1800:decays=0.3|0.25"
    )


def _extremes(kind: Any) -> list[Any]:
    if isinstance(kind, Num):
        return [kind.lo, kind.hi]
    if isinstance(kind, Flag):
        return [True, False]
    if isinstance(kind, Choice):
        return list(kind.values)
    if isinstance(kind, NumList):
        return [[kind.item.lo], [kind.item.hi] * kind.most]
    assert isinstance(kind, Bands)
    return [[{"c": 0, "f": 1, "w": 0.1, "g": -30, "t": 0}],
            [{"c": 1, "f": 24000, "w": 24000, "g": 30, "t": 2}] * 4]


@pytest.mark.parametrize("name", sorted(RAW_FILTERS))
def test_every_whitelisted_option_at_its_bounds_is_accepted_by_libav(name: str) -> None:
    """The whitelist is data: each option at both ends of its range (each choice, each flag)
    must build a working graph in libav and pass the trial, so the control process's
    validation never accepts what the engine then refuses."""
    spec = RAW_FILTERS[name]
    required = {k: [spec.options[k].item.lo] for k in spec.required}  # type: ignore[union-attr]
    for option, kind in spec.options.items():
        for value in _extremes(kind):
            options = {**required, option: value}
            if option in spec.same_length:
                for other in spec.same_length:
                    item = spec.options[other].item  # type: ignore[union-attr]
                    options[other] = [item.lo if other != option else v for v in value]
            chain = build_chain(parse_filters({"raw": {name: options}}))
            assert chain is not None, (name, option, value)


def test_positional_values_land_on_the_option_libav_expects() -> None:
    """A value out of range for every other option shows it reached the one intended."""
    for text in ("0.6:0.3:1000:0.5", "0.5:0.9:50|60:0.4|0.3:0.25|0.4:2|2.3"):
        name = "aecho" if text.count(":") == 3 else "chorus"
        assert build_chain(parse_filters({name: text})) is not None
    assert build_chain(parse_filters({"asetrate": "44100", "atempo": "0.75"})) is not None


# -- bounds that keep a worker's memory and CPU in check ------------------------------------


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"timescale": {"speed": 0.05, "rate": 0.05}}, "timescale"),
        ({"timescale": {"speed": 20, "rate": 20}}, "timescale"),
        ({"timescale": {"speed": 0.05}, "atempo": "0.5"}, "raw.atempo"),
        ({"raw": {"asetrate": "192000", "atempo": "4", "volume": "1"}, "atempo": None}, ""),
        ({"timescale": {"speed": 0.5}, "asetrate": "8000", "atempo": "0.5"}, "raw.atempo"),
        ({"timescale": {"pitch": 20, "rate": 0.05}, "asetrate": "8000"}, "raw.asetrate"),
    ],
)
def test_the_chain_cannot_stretch_time_without_bound(filters: dict[str, Any], field: str) -> None:
    filters = {k: v for k, v in filters.items() if v is not None}
    if not field:  # 192 kHz read as 48 kHz is 4x, then atempo 4x: 16x faster, allowed
        assert parse_filters(filters).raw["asetrate"] == {"sample_rate": 192000}
        return
    with pytest.raises(FilterError, match=rf"`{field}`: the filters would play the audio at"):
        parse_filters(filters)


def rss() -> int:
    return psutil.Process().memory_info().rss


@pytest.mark.parametrize(
    "filters",
    [
        {"timescale": {"speed": 0.05}},  # 20x longer: the slowest the chain allows
        {"timescale": {"pitch": 0.05}},  # resampled up 20x inside the chain
        {"timescale": {"pitch": 20, "rate": 0.05}},
        {"asetrate": "8000", "atempo": "0.5", "aecho": "1:1:5000|5000|5000|5000:1|1|1|1"},
    ],
)
def test_the_most_stretching_filters_allowed_do_not_grow_memory(
    pipeline: Pipeline, rec: Recorder, sounds: dict[str, Playable], filters: dict[str, Any]
) -> None:
    """The issue's attack: filters that make libav resample absurdly grew a worker by GBs.
    What is still allowed plays (up to 15 s of stretched audio) with a bounded footprint."""
    apply(pipeline, filters)
    pipeline.play(sounds["long_left"], 1)
    rec.run_until(lambda _e: len(rec.frames) >= 50, timeout=20)
    before = rss()
    rec.run_until(
        lambda evs: len(rec.frames) >= 750 or any(isinstance(e, TrackFinished) for e in evs),
        timeout=30,
    )
    grown = rss() - before
    assert len(rec.frames) >= 150  # at least the 3 s track
    assert grown < 64 << 20, f"RSS grew by {grown >> 20} MiB over {len(rec.frames)} frames"
    assert not [e for e in rec.drain_events() if isinstance(e, TrackFailed)]


# -- built off the caller's thread, with a deadline; a failure costs its player only --------


def test_a_build_that_misses_its_deadline_is_refused_and_the_old_set_stays(
    pipeline: Pipeline, rec: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = apply(pipeline, {"volume": 0.5, "tremolo": {}})
    monkeypatch.setattr(filtergraph, "BUILD_DEADLINE", 0.0005)
    started = time.monotonic()
    pipeline.set_filters({"equalizer": "f=1000:g=3"})
    assert time.monotonic() - started < 0.05  # the caller never waits for libav
    rec.run_until(lambda evs: any(isinstance(e, FiltersFailed) for e in evs), timeout=5)
    failed = next(e for e in rec.seen if isinstance(e, FiltersFailed))
    assert failed.message == "invalid filter set: not built within 0.0005 s"
    time.sleep(0.1)  # the abandoned build finishing late changes nothing
    assert pipeline.filters is good


def test_a_set_that_fails_its_trial_is_refused_with_the_reason(
    pipeline: Pipeline, rec: Recorder
) -> None:
    bands = [{"c": 0, "f": 1000, "w": 1000, "g": 30, "t": 0}] * 32
    pipeline.set_filters({"raw": {"anequalizer": {"params": bands}}})  # +960 dB: infinity
    rec.run_until(lambda evs: any(isinstance(e, FiltersFailed) for e in evs), timeout=5)
    failed = next(e for e in rec.seen if isinstance(e, FiltersFailed))
    assert failed.message.startswith("invalid filter set: the output is not finite")


def test_a_chain_that_overruns_while_playing_is_dropped_and_the_audio_goes_on(
    pipeline: Pipeline, rec: Recorder, sounds: dict[str, Playable],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    apply(pipeline, {"equalizer": "f=1000:g=3", "chorus": "0.5:0.9:50|60:0.4|0.3:0.25|0.4:2|2"})
    monkeypatch.setattr(filtergraph, "CPU_SHARE", 1e-6)  # now every chain is over budget
    pipeline.play(sounds["long_left"], 1)
    frames = rec.until_ended(1)
    assert len(frames) == 150  # all 3 s of the track played
    failed = [e for e in rec.seen if isinstance(e, FiltersFailed)]
    assert len(failed) == 1 and failed[0].message.startswith("the filters were removed: they")
    assert not [e for e in rec.seen if isinstance(e, TrackFailed)]


# -- any input: filters or a precise error; what the control plane checks, the engine builds --


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(RAW_FILTERS)),
    st.text(alphabet="0123456789.-+=:|abcdefgiklmnoprstw_ ", max_size=30),
)
def test_any_option_string_gives_typed_options_or_a_named_error(name: str, text: str) -> None:
    try:
        spec = parse_filters({"raw": {name: text}})
    except FilterError as e:
        assert e.message.startswith(f"invalid filter `raw.{name}")
        return
    assert parse_filters(msgspec.to_builtins(spec)) == spec  # the wire form round-trips


def _option_values(kind: Any) -> st.SearchStrategy[Any]:
    if isinstance(kind, Num):
        num = st.integers(int(kind.lo), int(kind.hi)) if kind.integer else st.floats(
            kind.lo, kind.hi)
        return st.sampled_from([kind.lo, kind.hi]) | num
    if isinstance(kind, Flag):
        return st.booleans()
    if isinstance(kind, Choice):
        return st.sampled_from(kind.values)
    if isinstance(kind, NumList):
        return st.lists(_option_values(kind.item), min_size=1, max_size=kind.most)
    band = st.fixed_dictionaries({"c": st.integers(0, 1), "f": st.floats(1, 24000),
                                  "w": st.floats(0.1, 24000), "g": st.floats(-12, 12),
                                  "t": st.integers(0, 2)})
    return st.lists(band, min_size=1, max_size=4)


@st.composite
def filter_sets(draw: st.DrawFn) -> dict[str, Any]:
    raw = {}
    for name in draw(st.lists(st.sampled_from(sorted(RAW_FILTERS)), max_size=4, unique=True)):
        spec = RAW_FILTERS[name]
        keys = draw(st.sets(st.sampled_from(sorted(spec.options)))) if spec.options else set()
        options = {k: draw(_option_values(spec.options[k])) for k in keys | set(spec.required)}
        if lists := [k for k in spec.same_length if k in options]:
            n = len(options[lists[0]])
            options |= {k: (options[k] * n)[:n] for k in lists}
        raw[name] = options
    scale = st.sampled_from([0.05, 0.5, 1.0, 2.0, 20.0]) | st.floats(0.05, 20)
    timescale = draw(st.none() | st.fixed_dictionaries({"speed": scale, "pitch": scale,
                                                        "rate": scale}))
    return {"raw": raw} | ({"timescale": timescale} if timescale else {})


@settings(max_examples=150, deadline=None)
@given(filter_sets())
def test_whatever_the_control_plane_accepts_the_engine_builds_without_crashing(
    filters: dict[str, Any],
) -> None:
    """Random sets of whitelisted filters at random allowed values: each is refused with a
    named field, or builds and runs its trial. A libav assertion (one was found this way:
    atempo 8 after a 20x upsample) would abort this process and fail the run."""
    try:
        spec = parse_filters(filters)
    except FilterError as e:
        assert e.message.startswith("invalid filter `")
        return
    try:
        build_chain(spec)
    except FilterError as e:  # the trial may still refuse: too much gain, too costly
        assert e.message.startswith("invalid filter set: ")


_SURVIVE = """
import sys, numpy as np
from audionode.media.filtergraph import FilterChain
from audionode.media.filters import Stage
from audionode.protocol.rawfilters import RAW_FILTERS
needs = {"chorus": "0.5:0.9:50:0.4:0.25:2"}
x = np.random.default_rng(1).uniform(-0.5, 0.5, (960, 2)).astype(np.float32)
x[10:20, 0], x[30:40, 1] = np.nan, np.inf
for name in RAW_FILTERS:
    print(name, flush=True)
    chain = FilterChain([Stage(name, needs.get(name, ""), name)])
    for _ in range(10):
        chain._run(x)  # straight into libav: not even the chain's own NaN guard
print("all done", flush=True)
"""


def test_no_whitelisted_filter_hangs_on_nan_or_infinite_samples() -> None:
    """A filter that never returns would stop the shared producer thread for good (libav
    cannot be interrupted). speechnorm did, on a NaN: it is off the list. Run in a child
    process so that a hang fails this test instead of the suite."""
    import subprocess
    import sys

    try:
        out = subprocess.run([sys.executable, "-c", _SURVIVE], capture_output=True, text=True,
                             timeout=60, check=False)
    except subprocess.TimeoutExpired as e:
        stuck = (e.stdout or b"").decode().split()[-1:]
        raise AssertionError(f"hung in {stuck}") from None
    assert out.stdout.strip().endswith("all done"), out.stderr[-2000:]
