"""Lavalink's filter set, validated, and translated into libavfilter stages.

Names, parameters and ranges follow Lavalink v4's REST API (``PATCH .../players/{guild}``,
"Filters"); ``raw`` is Discodo's filter dict (discodo-reference.md §4.4), restricted to an
allowlist. Where libav cannot honour Lavalink's open range the range is narrowed and says so
in the error (timescale factors 0.05-20, tremolo frequency >= 0.1 Hz).

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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from audionode.errors import BadRequest
from audionode.media.codec import RATE
from audionode.validation import explain

EQ_BANDS_HZ = (25, 40, 63, 100, 160, 250, 400, 630, 1000, 1600, 2500, 4000, 6300, 10000, 16000)
"""Lavalink's 15 equalizer bands, index 0-14."""

_EQ_WIDTH_OCTAVES = 0.67  # the bands sit about 2/3 of an octave apart
_EQ_FLOOR_DB = -40.0

RAW_ALLOWED = frozenset(
    (
        "acompressor", "acontrast", "acrusher", "adeclick", "adeclip", "adelay",
        "adynamicequalizer", "adynamicsmooth", "aecho", "aemphasis", "aeval", "aexciter",
        "afade", "afftdn", "aformat", "afreqshift", "agate", "alimiter", "allpass",
        "anequalizer", "anlmdn", "anull", "aphaser", "aphaseshift", "apulsator", "aresample",
        "asetrate", "asoftclip", "asubboost", "asubcut", "asupercut", "asuperpass",
        "asuperstop", "atempo", "bandpass", "bandreject", "bass", "biquad", "chorus",
        "compand", "compensationdelay", "crossfeed", "crystalizer", "dcshift", "deesser",
        "dialoguenhance", "dynaudnorm", "earwax", "equalizer", "extrastereo", "flanger",
        "haas", "highpass", "highshelf", "loudnorm", "lowpass", "lowshelf", "mcompand", "pan",
        "speechnorm", "stereotools", "stereowiden", "superequalizer", "treble", "tremolo",
        "vibrato", "virtualbass", "volume",
    )
)
"""libavfilter filters ``raw`` may use: one audio in, one audio out, no file, device or
network access, no unbounded buffering (so no amovie, asendcmd, ametadata, firequalizer
(dumpfile), arnndn (model files), apad/aloop/areverse)."""

_RAW_ARGS_MAX = 2000

Unit = Annotated[float, Meta(ge=0.0, le=1.0)]
Depth = Annotated[float, Meta(gt=0.0, le=1.0)]
Finite = Annotated[float, Meta(ge=-1e6, le=1e6)]
Scale = Annotated[float, Meta(ge=0.05, le=20.0)]


class _Filter(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    pass


class Band(_Filter):
    band: Annotated[int, Meta(ge=0, le=14)]
    gain: Annotated[float, Meta(ge=-0.25, le=1.0)]


class Karaoke(_Filter):
    level: Unit = 1.0
    mono_level: Unit = 1.0
    filter_band: Annotated[float, Meta(gt=0.0, le=20000.0)] = 220.0
    filter_width: Annotated[float, Meta(gt=0.0, le=20000.0)] = 100.0


class Timescale(_Filter):
    speed: Scale = 1.0
    pitch: Scale = 1.0
    rate: Scale = 1.0


class Tremolo(_Filter):
    frequency: Annotated[float, Meta(ge=0.1, le=20000.0)] = 2.0
    depth: Depth = 0.5


class Vibrato(_Filter):
    frequency: Annotated[float, Meta(ge=0.1, le=14.0)] = 2.0
    depth: Depth = 0.5


class Rotation(_Filter):
    rotation_hz: Annotated[float, Meta(ge=0.0, le=100.0)] = 0.0


class Distortion(_Filter):
    sin_offset: Finite = 0.0
    sin_scale: Finite = 1.0
    cos_offset: Finite = 0.0
    cos_scale: Finite = 1.0
    tan_offset: Finite = 0.0
    tan_scale: Finite = 1.0
    offset: Finite = 0.0
    scale: Finite = 1.0


class ChannelMix(_Filter):
    left_to_left: Unit = 1.0
    left_to_right: Unit = 0.0
    right_to_left: Unit = 0.0
    right_to_right: Unit = 1.0


class LowPass(_Filter):
    smoothing: Annotated[float, Meta(ge=0.0, le=1e6)] = 20.0


class Filters(_Filter):
    """A validated filter set; build one with :func:`parse_filters`."""

    volume: Annotated[float, Meta(ge=0.0, le=5.0)] = 1.0
    equalizer: list[Band] = msgspec.field(default_factory=list)
    karaoke: Karaoke | None = None
    timescale: Timescale | None = None
    tremolo: Tremolo | None = None
    vibrato: Vibrato | None = None
    distortion: Distortion | None = None
    rotation: Rotation | None = None
    channel_mix: ChannelMix | None = None
    low_pass: LowPass | None = None
    raw: dict[str, str] = msgspec.field(default_factory=dict)

    def stages(self) -> list[Stage]:
        """The libavfilter stages in chain order (volume excluded: the pipeline applies it)."""
        return _stages(self)

    @property
    def is_identity(self) -> bool:
        """True when the set changes nothing (opus passthrough stays possible)."""
        return self.volume == 1.0 and not self.stages()


class FilterError(BadRequest):
    """A filter set was refused; the message names the filter and the parameter."""


@dataclass(frozen=True, slots=True)
class Stage:
    """One libavfilter filter, or (``karaoke`` set) karaoke's two-branch sub-graph."""

    name: str
    args: str
    label: str
    """The user-facing name (``equalizer[3]``, ``raw.atempo``) used in error messages."""
    karaoke: Karaoke | None = None




def parse_filters(data: Mapping[str, Any] | Filters | None) -> Filters:
    """Validate a Lavalink ``filters`` object (plus ``raw``); raise :class:`FilterError`."""
    if isinstance(data, Filters):
        spec = data
    else:
        try:
            spec = msgspec.convert(dict(data or {}), Filters)
        except msgspec.ValidationError as e:
            raise FilterError(_explain(e)) from None
    _check_raw(spec.raw)
    return spec


def _explain(err: msgspec.ValidationError) -> str:
    field, problem = explain(err, Filters)
    if problem.startswith("is unknown"):
        if "." in field:
            return f"unknown parameter `{field}`"
        return f"unknown filter `{field}` {problem.removeprefix('is unknown ')}"
    if problem == "is required":
        return f"invalid filter `{field}`: required"
    return f"invalid filter `{field or 'filters'}`: {problem}"


def _check_raw(raw: Mapping[str, str]) -> None:
    for name, args in raw.items():
        if name not in RAW_ALLOWED:
            raise FilterError(
                f"invalid filter `raw.{name}`: not an allowed libavfilter audio filter "
                f"(allowed: {', '.join(sorted(RAW_ALLOWED))})"
            )
        if len(args) > _RAW_ARGS_MAX:
            raise FilterError(f"invalid filter `raw.{name}`: arguments longer than 2000 chars")


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
