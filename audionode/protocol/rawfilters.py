"""The libavfilter filters a bot may name directly, described as data: each filter's allowed
options, their types and bounds. Pure (no libav): the control process validates with it.

Nothing a bot sends reaches libav as text. A raw filter arrives as libav's own option string
(Discodo's form, ``{"equalizer": "f=1000:t=o:w=2:g=5"}``, ``{"atempo": "1.25"}``) or as an
object of options (``{"raw": {"atempo": {"tempo": 1.25}}}``); both are parsed here into typed,
range-checked values, and the engine writes the libav arguments from those values alone
(``media/filters.py``). Expressions (``48000*1.25``), file names, channel layouts and any
option not listed are refused, with the filter and option named.

The list leaves out filters that evaluate expressions (aeval, pan with formulas, volume's
expression mode is unreachable: only a number is written), open files or devices (amovie,
firequalizer's dumpfile, arnndn's model), buffer without bound (apad, aloop, areverse,
dynaudnorm's window), change the stream's timing other than by the tempo and rate filters
the chain accounts for, or were found to hang: speechnorm never returns once a NaN sample
reaches it (found by the property test of tests/media/test_filters.py; a NaN can come from
the media itself or from an earlier filter), which would stop the shared producer thread.

Bounds are libav's own, narrowed where a larger value costs memory or CPU without a musical
use (echo and delay lengths, oversampling).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Value = float | int | str | bool | list[float] | list[dict[str, float]]


class RawFilterError(ValueError):
    """``field`` (e.g. ``atempo.tempo``) and what was expected."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?$")


def _number(raw: Any) -> float:
    plain = isinstance(raw, int | float) and not isinstance(raw, bool)
    if not (plain or (isinstance(raw, str) and _NUMBER.match(raw.strip()))):
        raise ValueError
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError
    return value


@dataclass(frozen=True)
class Num:
    lo: float
    hi: float
    integer: bool = False

    def parse(self, raw: Any) -> float | int:
        kind = "an integer" if self.integer else "a number"
        expected = f"expected {kind} between {self.lo:g} and {self.hi:g}, got {raw!r}"
        try:
            value = _number(raw)
        except ValueError:
            raise ValueError(expected) from None
        if (self.integer and value != int(value)) or not self.lo <= value <= self.hi:
            raise ValueError(expected)
        return int(value) if self.integer else value


@dataclass(frozen=True)
class Flag:
    def parse(self, raw: Any) -> bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true"):
            return True
        if text in ("0", "false"):
            return False
        raise ValueError(f"expected true or false, got {raw!r}")


@dataclass(frozen=True)
class Choice:
    values: tuple[str, ...]

    def parse(self, raw: Any) -> str:
        if isinstance(raw, str) and raw in self.values:
            return self.values[self.values.index(raw)]  # our constant, not the input string
        raise ValueError(f"expected one of {', '.join(self.values)}, got {raw!r}")


@dataclass(frozen=True)
class NumList:
    """Numbers joined by ``|`` in libav (``"1000|1800"``), a JSON list in the object form."""

    item: Num
    most: int = 8

    def parse(self, raw: Any) -> list[float]:
        items = raw.split("|") if isinstance(raw, str) else raw
        if not isinstance(items, list) or not 1 <= len(items) <= self.most:
            raise ValueError(f"expected 1 to {self.most} numbers joined by '|', got {raw!r}")
        return [float(self.item.parse(x)) for x in items]


_BAND_KEYS = {"f": Num(1, 24000), "w": Num(0.1, 24000), "g": Num(-30, 30), "t": Num(0, 2, True)}


@dataclass(frozen=True)
class Bands:
    """anequalizer's ``params``: ``"c0 f=1000 w=100 g=2 t=0|c1 f=..."`` or a JSON list of
    ``{"c": 0, "f": 1000, "w": 100, "g": 2, "t": 0}``."""

    most: int = 32

    def parse(self, raw: Any) -> list[dict[str, float]]:
        items = raw.split("|") if isinstance(raw, str) else raw
        if not isinstance(items, list) or not 1 <= len(items) <= self.most:
            raise ValueError(f"expected 1 to {self.most} bands joined by '|', got {raw!r}")
        return [self._band(item) for item in items]

    def _band(self, item: Any) -> dict[str, float]:
        if isinstance(item, str):
            words = item.split()
            if not words or not re.fullmatch(r"c\d", words[0]):
                raise ValueError(f"a band starts with its channel (c0, c1...), got {item!r}")
            pairs = [w.partition("=")[::2] for w in words[1:]]
            item = {"c": words[0][1:], **dict(pairs)}
        if not isinstance(item, dict) or set(item) - {"c", *_BAND_KEYS}:
            raise ValueError(f"a band has c, f, w, g and t, got {item!r}")
        band = {"c": Num(0, 7, True).parse(item.get("c"))}
        for key, kind in _BAND_KEYS.items():
            if key in item:
                band[key] = kind.parse(item[key])
        if "f" not in band:
            raise ValueError(f"a band needs its frequency f, got {item!r}")
        return band


