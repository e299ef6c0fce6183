"""What the listener heard, in numbers: tones per half second (numpy FFT) and the self-check.

Pure functions over decoded PCM (mono float, 48 kHz) and plain data, so the check can be read
and tested on its own: :func:`timeline` cuts the stream into windows and names the tones in
each; :func:`tone_order` reduces that to the order in which tones appeared; :func:`evaluate`
compares what was heard with what was queued and returns one :class:`Check` per claim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

RATE: Final = 48000
WINDOW_S: Final = 0.5
"""Analysis window: 2 Hz FFT bins, short enough to see a 0.5 s crossfade."""
FLOOR: Final = 0.02
"""Amplitude (full scale = 1) under which a peak is noise, not a tone (about -34 dBFS)."""
RELATIVE: Final = 0.15
"""A peak weaker than this fraction of the window's strongest is a side lobe or a codec
artefact; the fading tone of a crossfade stays above it for most of the fade."""
MERGE_HZ: Final = 20.0
"""Peaks closer than this are one tone (a fade widens the main lobe)."""
MATCH_HZ: Final = 10.0
"""How far a heard tone may be from a queued one and still be that tone."""
DURATION_TOLERANCE_S: Final = 0.2

Signal = npt.NDArray[np.float32] | npt.NDArray[np.float64]


@dataclass(frozen=True)
class Window:
    """One analysis window of the stream: its span (seconds from the first packet), its level
    (RMS, full scale = 1) and the tones found in it, strongest first."""

    start: float
    end: float
    rms: float
    tones: tuple[float, ...]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def tones(pcm: Signal, rate: int = RATE) -> tuple[float, ...]:
    """The tones in ``pcm``, strongest first: spectral peaks (Hann window, amplitude-scaled)
    above :data:`FLOOR` and :data:`RELATIVE` x the strongest, refined to a fraction of a bin by
    parabolic interpolation, peaks within :data:`MERGE_HZ` merged."""
    n = len(pcm)
    if n < 64:
        return ()
    window = np.hanning(n)
    amp = np.abs(np.fft.rfft(pcm * window)) * 2 / window.sum()
    amp[0] = 0.0
    top = float(amp.max())
    if top < FLOOR:
        return ()
    threshold = max(FLOOR, RELATIVE * top)
    k = np.arange(1, len(amp) - 1)
    peaks = k[(amp[k] >= threshold) & (amp[k] > amp[k - 1]) & (amp[k] >= amp[k + 1])]
    found: list[tuple[float, float]] = []
    for i in sorted(peaks, key=lambda i: -amp[i]):
        freq = _refine(amp, int(i)) * rate / n
        if all(abs(freq - f) > MERGE_HZ for f, _ in found):
            found.append((freq, float(amp[i])))
    return tuple(round(f, 1) for f, _ in found)


def _refine(amp: npt.NDArray[np.float64], i: int) -> float:
    """Sub-bin peak position from the log magnitudes of the bin and its neighbours."""
    a, b, c = np.log(amp[i - 1 : i + 2] + 1e-12)
    denom = a - 2 * b + c
    return i + (0.5 * (a - c) / denom if denom < 0 else 0.0)


def timeline(pcm: Signal, window_s: float = WINDOW_S, rate: int = RATE) -> list[Window]:
    """Consecutive windows of ``window_s``; a last partial window is kept if at least half full."""
    size = round(window_s * rate)
    out = []
    for start in range(0, len(pcm), size):
        chunk = pcm[start : start + size]
        if len(chunk) < size / 2:
            break
        rms = float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64))))
        out.append(Window(start / rate, (start + len(chunk)) / rate, rms, tones(chunk, rate)))
    return out


def tone_order(windows: Sequence[Window]) -> list[float]:
    """The tones in the order they first appeared (a tone is new when it is more than
    :data:`MATCH_HZ` away from every tone already listed)."""
    order: list[float] = []
    for w in windows:
        for f in w.tones:
            if all(abs(f - g) > MATCH_HZ for g in order):
                order.append(f)
    return order


def evaluate(
    windows: Sequence[Window],
    decoded_seconds: float,
    expected_tones: Sequence[float],
    expected_seconds: float,
    errors: int,
) -> list[Check]:
    """Compare what was heard with what was queued.

    ``expected_seconds`` is the queued length minus the crossfade overlaps; ``errors`` counts
    packets that could not be decrypted or decoded. Every returned check must be ``ok`` for the
    demo to pass.
    """
    heard = tone_order(windows)
    same = len(heard) == len(expected_tones) and all(
        abs(h - e) <= MATCH_HZ for h, e in zip(heard, expected_tones, strict=False)
    )
    checks = [
        Check(
            "tones in queued order",
            same,
            f"heard {_hz(heard)}, expected {_hz(expected_tones)}",
        ),
        Check(
            "decoded length",
            abs(decoded_seconds - expected_seconds) <= DURATION_TOLERANCE_S,
            f"{decoded_seconds:.2f} s, expected {expected_seconds:.2f} ± "
            f"{DURATION_TOLERANCE_S:g} s",
        ),
        Check("every packet opened", errors == 0, f"{errors} undecryptable or undecodable"),
    ]
    return checks


def _hz(freqs: Sequence[float]) -> str:
    return " → ".join(f"{f:g}" for f in freqs) + " Hz" if freqs else "nothing"
