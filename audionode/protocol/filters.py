"""The filter set a bot may ask for: Lavalink's ``filters`` object plus ``raw``, validated.

Pure data and validation (no libav here: the control process never loads PyAV). The engine
turns a validated :class:`Filters` into libavfilter stages in ``audionode.media.filters``.

Names, parameters and ranges follow Lavalink v4's REST API (``PATCH .../players/{guild}``,
"Filters"); ``raw`` is Discodo's filter dict (docs/discodo.md), restricted to an allowlist.
Where libav cannot honour Lavalink's open range the range is narrowed and says so in the error
(timescale factors 0.05-20, tremolo frequency >= 0.1 Hz). Every error names the filter and the
parameter::

    invalid filter `timescale.speed`: expected `float` >= 0.05
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from audionode.errors import BadRequest
from audionode.validation import explain

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

    @property
    def is_identity(self) -> bool:
        """True when the set changes nothing (opus passthrough stays possible): exactly when
        ``audionode.media.filters.stages`` makes no stage and the volume is 1."""
        return self.volume == 1.0 and not _has_effect(self)


class FilterError(BadRequest):
    """A filter set was refused; the message names the filter and the parameter."""


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


def _has_effect(f: Filters) -> bool:
    """Whether any filter of ``f`` changes the signal (volume aside)."""
    t = f.timescale
    return bool(
        any(b.gain != 0.0 for b in f.equalizer)
        or f.karaoke is not None
        or (t is not None and (t.pitch * t.rate != 1.0 or t.speed / t.pitch != 1.0))
        or f.tremolo is not None
        or f.vibrato is not None
        or f.distortion is not None
        or (f.rotation is not None and f.rotation.rotation_hz > 0)
        or f.channel_mix is not None
        or (f.low_pass is not None and f.low_pass.smoothing > 1.0)
        or f.raw
    )