Kind = Num | Flag | Choice | NumList | Bands


@dataclass(frozen=True)
class RawFilter:
    """One whitelisted filter: its options (libav names) and how libav's string form maps
    onto them (``short`` names, ``positional`` order)."""

    options: dict[str, Kind]
    short: dict[str, str] = field(default_factory=dict)
    positional: tuple[str, ...] = ()
    same_length: tuple[str, ...] = ()
    """List options that must have as many items as each other (libav's defaults for them
    have one item each)."""
    required: tuple[str, ...] = ()


LEVEL = Num(0.015625, 64)
MIX = Num(0, 1)
UNIT = Num(0, 1)
FLAG = Flag()
WIDTH_TYPE = Choice(("h", "q", "o", "s", "k"))
_BIQUAD: dict[str, Kind] = {
    "frequency": Num(1, 24000), "width_type": WIDTH_TYPE, "width": Num(0.01, 24000)
}
_BIQUAD_SHORT = {"f": "frequency", "t": "width_type", "w": "width", "g": "gain", "m": "mix",
                 "n": "normalize", "p": "poles", "o": "order"}
_TAIL: dict[str, Kind] = {"mix": MIX, "normalize": FLAG}
_SHELF: dict[str, Kind] = {**_BIQUAD, "gain": Num(-30, 30), "poles": Num(1, 2, True), **_TAIL}
_PASS: dict[str, Kind] = {**_BIQUAD, "poles": Num(1, 2, True), **_TAIL}


def _biquad(options: dict[str, Kind]) -> RawFilter:
    return RawFilter(options, short=_BIQUAD_SHORT)


