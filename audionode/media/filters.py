"""A validated filter set translated into libavfilter stages (the set itself, its whitelist
and its validation are in ``audionode.protocol.filters`` and ``protocol/rawfilters.py``).

Every argument written here comes from a typed, range-checked value (numbers formatted by
us, choices from the whitelist's own constants): no text a bot sent reaches libav.

How each filter is made (libavfilter wherever it has the effect; the chain order is fixed:
equalizer, karaoke, timescale, tremolo, vibrato, distortion, rotation, channelMix, lowPass,
raw; ``volume`` is applied by the pipeline after the chain, ramped over one frame):

- equalizer: one ``equalizer`` (peaking biquad) per band whose gain is not 0. Lavalink's gain
  is a multiplier offset: -0.25 mutes the band, 0.25 doubles it, so the band's linear gain is
  ``1 + 4 * gain`` (floored at -40 dB).
- karaoke: ``L - level*R`` / ``R - level*L`` removes what is centred (usually the voice), then
  the mono signal band-passed at ``filterBand`` (width ``filterWidth`` Hz) is added back at
  ``monoLevel`` so the centred bass survives.
- timescale: ``asetrate`` by ``pitch*rate`` + ``aresample`` back to 48 kHz + ``atempo`` by
  ``speed/pitch`` (chained to stay within atempo's 0.5-100 range).
- tremolo / vibrato: libavfilter's filters of the same names.
- distortion: ``x * (offset + scale * S * C * T)`` where ``S = sinOffset + sin(x*sinScale)``
  (and C, T alike with cos, tan; a factor whose scale is 0 is left out), computed in numpy
  between two libav graphs (``media/filtergraph.py``): libav's only per-sample waveshaper is
  ``aeval``, an expression evaluator, which no input may reach.
- rotation: ``apulsator`` (sine, left and right half a period apart) at ``rotationHz``.
- channelMix: ``pan``. lowPass: one-pole ``lowpass`` with the cut-off of an exponential
  smoothing of factor ``smoothing`` (off when ``smoothing <= 1``).
- raw (whitelisted libav filters): one stage each, ``option=value`` pairs from the typed
  options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from audionode.media.codec import RATE, Pcm
from audionode.protocol.filters import Band, Distortion, Filters, Karaoke, Timescale

EQ_BANDS_HZ = (25, 40, 63, 100, 160, 250, 400, 630, 1000, 1600, 2500, 4000, 6300, 10000, 16000)
"""Lavalink's 15 equalizer bands, index 0-14."""

_EQ_WIDTH_OCTAVES = 0.67  # the bands sit about 2/3 of an octave apart
_EQ_FLOOR_DB = -40.0


@dataclass(frozen=True, slots=True)
class Stage:
    """One libavfilter filter, or (``karaoke`` set) karaoke's two-branch sub-graph, or
    (``distortion`` set) Lavalink's distortion, computed outside libav."""

    name: str
    args: str
    label: str
    """The user-facing name (``equalizer[3]``, ``raw.atempo``) used in error messages."""
    karaoke: Karaoke | None = None
    distortion: Distortion | None = None


def stages(f: Filters) -> list[Stage]:
    """The libavfilter stages of ``f`` in chain order (volume excluded: the pipeline applies
    it)."""
    return _stages(f)


def _num(x: float) -> str:
    return f"{x:.6g}"


def _stages(f: Filters) -> list[Stage]:
    out: list[Stage] = []
    out += _equalizer(f.equalizer)
    if f.karaoke is not None:
        out.append(Stage("karaoke", "", "karaoke", karaoke=f.karaoke))
    if f.timescale is not None:
        out += _timescale(f.timescale)
    if f.tremolo is not None:
        t = f.tremolo
        out.append(Stage("tremolo", f"f={_num(t.frequency)}:d={_num(t.depth)}", "tremolo"))
    if f.vibrato is not None:
        v = f.vibrato
        out.append(Stage("vibrato", f"f={_num(v.frequency)}:d={_num(v.depth)}", "vibrato"))
    if f.distortion is not None:
        out.append(_distortion(f.distortion))
    if f.rotation is not None and f.rotation.rotation_hz > 0:
        hz = max(0.01, f.rotation.rotation_hz)
        args = f"hz={_num(hz)}:mode=sine:amount=1:offset_l=0:offset_r=0.5"
        out.append(Stage("apulsator", args, "rotation"))
    if f.channel_mix is not None:
        c = f.channel_mix
        args = (
            f"stereo|c0={_num(c.left_to_left)}*c0+{_num(c.right_to_left)}*c1"
            f"|c1={_num(c.left_to_right)}*c0+{_num(c.right_to_right)}*c1"
        )
        out.append(Stage("pan", args, "channelMix"))
    if f.low_pass is not None and f.low_pass.smoothing > 1.0:
        out.append(Stage("lowpass", f"f={_num(_smoothing_cutoff(f.low_pass.smoothing))}:p=1",
                         "lowPass"))
    for name, options in f.raw.items():
        if name == "atempo":
            out += _atempo(float(options.get("tempo", 1.0)), "raw.atempo") or [_anull("raw.atempo")]
        else:
            out.append(Stage(name, raw_args(options), f"raw.{name}"))
    return out


