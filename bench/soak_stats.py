"""What ``bench/soak.py`` computes from the counting sink's packets and its RSS samples.

The sink (``bench/sink.py``) hands over raw ``(ssrc, kernel arrival time)`` pieces; a guild's
SSRC changes whenever its voice connection is rebuilt (worker restored, voice server
restarted), so packets are mapped to guilds through the SSRCs the bot's ``VOICE_CONNECTED``
events announced, at analysis time (a stream's first packets may arrive before its event).
Times are ``time.time()`` seconds: the sink's ``SO_TIMESTAMPNS`` stamps are on the same clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.sink import MISS_MS

TARGET_PPS = 49.5
"""Packets per second per stream that count as "playing at rate" (issue 11: 50 packets/s)."""


def _round(x: float, digits: int = 3) -> float:
    return round(float(x), digits)


@dataclass
class Piece:
    """One cut of the sink: its time span and its raw packets."""

    t0: float
    t1: float
    ssrcs: np.ndarray
    stamps: np.ndarray


class Packets:
    """The sink's pieces of the last :attr:`keep` seconds, read per guild.

    ``guilds`` are the streams under test (the index of a guild in it is its stream number);
    packets of any other SSRC (other bots, unknown) are ignored."""

    def __init__(self, guilds: Sequence[int], keep: float = 120.0) -> None:
        self.guilds = list(guilds)
        self._index = {g: i for i, g in enumerate(self.guilds)}
        self.keep = keep
        self.pieces: deque[Piece] = deque()

    def add(self, piece: Piece) -> None:
        self.pieces.append(piece)
        while self.pieces and self.pieces[0].t1 < piece.t1 - self.keep:
            self.pieces.popleft()

    def streams(
        self,
        ssrc_guild: Mapping[int, int],
        t_from: float,
        t_to: float,
        dead: Mapping[int, float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(stream number, arrival time)`` of every packet of a guild under test that
        arrived in ``[t_from, t_to)``, sorted by stream then time. ``dead`` maps SSRCs to the
        time their voice server went away: later packets of theirs would reach no one (they
        reach the sink only because it stands in for the voice server's UDP port), so they
        are left out."""
        keys, vals = _lookup(ssrc_guild, self._index)
        dkeys, dtimes = _lookup(dead or {}, None)
        out_s, out_t = [], []
        for p in self.pieces:
            if p.t1 < t_from or p.t0 > t_to or not len(p.ssrcs) or not len(keys):
                continue
            keep = (p.stamps >= t_from) & (p.stamps < t_to)
            ssrcs, stamps = p.ssrcs[keep].astype(np.int64), p.stamps[keep]
            stream = _find(keys, vals, ssrcs, -1)
            died = _find(dkeys, dtimes, ssrcs, np.inf)
            mine = (stream >= 0) & (stamps < died)
            out_s.append(stream[mine])
            out_t.append(stamps[mine])
        s = np.concatenate(out_s) if out_s else np.zeros(0, np.int64)
        t = np.concatenate(out_t) if out_t else np.zeros(0)
        order = np.lexsort((t, s))
        return s[order], t[order]


