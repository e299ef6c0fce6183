"""The demo's ears, checked on real opus: tones encoded with libopus, decoded, then analysed."""

from __future__ import annotations

import numpy as np
import pytest

from audionode.demo.analysis import evaluate, timeline, tone_order, tones
from audionode.media.codec import OpusDecoder, OpusEncoder

RATE = 48000


def sine(freq: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return amplitude * np.sin(2 * np.pi * freq * t)


def crossfaded(freqs: list[float], seconds: float, fade: float) -> np.ndarray:
    """Tracks of ``seconds`` each, consecutive ones overlapping by ``fade`` (linear ramps)."""
    n, f = round(seconds * RATE), round(fade * RATE)
    out = np.zeros(len(freqs) * n - (len(freqs) - 1) * f)
    for i, freq in enumerate(freqs):
        track = sine(freq, seconds)
        if i > 0:
            track[:f] *= np.linspace(0, 1, f)
        if i < len(freqs) - 1:
            track[-f:] *= np.linspace(1, 0, f)
        start = i * (n - f)
        out[start : start + n] += track
    return out


def through_opus(mono: np.ndarray) -> np.ndarray:
    """Encode in 20 ms frames at the node's settings and decode back (left channel)."""
    enc, dec = OpusEncoder(128000, 10), OpusDecoder()
    stereo = np.repeat(mono[:, None], 2, axis=1).astype(np.float32)
    stereo = np.pad(stereo, ((0, -len(stereo) % 960), (0, 0)))
    pcm = [dec.decode(enc.encode(stereo[i : i + 960])) for i in range(0, len(stereo), 960)]
    return np.concatenate(pcm)[:, 0]


def test_tones_finds_each_component_of_a_chord_and_nothing_in_silence() -> None:
    chord = sine(440, 0.5, 0.3) + sine(659, 0.5, 0.2)
    found = tones(chord)
    assert [round(f) for f in found] == [440, 659]  # strongest first
    assert tones(np.zeros(24000)) == ()
    assert tones(sine(440, 0.5, 0.005)) == (), "below the floor it is not a tone"


@pytest.mark.parametrize("freq", [440.0, 554.0, 659.0, 1234.5])
def test_tones_is_accurate_between_bins(freq: float) -> None:
    (found,) = tones(sine(freq, 0.5))
    assert abs(found - freq) < 0.5


def test_a_crossfade_through_opus_shows_both_tones_where_they_overlap() -> None:
    pcm = through_opus(crossfaded([440, 554, 659], 2.0, 0.5))
    windows = timeline(pcm)
    assert len(windows) == 10
    assert [round(t) for t in tone_order(windows)] == [440, 554, 659]
    both = [(w.start, sorted(round(t) for t in w.tones)) for w in windows if len(w.tones) > 1]
    assert both == [(1.5, [440, 554]), (3.0, [554, 659])]
    single = [w for w in windows if len(w.tones) == 1]
    assert all(-10 < 20 * np.log10(w.rms) < -8 for w in single)  # a 0.5 sine is -9 dBFS


def test_evaluate_passes_what_was_queued_and_fails_anything_else() -> None:
    windows = timeline(through_opus(crossfaded([440, 554], 1.0, 0.25)))

    def names(tones_: list[float], seconds: float = 1.75, errors: int = 0) -> dict[str, bool]:
        return {c.name: c.ok for c in evaluate(windows, 1.75, tones_, seconds, errors)}

    assert all(names([440, 554]).values())
    assert not names([554, 440])["tones in queued order"]
    assert not names([440])["tones in queued order"], "an extra tone is a mismatch"
    assert not names([440, 554, 659])["tones in queued order"], "a missing tone too"
    assert not names([440, 554], seconds=2.0)["decoded length"]
    assert not names([440, 554], errors=1)["every packet opened"]


def test_evaluate_of_silence_reports_that_nothing_was_heard() -> None:
    checks = evaluate(timeline(np.zeros(48000)), 0.0, [440], 1.0, 0)
    assert [c.ok for c in checks] == [False, False, True]
    assert checks[0].detail == "heard nothing, expected 440 Hz"