RAW_FILTERS: dict[str, RawFilter] = {
    # tone shaping
    "equalizer": _biquad({**_BIQUAD, "gain": Num(-30, 30), **_TAIL}),
    "bass": _biquad(_SHELF),
    "treble": _biquad(_SHELF),
    "lowshelf": _biquad(_SHELF),
    "highshelf": _biquad(_SHELF),
    "lowpass": _biquad(_PASS),
    "highpass": _biquad(_PASS),
    "bandpass": _biquad({**_BIQUAD, "csg": FLAG, **_TAIL}),
    "bandreject": _biquad({**_BIQUAD, **_TAIL}),
    "allpass": _biquad({**_BIQUAD, "order": Num(1, 2, True), **_TAIL}),
    "anequalizer": RawFilter({"params": Bands()}, positional=("params",)),
    "superequalizer": RawFilter({f"{i}b": Num(0, 20) for i in range(1, 19)}),
    "asubboost": RawFilter(
        {"dry": UNIT, "wet": UNIT, "boost": Num(1, 12), "decay": UNIT, "feedback": UNIT,
         "cutoff": Num(50, 900), "slope": Num(0.0001, 1), "delay": Num(1, 100)}
    ),
    "asubcut": RawFilter({"cutoff": Num(2, 200), "order": Num(3, 20, True), "level": UNIT}),
    "asuperpass": RawFilter(
        {"centerf": Num(20, 20000), "order": Num(4, 20, True), "qfactor": Num(0.01, 100),
         "level": Num(0, 2)}
    ),
    "asuperstop": RawFilter(
        {"centerf": Num(20, 20000), "order": Num(4, 20, True), "qfactor": Num(0.01, 100),
         "level": Num(0, 2)}
    ),
    "virtualbass": RawFilter({"cutoff": Num(100, 500), "strength": Num(0.5, 3)}),
    # dynamics and saturation
    "acompressor": RawFilter(
        {"level_in": LEVEL, "mode": Choice(("downward", "upward")),
         "threshold": Num(0.000976563, 1), "ratio": Num(1, 20), "attack": Num(0.01, 2000),
         "release": Num(0.01, 9000), "makeup": Num(1, 64), "knee": Num(1, 8),
         "link": Choice(("average", "maximum")), "detection": Choice(("peak", "rms")),
         "level_sc": LEVEL, "mix": MIX}
    ),
    "agate": RawFilter(
        {"level_in": LEVEL, "mode": Choice(("downward", "upward")), "range": UNIT,
         "threshold": UNIT, "ratio": Num(1, 100), "attack": Num(0.01, 9000),
         "release": Num(0.01, 9000), "makeup": Num(1, 64), "knee": Num(1, 8),
         "detection": Choice(("peak", "rms")), "link": Choice(("average", "maximum")),
         "level_sc": LEVEL}
    ),
    "alimiter": RawFilter(
        {"level_in": LEVEL, "level_out": LEVEL, "limit": Num(0.0625, 1), "attack": Num(0.1, 80),
         "release": Num(1, 8000), "asc": FLAG, "asc_level": UNIT, "level": FLAG,
         "latency": FLAG}
    ),
    "acontrast": RawFilter({"contrast": Num(0, 100)}, positional=("contrast",)),
    "asoftclip": RawFilter(
        {"type": Choice(("hard", "tanh", "atan", "cubic", "exp", "alg", "quintic", "sin",
                         "erf")),
         "threshold": Num(0.000001, 1), "output": Num(0.000001, 16), "param": Num(0.01, 3),
         "oversample": Num(1, 4, True)}
    ),
    "acrusher": RawFilter(
        {"level_in": LEVEL, "level_out": LEVEL, "bits": Num(1, 64), "mix": MIX,
         "mode": Choice(("lin", "log")), "dc": Num(0.25, 4), "aa": UNIT,
         "samples": Num(1, 250), "lfo": FLAG, "lforange": Num(1, 250),
         "lforate": Num(0.01, 200)}
    ),
    "aexciter": RawFilter(
        {"level_in": Num(0, 64), "level_out": Num(0, 64), "amount": Num(0, 64),
         "drive": Num(0.1, 10), "blend": Num(-10, 10), "freq": Num(2000, 12000),
         "ceil": Num(9999, 20000), "listen": FLAG}
    ),
    "dcshift": RawFilter({"shift": Num(-1, 1), "limitergain": UNIT}, positional=("shift",)),
    "deesser": RawFilter(
        {"i": UNIT, "m": UNIT, "f": UNIT, "s": Choice(("i", "o", "e"))}
    ),
    "dialoguenhance": RawFilter(
        {"original": UNIT, "enhance": Num(0, 3), "voice": Num(2, 32)}
    ),
    # stereo image
    "extrastereo": RawFilter({"m": Num(-10, 10), "c": FLAG}),
    "crystalizer": RawFilter({"i": Num(-10, 10), "c": FLAG}),
    "stereowiden": RawFilter(
        {"delay": Num(1, 100), "feedback": Num(0, 0.9), "crossfeed": Num(0, 0.8),
         "drymix": UNIT}
    ),
    "crossfeed": RawFilter(
        {"strength": UNIT, "range": UNIT, "slope": Num(0.01, 1), "level_in": UNIT,
         "level_out": UNIT}
    ),
    "earwax": RawFilter({}),
    "stereotools": RawFilter(
        {"level_in": LEVEL, "level_out": LEVEL, "balance_in": Num(-1, 1),
         "balance_out": Num(-1, 1), "softclip": FLAG, "mutel": FLAG, "muter": FLAG,
         "phasel": FLAG, "phaser": FLAG,
         # (libav reads + and - in a constant's name as flag arithmetic: lr>l+r, lr>l-r
         # cannot be set by name, so they are not offered)
         "mode": Choice(("lr>lr", "lr>ms", "ms>lr", "lr>ll", "lr>rr", "lr>rl", "ms>ll",
                         "ms>rr", "ms>rl")),
         "slev": LEVEL, "sbal": Num(-1, 1), "mlev": LEVEL, "mpan": Num(-1, 1),
         "base": Num(-1, 1), "delay": Num(-20, 20), "sclevel": Num(1, 100),
         "phase": Num(0, 360)}
    ),
    "apulsator": RawFilter(
        {"level_in": LEVEL, "level_out": LEVEL,
         "mode": Choice(("sine", "triangle", "square", "sawup", "sawdown")),
         "amount": UNIT, "offset_l": UNIT, "offset_r": UNIT, "width": Num(0, 2),
         "timing": Choice(("bpm", "ms", "hz")), "bpm": Num(30, 300), "ms": Num(10, 2000),
         "hz": Num(0.01, 100)}
    ),
    # modulation and delay
    "tremolo": RawFilter({"f": Num(0.1, 20000), "d": UNIT}),
    "vibrato": RawFilter({"f": Num(0.1, 20000), "d": UNIT}),
    "aphaser": RawFilter(
        {"in_gain": UNIT, "out_gain": UNIT, "delay": Num(0.1, 5), "decay": Num(0, 0.99),
         "speed": Num(0.1, 2), "type": Choice(("triangular", "t", "sinusoidal", "s"))}
    ),
    "flanger": RawFilter(
        {"delay": Num(0, 30), "depth": Num(0, 10), "regen": Num(-95, 95),
         "width": Num(0, 100), "speed": Num(0.1, 10),
         "shape": Choice(("triangular", "t", "sinusoidal", "s")), "phase": Num(0, 100),
         "interp": Choice(("linear", "quadratic"))}
    ),
    "chorus": RawFilter(
        {"in_gain": UNIT, "out_gain": UNIT, "delays": NumList(Num(1, 100)),
         "decays": NumList(Num(0.001, 1)), "speeds": NumList(Num(0.1, 10)),
         "depths": NumList(Num(0, 10))},
        positional=("in_gain", "out_gain", "delays", "decays", "speeds", "depths"),
        same_length=("delays", "decays", "speeds", "depths"),
        required=("delays", "decays", "speeds", "depths"),
    ),
    "aecho": RawFilter(
        {"in_gain": UNIT, "out_gain": UNIT, "delays": NumList(Num(1, 5000)),
         "decays": NumList(Num(0.001, 1))},
        positional=("in_gain", "out_gain", "delays", "decays"),
        same_length=("delays", "decays"),
    ),
    "adelay": RawFilter(
        {"delays": NumList(Num(0, 5000), 2), "all": FLAG}, positional=("delays",)
    ),
    "afreqshift": RawFilter(
        {"shift": Num(-5000, 5000), "level": UNIT, "order": Num(1, 16, True)}
    ),
    "aphaseshift": RawFilter({"shift": Num(-1, 1), "level": UNIT, "order": Num(1, 16, True)}),
    # tempo and rate (accounted for by the chain's stretch bound, protocol/filters.py)
    "atempo": RawFilter({"tempo": Num(0.5, 4)}, positional=("tempo",)),
    "asetrate": RawFilter(
        {"sample_rate": Num(8000, 192000, True)}, short={"r": "sample_rate"},
        positional=("sample_rate",),
    ),
    "volume": RawFilter({"volume": Num(0, 5)}, positional=("volume",)),
    "anull": RawFilter({}),
}
"""The whitelist: filter → allowed options (libav names), their types and bounds."""

