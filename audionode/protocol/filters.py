"""The filter set a bot may ask for: Lavalink's ``filters`` object plus whitelisted libav
filters, validated into typed, range-checked values.

Pure data and validation (no libav here: the control process never loads PyAV). The engine
turns a validated :class:`Filters` into libavfilter stages in ``audionode.media.filters``
from the typed values alone: no text a bot sent reaches libav, and no filter evaluates an
expression of its input (distortion is computed in numpy, ``media/filtergraph.py``).

Three forms, mixable in one object:

- Lavalink v4's ``filters`` (``PATCH .../players/{guild}``): ``{"timescale": {"speed": 1.2}}``;
  where libav cannot honour Lavalink's open range it is narrowed and the error says so
  (timescale factors 0.05-20, tremolo frequency >= 0.1 Hz);
- ``raw``: ``{"raw": {"atempo": {"tempo": 1.25}}}`` (options as an object) or
  ``{"raw": {"atempo": "1.25"}}`` (libav's option string);
- Discodo's filter object: ``{"atempo": "1.25", "equalizer": "f=1000:g=3"}``: a key naming a
  whitelisted libav filter with a string value (docs/discodo.md).

Libav filters come from the whitelist in ``protocol/rawfilters.py`` and are chained after
Lavalink's in the order given. The whole chain's time stretch (timescale, atempo, asetrate)
is bounded (:data:`STRETCH_MIN` - :data:`STRETCH_MAX`), so no setting makes the resampler
produce audio without bound. Every error names the filter and the parameter::

    invalid filter `timescale.speed`: expected `float` >= 0.05
    invalid filter `raw.asetrate.sample_rate`: expected an integer between 8000 and 192000, ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from audionode.errors import BadRequest
from audionode.protocol.rawfilters import RAW_FILTERS, RawFilterError, parse_raw
from audionode.validation import explain

RAW_ALLOWED = frozenset(RAW_FILTERS)
"""libav filters a bot may name (``raw`` or Discodo's form); see ``protocol/rawfilters.py``."""
MAX_RAW = 16
"""libav filters in one set at most."""
STRETCH_MIN = 0.05
STRETCH_MAX = 20.0
"""Bounds of the chain's time stretch (output length / input length), at every stage."""
_RATE = 48000

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
    raw: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    """Whitelisted libav filters in chain order, each with its typed options."""

    @property
    def is_identity(self) -> bool:
        """True when the set changes nothing (opus passthrough stays possible): exactly when
        ``audionode.media.filters.stages`` makes no stage and the volume is 1."""
        return self.volume == 1.0 and not _has_effect(self)


class FilterError(BadRequest):
    """A filter set was refused; the message names the filter and the parameter."""


def parse_filters(data: Mapping[str, Any] | Filters | None) -> Filters:
    """Validate a filter object (Lavalink, ``raw``, Discodo's form); raise
    :class:`FilterError` naming the field."""
    if isinstance(data, Filters):
        data = msgspec.to_builtins(data)
    if data is not None and not isinstance(data, Mapping):
        raise FilterError(f"invalid filter `filters`: expected an object, got {data!r}")
    lavalink, raw = _split(dict(data or {}))
    try:
        spec = msgspec.convert(lavalink, Filters)
    except msgspec.ValidationError as e:
        raise FilterError(_explain(e)) from None
    if len(raw) > MAX_RAW:
        raise FilterError(f"invalid filter `raw`: more than {MAX_RAW} libav filters")
    typed: dict[str, dict[str, Any]] = {}
    for name, args in raw.items():
        try:
            typed[name] = parse_raw(name, args)
        except RawFilterError as e:
            raise FilterError(f"invalid filter `raw.{e.field}`: {e.problem}") from None
    spec = msgspec.structs.replace(spec, raw=typed)
    _check_stretch(spec)
    return spec


_LAVALINK = frozenset(f.encode_name for f in msgspec.structs.fields(Filters))


def _split(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Lavalink's part and the libav filters (``raw`` first, then Discodo-style keys)."""
    raw = data.pop("raw", None)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise FilterError(f"invalid filter `raw`: expected an object, got {raw!r}")
    raw = dict(raw)
    lavalink = {}
    for key, value in data.items():
        discodo = key in RAW_FILTERS and (key not in _LAVALINK or isinstance(value, str))
        if not discodo:
            lavalink[key] = value
        elif key in raw:
            raise FilterError(f"invalid filter `{key}`: given both in `raw` and on its own")
        else:
            raw[key] = value
    return lavalink, raw


def _check_stretch(spec: Filters) -> None:
    """Follow the chain's sample count and rate stage by stage (see ``media/filters.py``)
    and refuse a set that would stretch time beyond the bounds anywhere."""
    count, rate = 1.0, float(_RATE)
    if (t := spec.timescale) is not None:
        _bound(1.0 / (t.pitch * t.rate), "timescale")  # resampled by this inside the chain
        count = 1.0 / (t.speed * t.rate)
        _bound(count, "timescale")
    for name, options in spec.raw.items():
        if name == "atempo":
            count /= float(options.get("tempo", 1.0))
        elif name == "asetrate":
            rate = float(options.get("sample_rate", rate))
        else:
            continue
        _bound(count, f"raw.{name}")
        _bound(count * _RATE / rate, f"raw.{name}")


def _bound(stretch: float, field: str) -> None:
    if not STRETCH_MIN <= stretch <= STRETCH_MAX:
        raise FilterError(
            f"invalid filter `{field}`: the filters would play the audio at {1 / stretch:.3g}x "
            f"its speed; the set must stay within {1 / STRETCH_MAX:g}x-{1 / STRETCH_MIN:g}x"
        )


def _explain(err: msgspec.ValidationError) -> str:
    field, problem = explain(err, Filters)
    if problem.startswith("is unknown"):
        if "." in field:
            return f"unknown parameter `{field}`"
        return (
            f"unknown filter `{field}` (expected one of: {', '.join(sorted(_LAVALINK))}, "
            f"or a libav filter: {', '.join(sorted(RAW_ALLOWED))})"
        )
    if problem == "is required":
        return f"invalid filter `{field}`: required"
    return f"invalid filter `{field or 'filters'}`: {problem}"


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