def _lookup(
    mapping: Mapping[int, Any], index: Mapping[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted keys and their values (through ``index``, -1 if absent) as arrays."""
    keys = np.fromiter(mapping.keys(), np.int64, len(mapping))
    values = (
        np.fromiter((index.get(g, -1) for g in mapping.values()), np.int64, len(mapping))
        if index is not None
        else np.fromiter(mapping.values(), np.float64, len(mapping))
    )
    order = np.argsort(keys)
    return keys[order], values[order]


def _find(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray, missing: Any) -> np.ndarray:
    if not len(keys):
        return np.full(len(wanted), missing)
    pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[pos] == wanted, values[pos], missing)


def gaps(s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Consecutive-packet gaps per stream of sorted ``(s, t)``: ``(stream, end time, ms)``."""
    same = s[1:] == s[:-1]
    return s[1:][same], t[1:][same], (np.diff(t) * 1000.0)[same]


def gap_summary(ms: np.ndarray) -> dict[str, Any]:
    if not len(ms):
        return {"gaps": 0}
    return {
        "gaps": len(ms),
        "gap_p50_ms": _round(np.percentile(ms, 50)),
        "gap_p99_ms": _round(np.percentile(ms, 99)),
        "gap_max_ms": _round(ms.max()),
        "missed": int(np.count_nonzero(ms > MISS_MS)),
    }


def window_row(s: np.ndarray, t: np.ndarray, n: int, span: float) -> dict[str, Any]:
    """One timeline row: packets/s per stream (mean, min over the ``n`` streams; a stream
    with no packet counts 0) and the pooled gaps of the window."""
    counts = np.bincount(s, minlength=n)[:n] if len(s) else np.zeros(n, np.int64)
    pps = counts / span if span > 0 else counts * 0.0
    _, _, ms = gaps(s, t)
    return {
        "pps_mean": _round(pps.mean()) if n else 0.0,
        "pps_min": _round(pps.min()) if n else 0.0,
        "silent_streams": int(np.count_nonzero(counts == 0)),
        **gap_summary(ms),
    }


def recovery(
    s: np.ndarray, t: np.ndarray, streams: np.ndarray, t0: float, t1: float
) -> dict[str, Any]:
    """Per-second packets per stream of ``streams`` from ``t0`` (the fault) to ``t1``: the
    seconds until the rate was back at :data:`TARGET_PPS` for good (every later whole second
    at or above it), the lowest second, and whether the last three seconds were at rate."""
    seconds = int(t1 - t0)
    if seconds < 1 or not len(streams):
        return {"recovery_s": None, "recovered": None, "pps_lowest_second": None}
    mine = np.isin(s, streams) & (t >= t0) & (t < t0 + seconds)
    per_second = np.bincount((t[mine] - t0).astype(np.int64), minlength=seconds)[:seconds]
    pps = per_second / len(streams)
    below = np.flatnonzero(pps < TARGET_PPS)
    last_ok = bool((pps[-3:] >= TARGET_PPS).all())
    return {
        "recovery_s": int(below[-1]) + 1 if len(below) else 0,
        "recovered": last_ok,
        "pps_lowest_second": _round(pps.min(), 2),
        "pps_per_second": [_round(x, 2) for x in pps],
    }


def silences(
    s: np.ndarray, t: np.ndarray, streams: np.ndarray, t0: float, t1: float
) -> dict[str, Any]:
    """The longest silence of each stream in ``streams`` overlapping ``[t0, t1]`` (``s, t``
    should start a little before ``t0`` so a silence that began just before counts whole),
    a stream still silent at ``t1`` counted up to ``t1``."""
    if not len(streams):
        return {"streams": 0}
    longest = np.zeros(len(streams))
    still_silent = 0
    for i, stream in enumerate(streams):
        lo, hi = np.searchsorted(s, stream, "left"), np.searchsorted(s, stream, "right")
        times = t[lo:hi]  # ``s`` is sorted by stream (:meth:`Packets.streams`)
        inside = times[(times > t0 - 1.0) & (times <= t1)]
        edges = np.concatenate(([t0 - 1.0], inside, [t1]))
        longest[i] = float(np.diff(edges).max())
        if not len(inside) or inside.max() < t1 - 1.0:
            still_silent += 1
    return {
        "streams": len(streams),
        "silence_max_s": _round(longest.max()),
        "silence_p50_s": _round(np.percentile(longest, 50)),
        "still_silent_at_end": still_silent,
    }


def others_gaps(
    s: np.ndarray, t: np.ndarray, excluded: np.ndarray, t0: float, t1: float
) -> dict[str, Any]:
    """Pooled gaps that ended in ``[t0, t1]`` of every stream not in ``excluded``."""
    gs, gt, ms = gaps(s, t)
    pick = ~np.isin(gs, excluded) & (gt >= t0) & (gt <= t1)
    return {"streams": len(np.unique(gs[pick])), **gap_summary(ms[pick])}


def rss_slopes(
    samples: Sequence[dict[str, Any]], after: float, settle: float = 30.0
) -> dict[str, Any]:
    """Least-squares RSS growth in MB per hour, over the samples taken at ``t >= after``.

    ``samples``: ``{"t": seconds, "processes": [{"pid", "role", "rss_mb"}]}``. The control
    process is one line; workers are pooled within each process (a killed worker's
    replacement starts small again, so a line through all their sums would hide a leak: each
    pid is centred on its own mean, and one slope fits all of them), each from ``settle``
    seconds after it was first seen (a new worker grows while it takes its players back)."""
    by_pid: dict[int, list[tuple[float, float]]] = {}
    roles: dict[int, str] = {}
    born: dict[int, float] = {}
    totals: list[tuple[float, float]] = []
    for sample in samples:
        t = sample["t"]
        for p in sample["processes"]:
            born.setdefault(p["pid"], t)
        if t < after:
            continue
        totals.append((t, sum(p["rss_mb"] for p in sample["processes"])))
        for p in sample["processes"]:
            if t >= born[p["pid"]] + settle or born[p["pid"]] == samples[0]["t"]:
                by_pid.setdefault(p["pid"], []).append((t, p["rss_mb"]))
                roles[p["pid"]] = p["role"]
    out: dict[str, Any] = {"samples": len(totals)}
    control = [pid for pid, role in roles.items() if role == "control"]
    out["control_mb_per_hour"] = _pooled([by_pid[pid] for pid in control])
    workers = [by_pid[pid] for pid, role in roles.items() if role.startswith("worker")]
    out["workers_mb_per_hour"] = _pooled(workers)
    out["total_mb_per_hour"] = _pooled([totals])
    return out


def _pooled(series: Sequence[Sequence[tuple[float, float]]]) -> float | None:
    num = den = 0.0
    for points in series:
        if len(points) < 3:
            continue
        a = np.asarray(points)
        dt, dr = a[:, 0] - a[:, 0].mean(), a[:, 1] - a[:, 1].mean()
        num += float((dt * dr).sum())
        den += float((dt * dt).sum())
    return _round(num / den * 3600.0, 1) if den > 0 else None
