"""``tone``: a generator source — the demo and test source of audionode.

Queries::

    tone:440                      one second of 440 Hz
    tone:440+660?seconds=5        a chord (each tone can be found again by FFT)
    tone:1000?wave=square&amplitude=0.2&seconds=0.5&pan=-1

Parameters (after ``?``, ``&``-separated):

- ``seconds``   length, > 0, at most the plugin option ``max_seconds`` (default 120)
- ``amplitude`` level of the sum (its peak never exceeds it), 0..1 (default 0.5)
- ``wave``      ``sine`` (default), ``square``, ``saw``, ``triangle`` or ``noise``
- ``pan``       -1 (left only) .. 1 (right only), default 0 (centre)
- ``rate``      sample rate of the WAV, 8000..192000 (default 48000)

Frequencies are 1..24000 Hz; ``0`` gives silence. The track is a 16-bit stereo WAV made in
memory with numpy and the standard library: no libav, as the plugin API intends.

Enable it with ``"sources": {"plugins": ["tone"]}``.
"""

from __future__ import annotations

import io
import math
import wave
from dataclasses import dataclass
from urllib.parse import parse_qsl

import numpy as np

from audionode.errors import BadRequest
from audionode.sources.api import BaseSource, LoadResult, Playable, PluginContext, Track

WAVES = ("sine", "square", "saw", "triangle", "noise")


@dataclass(frozen=True)
class ToneSpec:
    freqs: tuple[float, ...]
    seconds: float = 1.0
    amplitude: float = 0.5
    wave: str = "sine"
    pan: float = 0.0
    rate: int = 48000

    @property
    def query(self) -> str:
        """The canonical query of this tone (used as the track id)."""
        freqs = "+".join(f"{f:g}" for f in self.freqs)
        return (
            f"tone:{freqs}?seconds={self.seconds:g}&amplitude={self.amplitude:g}"
            f"&wave={self.wave}&pan={self.pan:g}&rate={self.rate}"
        )


def _number(params: dict[str, str], key: str, default: float, lo: float, hi: float) -> float:
    raw = params.pop(key, None)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"tone: `{key}` must be a number, got {raw!r}") from None
    if not (lo <= value <= hi) or math.isnan(value):
        raise BadRequest(f"tone: `{key}` must be between {lo:g} and {hi:g}, got {raw}")
    return value


def parse(query: str, max_seconds: float = 120.0) -> ToneSpec:
    """Parse a ``tone:`` query; BadRequest names the parameter at fault."""
    if not query.startswith("tone:"):
        raise BadRequest(f"not a tone query: {query!r}")
    body, _, qs = query[len("tone:") :].partition("?")
    try:
        freqs = tuple(float(f) for f in body.split("+"))
    except ValueError:
        raise BadRequest(f"tone: frequencies must be numbers joined by '+', got {body!r}") from None
    if not freqs or len(freqs) > 16 or any(not 0 <= f <= 24000 for f in freqs):
        raise BadRequest("tone: give 1 to 16 frequencies between 0 and 24000 Hz")
    params = dict(parse_qsl(qs, keep_blank_values=True))
    shape = params.pop("wave", "sine")
    if shape not in WAVES:
        raise BadRequest(f"tone: `wave` must be one of {', '.join(WAVES)}, got {shape!r}")
    spec = ToneSpec(
        freqs=freqs,
        seconds=_number(params, "seconds", 1.0, 0.001, max_seconds),
        amplitude=_number(params, "amplitude", 0.5, 0.0, 1.0),
        wave=shape,
        pan=_number(params, "pan", 0.0, -1.0, 1.0),
        rate=int(_number(params, "rate", 48000, 8000, 192000)),
    )
    if params:
        raise BadRequest(f"tone: unknown parameter(s) {', '.join(sorted(params))}")
    return spec


def _oscillator(shape: str, freq: float, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if freq == 0:
        return np.zeros_like(t)
    phase = (freq * t) % 1.0
    if shape == "sine":
        return np.sin(2 * np.pi * phase)
    if shape == "square":
        return np.where(phase < 0.5, 1.0, -1.0)
    if shape == "saw":
        return 2.0 * phase - 1.0
    if shape == "triangle":
        return 1.0 - 4.0 * np.abs(phase - 0.5)
    return rng.uniform(-1.0, 1.0, len(t))


def render(spec: ToneSpec) -> np.ndarray:
    """The tone as float samples, shape (frames, 2)."""
    t = np.arange(round(spec.seconds * spec.rate)) / spec.rate
    rng = np.random.default_rng(0)
    mono = sum(_oscillator(spec.wave, f, t, rng) for f in spec.freqs) / len(spec.freqs)
    mono = np.asarray(mono) * spec.amplitude
    # balance: the centre keeps both channels at full level, -1/1 silence one side
    left, right = min(1.0, 1.0 - spec.pan), min(1.0, 1.0 + spec.pan)
    return np.stack([mono * left, mono * right], axis=1)


def wav_bytes(spec: ToneSpec) -> bytes:
    pcm = np.clip(render(spec), -1.0, 1.0)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(spec.rate)
        w.writeframes((pcm * 32767).astype("<i2").tobytes())
    return out.getvalue()


class ToneSource(BaseSource):
    """Generates test tones; see the module docstring for the query syntax."""

    name = "tone"

    def __init__(self, max_seconds: float = 120.0) -> None:
        self.max_seconds = max_seconds

    def handles(self, query: str) -> bool:
        return query.startswith("tone:")

    async def load(self, query: str) -> LoadResult | None:
        spec = parse(query, self.max_seconds)
        freqs = "+".join(f"{f:g}" for f in spec.freqs)
        track = Track(
            source=self.name,
            id=spec.query,
            title=f"Tone {freqs} Hz ({spec.wave}, {spec.seconds:g} s)",
            uri=spec.query,
            author="audionode",
            duration_ms=round(spec.seconds * 1000),
        )
        return LoadResult.of_track(track)

    async def open(self, track: Track) -> Playable:
        return Playable.from_bytes(wav_bytes(parse(track.id, self.max_seconds)), format="wav")


def sources(context: PluginContext) -> list[ToneSource]:
    """The plugin factory the loader calls."""
    return [ToneSource(max_seconds=float(context.options.get("max_seconds", 120.0)))]
