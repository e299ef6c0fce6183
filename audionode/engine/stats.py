"""Frame counters for ``/status``: what the engines report, turned into totals and rates.

Each engine (the in-process one, or one per worker) emits an :class:`EngineStats` event every
few seconds with cumulative counters (issue 7: sent, nulled, deficit, per player and per
node). The host feeds them to a :class:`StatsBook`, which keeps about a minute of reports per
engine and answers :meth:`StatsBook.snapshot` with totals plus per-minute rates computed from
the oldest and newest report of that window. Nothing here runs per frame.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from audionode.engine.messages import (
    LATE_BOUNDS,
    TICK_BOUNDS,
    EngineStats,
    FrameCounters,
    Histogram,
)

WINDOW: Final = 60.0
"""Seconds of reports kept per engine for the per-minute rates."""
_RATED: Final = ("sent", "nulled", "deficit")


def _counters(c: FrameCounters) -> dict[str, Any]:
    return {
        "sent": c.sent,
        "nulled": c.nulled,
        "deficit": c.deficit,
        "silence": c.silence,
        "errors": c.errors,
    }


def _per_minute(new: FrameCounters, old: FrameCounters | None, span: float) -> dict[str, float]:
    if old is None or span <= 0:
        return {}
    return {f: round((getattr(new, f) - getattr(old, f)) * 60.0 / span, 1) for f in _RATED}


_FRAME_FIELDS: Final = ("sent", "nulled", "deficit", "silence", "errors")


@dataclass(slots=True)
class Lifetime:
    """Counters of one engine slot over the node's life: every worker that served the slot,
    the dead ones included (what ``/metrics`` exports, so no counter goes backwards when a
    respawned worker starts again from 0)."""

    frames: FrameCounters = field(default_factory=FrameCounters)
    ticks: int = 0
    resyncs: int = 0
    late: Histogram = field(default_factory=lambda: Histogram.empty(LATE_BOUNDS))
    tick: Histogram = field(default_factory=lambda: Histogram.empty(TICK_BOUNDS))

    def plus(self, report: EngineStats) -> Lifetime:
        """A new total: these counters plus those of ``report`` (cumulative since its
        worker started)."""
        out = Lifetime(
            frames=FrameCounters(
                **{f: getattr(self.frames, f) + getattr(report.totals, f) for f in _FRAME_FIELDS}
            ),
            ticks=self.ticks + report.ticks,
            resyncs=self.resyncs + report.resyncs,
            late=_add(self.late, report.late),
            tick=_add(self.tick, report.tick),
        )
        return out


def _add(mine: Histogram, theirs: Histogram | None) -> Histogram:
    if theirs is None or len(theirs.counts) != len(mine.counts):
        return Histogram(counts=list(mine.counts), total=mine.total)
    return Histogram(
        counts=[a + b for a, b in zip(mine.counts, theirs.counts, strict=True)],
        total=mine.total + theirs.total,
    )


class StatsBook:
    """The latest minute of :class:`EngineStats` per engine slot.

    ``add(slot, report, now)`` on every report (``now``: the receiver's monotonic clock, so no
    cross-process clocks are compared); ``forget(slot)`` when an engine died (its counters
    restart with the replacement); ``snapshot()`` for ``/status``.
    """

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._reports: dict[int, deque[tuple[float, EngineStats]]] = {}
        self._retired: dict[int, Lifetime] = {}
        """Per slot, the last counters of its dead workers, summed."""

    def add(self, slot: int, report: EngineStats, now: float) -> None:
        reports = self._reports.setdefault(slot, deque())
        reports.append((now, report))
        # Keep one report older than the window so the rate spans a whole minute.
        while len(reports) > 2 and now - reports[1][0] >= self.window:
            reports.popleft()

    def forget(self, slot: int) -> None:
        """The slot's engine died: its rates restart with the replacement; its last report's
        counters are kept in :meth:`lifetime` (what it sent after that report is not)."""
        reports = self._reports.pop(slot, None)
        if reports:
            self._retired[slot] = self._retired.get(slot, Lifetime()).plus(reports[-1][1])

    def lifetime(self) -> dict[int, Lifetime]:
        """Per slot, the counters of every engine that served it (monotonic across restarts)."""
        out: dict[int, Lifetime] = {}
        for slot in sorted(self._retired.keys() | self._reports.keys()):
            total = self._retired.get(slot, Lifetime())
            reports = self._reports.get(slot)
            out[slot] = total.plus(reports[-1][1]) if reports else total
        return out

    def dave(self) -> dict[int, bool]:
        """Per player key, whether its frames leave DAVE-encrypted (latest reports)."""
        return {
            key: c.dave
            for reports in self._reports.values()
            for key, c in reports[-1][1].players.items()
        }

    def latest(self, slot: int) -> EngineStats | None:
        """The newest report of ``slot`` (None: none since its engine started)."""
        reports = self._reports.get(slot)
        return reports[-1][1] if reports else None

    def window_frames(self, slot: int) -> tuple[int, int]:
        """``(sent, deficit)`` of ``slot`` over the reports kept (about :attr:`window`)."""
        reports = self._reports.get(slot)
        if not reports or len(reports) < 2:
            return 0, 0
        old, new = reports[0][1].totals, reports[-1][1].totals
        return new.sent - old.sent, new.deficit - old.deficit

    def snapshot(self) -> dict[str, Any]:
        """``{"frames": totals, "frames_per_minute": rates, "players": {key: ...},
        "engines": {slot: timing}, "hearing": {VDP counters, recordings}}``; rates are empty
        until two reports arrived."""
        totals = FrameCounters()
        rate_totals: dict[str, float] = {}
        players: dict[str, Any] = {}
        engines: dict[str, Any] = {}
        hearing: dict[str, int] = {}
        for slot, reports in self._reports.items():
            then, old = reports[0]
            now, new = reports[-1]
            span = now - then if old is not new else 0.0
            for f in ("sent", "nulled", "deficit", "silence", "errors"):
                setattr(totals, f, getattr(totals, f) + getattr(new.totals, f))
            for f, v in _per_minute(new.totals, old.totals, span).items():
                rate_totals[f] = rate_totals.get(f, 0.0) + v
            for key, c in new.players.items():
                entry = _counters(c)
                entry["dave"] = c.dave
                entry["per_minute"] = _per_minute(c, old.players.get(key), span)
                players[str(key)] = entry
            for name, n in new.hearing.items():
                hearing[name] = hearing.get(name, 0) + n
            engines[str(slot)] = {
                "players": len(new.players),
                "ticks": new.ticks,
                "resyncs": new.resyncs,
                "late_max_ms": new.late_max_ms,
                "tick_max_ms": new.tick_max_ms,
                "tick_mean_ms": new.tick_mean_ms,
                "cpu": new.cpu,
                "shared": new.shared,
                "realtime": new.realtime,
            }
        return {
            "frames": _counters(totals),
            "frames_per_minute": rate_totals,
            "players": players,
            "engines": engines,
            "hearing": hearing,
        }
