"""The demo's printed report: plain text, aligned columns, nothing but what was measured."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, Final

from audionode.demo.analysis import Check, Window
from audionode.demo.bot import BotEvent
from audionode.demo.listener import Stream
from audionode.voice.dave import DaveState

SHOWN: Final = (
    "VC_CREATED",
    "VOICE_CONNECTED",
    "SOURCE_START",
    "SOURCE_STOP",
    "SOURCE_TRACEBACK",
    "PLAYER_TRACEBACK",
    "VOICE_CLOSED",
)
"""Bot events printed one per line; the others are only counted."""
_QUIET: Final = ("HELLO", "IDENTIFIED")


def events(log: Sequence[BotEvent], t0: float) -> Iterator[str]:
    """One line per shown event, seconds since ``t0``; then a count of the rest."""
    yield "Bot events (seconds since start)"
    for e in log:
        if e.op in SHOWN:
            yield f"  {e.at - t0:6.2f}  {e.op:<16} {_describe(e.op, e.d)}".rstrip()
    rest = Counter(e.op for e in log if e.op not in SHOWN and e.op not in _QUIET)
    if rest:
        yield "          also: " + ", ".join(f"{n} {op}" for op, n in sorted(rest.items()))


def _describe(op: str, d: dict[str, Any]) -> str:
    if op == "VOICE_CONNECTED":
        return f"ssrc {d['ssrc']}, {d['mode']}, DAVE v{d['dave_protocol_version']}"
    if op == "VC_CREATED":
        return f"voice client {d.get('id', '?')}"
    if op == "SOURCE_START":
        return str(d["source"].get("title", "?"))
    if op == "SOURCE_STOP":
        return f"{d['source'].get('title', '?')}: {d.get('reason')}"
    if op == "VOICE_CLOSED":
        return f"{d.get('code')} {d.get('reason')!r}, by remote: {d.get('by_remote')}"
    return str(d.get("traceback", d))


def listener(
    user_id: int, mode: str | None, dave: DaveState, stream: Stream, expected: str
) -> Iterator[str]:
    """The listener's connection state and what arrived from the bot."""
    audio = stream.packets - stream.silence_frames
    code = dave.voice_privacy_code or ""
    groups = " ".join(code[i : i + 5] for i in range(0, len(code), 5)) or "none"
    yield f"Listener (user {user_id})"
    yield f"  transport   {mode}"
    yield f"  DAVE        v{dave.protocol_version}, epoch {dave.epoch}, privacy code {groups}"
    yield (
        f"  packets     {stream.packets} from the bot (SSRC {stream.ssrc}): {audio} audio + "
        f"{stream.silence_frames} silence, {stream.lost} lost, {len(stream.errors)} errors"
    )
    yield f"              {stream.dave_frames} of the {audio} audio frames DAVE-encrypted"
    if stream.errors:
        yield f"              first error: {stream.errors[0]}"
    yield f"  decoded     {stream.audio_seconds:.2f} s of audio (queued {expected})"


def heard(windows: Sequence[Window]) -> Iterator[str]:
    """One line per analysis window: span, level, tones."""
    yield "Heard (stream time, level, tones)"
    if not windows:
        yield "  nothing"
    for w in windows:
        level = f"{20 * math.log10(w.rms):4.0f} dBFS" if w.rms > 1e-5 else "  silent "
        names = " + ".join(f"{f:.0f} Hz" for f in sorted(w.tones)) or "-"
        span = f"{w.start:.1f}-{w.end:.1f} s"
        yield f"  {span:>10}  {level}  {names}"


def checks(results: Sequence[Check]) -> Iterator[str]:
    yield "Self-check"
    width = max((len(c.name) for c in results), default=0)
    for c in results:
        yield f"  {'ok' if c.ok else 'FAIL':<4}  {c.name:<{width}}  {c.detail}"
