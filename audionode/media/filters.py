"""Lavalink's filter set translated into libavfilter stages (the set itself, and its
validation, are in ``audionode.protocol.filters``).

The accepted object is Lavalink's ``filters`` payload (same names, same meaning) plus ``raw``,
Discodo's escape hatch: an ordered ``{"<libavfilter name>": "<args>"}`` mapping, e.g.
``{"raw": {"atempo": "1.25"}}``. :func:`parse_filters` validates everything before anything
plays; every error names the filter and the parameter::

    invalid filter `timescale.speed`: expected `float` >= 0.05
    invalid filter `raw.equalizer`: Unable to parse "g" option value "zz"

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
- distortion: ``aeval`` with ``x * (offset + scale * S * C * T)`` where ``S = sinOffset +
  sin(x*sinScale)`` (and C, T alike with cos, tan); a factor whose scale is 0 is left out.
- rotation: ``apulsator`` (sine, left and right half a period apart) at ``rotationHz``.
- channelMix: ``pan``. lowPass: one-pole ``lowpass`` with the cut-off of an exponential
  smoothing of factor ``smoothing`` (off when ``smoothing <= 1``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from audionode.media.codec import RATE
from audionode.protocol.filters import Band, Distortion, Filters, Karaoke, Timescale

EQ_BANDS_HZ = (25, 40, 63, 100, 160, 250, 400, 630, 1000, 1600, 2500, 4000, 6300, 10000, 16000)
"""Lavalink's 15 equalizer bands, index 0-14."""

_EQ_WIDTH_OCTAVES = 0.67  # the bands sit about 2/3 of an octave apart
_EQ_FLOOR_DB = -40.0


@dataclass(frozen=True, slots=True)
class Stage:
    """One libavfilter filter, or (``karaoke`` set) karaoke's two-branch sub-graph."""

    name: str
    args: str
    label: str
    """The user-facing name (``equalizer[3]``, ``raw.atempo``) used in error messages."""
    karaoke: Karaoke | None = None


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
    out += [Stage(name, args, f"raw.{name}") for name, args in f.raw.items()]
    return out


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
    tempo = t.speed / t.pitch
    # atempo accepts 0.5..100 per instance; split smaller factors into a chain.
    while tempo < 0.5:
        out.append(Stage("atempo", "0.5", "timescale"))
        tempo /= 0.5
    if tempo != 1.0:
        out.append(Stage("atempo", _num(tempo), "timescale"))
    return out


def _distortion(d: Distortion) -> Stage:
    def expr(ch: int) -> str:
        x = f"val({ch})"
        factors = [
            f"({_num(off)}+{fn}({x}*{_num(scale)}))"
            for fn, off, scale in (
                ("sin", d.sin_offset, d.sin_scale),
                ("cos", d.cos_offset, d.cos_scale),
                ("tan", d.tan_offset, d.tan_scale),
            )
            if scale != 0.0
        ]
        return f"{x}*({_num(d.offset)}+{_num(d.scale)}*{'*'.join(factors) or '1'})"

    return Stage("aeval", f"exprs={expr(0)}|{expr(1)}:channel_layout=stereo", "distortion")


def _smoothing_cutoff(smoothing: float) -> float:
    """Cut-off (Hz) of y += (x - y) / smoothing: the one-pole low-pass it is equivalent to."""
    alpha = 1.0 / smoothing
    return -RATE * math.log(1.0 - alpha) / (2 * math.pi)