_KEY = re.compile(r"^[A-Za-z0-9_]+$")


def parse_raw(name: str, args: Any) -> dict[str, Value]:
    """Typed options of raw filter ``name`` from libav's string form or an options object.
    Raises :class:`RawFilterError` naming the filter (and option) at fault."""
    spec = RAW_FILTERS.get(name)
    if spec is None:
        allowed = ", ".join(sorted(RAW_FILTERS))
        raise RawFilterError(name, f"not a libav filter the node allows (allowed: {allowed})")
    if isinstance(args, str):
        given = _split(name, spec, args)
    elif isinstance(args, Mapping):
        given = {str(k): v for k, v in args.items()}
    else:
        raise RawFilterError(name, f"expected options as a string or an object, got {args!r}")
    out: dict[str, Value] = {}
    for key, raw in given.items():
        option = spec.short.get(key, key)
        kind = spec.options.get(option)
        if kind is None:
            raise RawFilterError(f"{name}.{key}", _unknown(spec))
        try:
            out[option] = kind.parse(raw)
        except ValueError as e:
            raise RawFilterError(f"{name}.{option}", str(e)) from None
    _same_length(name, spec, out)
    if missing := [k for k in spec.required if k not in out]:
        raise RawFilterError(name, f"needs {', '.join(missing)}")
    return out


def _split(name: str, spec: RawFilter, text: str) -> dict[str, str]:
    """libav's ``key=value:key=value`` (leading values by position) without its escapes."""
    if len(text) > 2000 or any(c in text for c in "\\'\"[];,\n"):
        raise RawFilterError(name, "expected plain options like `f=1000:g=3` (no quotes, "
                                   "escapes or filter-graph syntax)")
    given: dict[str, str] = {}
    keyed = False
    for i, token in enumerate(text.split(":") if text.strip() else []):
        if not token.strip():
            raise RawFilterError(name, f"an empty option in {text!r}")
        key, sep, value = token.partition("=")
        if sep and _KEY.match(key):
            keyed = True
        elif keyed or i >= len(spec.positional):
            raise RawFilterError(name, f"`{token}` needs a name (name=value); {_unknown(spec)}")
        else:
            key, value = spec.positional[i], token
        if spec.short.get(key, key) in {spec.short.get(k, k) for k in given}:
            raise RawFilterError(f"{name}.{key}", "given twice")
        given[key] = value.strip()
    return given


def _unknown(spec: RawFilter) -> str:
    short = {long: key for key, long in spec.short.items() if long in spec.options}
    names = ", ".join(f"{o} ({short[o]})" if o in short else o for o in spec.options)
    return f"not an allowed option (allowed: {names or 'none'})"


def _same_length(name: str, spec: RawFilter, out: dict[str, Value]) -> None:
    lengths = {k: len(v) if isinstance(v := out.get(k, [0]), list) else 1 for k in spec.same_length}
    if len(set(lengths.values())) > 1:
        raise RawFilterError(name, f"{', '.join(lengths)} must have as many items each")