def _anull(label: str) -> Stage:
    return Stage("anull", "", label)


def raw_args(options: dict[str, Any]) -> str:
    """libav's option string for typed options (``tempo=1.25``, ``delays=1000|1800``)."""
    return ":".join(f"{key}={_value(value)}" for key, value in options.items())


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, list):
        return "|".join(_band(v) if isinstance(v, dict) else _value(v) for v in value)
    return str(value)  # a choice: the whitelist's own constant


def _band(band: dict[str, Any]) -> str:
    """One anequalizer band: ``c0 f=1000 w=100 g=2 t=0``."""
    rest = " ".join(f"{k}={_value(v)}" for k, v in band.items() if k != "c")
    return f"c{int(band['c'])} {rest}"


def _equalizer(bands: list[Band]) -> list[Stage]:
    gains = {b.band: b.gain for b in bands}  # a repeated band: the last one wins
    out = []
    for band, gain in sorted(gains.items()):
        if gain == 0.0:
            continue
        linear = 1.0 + 4.0 * gain
        db = _EQ_FLOOR_DB if linear <= 0 else max(_EQ_FLOOR_DB, 20 * math.log10(linear))
        args = f"f={EQ_BANDS_HZ[band]}:t=o:w={_EQ_WIDTH_OCTAVES}:g={_num(db)}"
        out.append(Stage("equalizer", args, f"equalizer[{band}]"))
    return out


def _timescale(t: Timescale) -> list[Stage]:
    out = []
    resample = t.pitch * t.rate
    if resample != 1.0:
        out.append(Stage("asetrate", str(round(RATE * resample)), "timescale"))
        out.append(Stage("aresample", str(RATE), "timescale"))
    return out + _atempo(t.speed / t.pitch, "timescale")


_TEMPO_MIN = 0.5
_TEMPO_MAX = 2.0
"""Per atempo instance. libav accepts 0.5-100, but a large factor on the long frames an
upsampling timescale makes fails an assertion in af_atempo.c (tempo 8 on 19200-sample
frames aborts the process); up to 2 per stage it holds, so larger factors are chained."""


def _atempo(tempo: float, label: str) -> list[Stage]:
    out = []
    while tempo < _TEMPO_MIN:
        out.append(Stage("atempo", _num(_TEMPO_MIN), label))
        tempo /= _TEMPO_MIN
    while tempo > _TEMPO_MAX:
        out.append(Stage("atempo", _num(_TEMPO_MAX), label))
        tempo /= _TEMPO_MAX
    if tempo != 1.0:
        out.append(Stage("atempo", _num(tempo), label))
    return out


def _distortion(d: Distortion) -> Stage:
    return Stage("distortion", "", "distortion", distortion=d)


def distort(d: Distortion, x: Pcm) -> Pcm:
    """Lavalink's distortion of ``x``; the result is kept finite and within +-4 (tan runs off
    to infinity near its poles; +-4 leaves later stages room before the encoder clips)."""
    y = np.full_like(x, d.scale)
    for fn, off, scale in (
        (np.sin, d.sin_offset, d.sin_scale),
        (np.cos, d.cos_offset, d.cos_scale),
        (np.tan, d.tan_offset, d.tan_scale),
    ):
        if scale != 0.0:
            y *= off + fn(x * np.float32(scale))
    y += np.float32(d.offset)
    y *= x
    out: Pcm = np.clip(np.nan_to_num(y, nan=0.0, posinf=4.0, neginf=-4.0), -4.0, 4.0)
    return out


def _smoothing_cutoff(smoothing: float) -> float:
    """Cut-off (Hz) of y += (x - y) / smoothing: the one-pole low-pass it is equivalent to."""
    alpha = 1.0 / smoothing
    return -RATE * math.log(1.0 - alpha) / (2 * math.pi)
