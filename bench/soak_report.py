"""``bench/soak.py``'s verdicts and its printed report: each fault judged on its observation
window, the run judged on all of them, and the tables."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.soak_stats import TARGET_PPS, others_gaps, recovery, rss_slopes, silences

if TYPE_CHECKING:
    from bench.soak import Soak

HIT_OPS = ("PLAYER_TRACEBACK", "VOICE_CLOSED")
"""Events that mark a guild as hit by a fault (its worker died, its voice socket closed)."""
STALL_RSS_MB = 16.0
"""Most the control process may grow while a peer does not read (4 MiB outbound bound by
default, plus what the socket layers hold)."""
WS_BAD = ("close 1006", "close 1011", "close None")
"""``/ws`` outcomes that are no precise answer: an abnormal end or the server's own error."""


def judge(soak: Soak, record: dict[str, Any], obs_end: float) -> None:
    """Fill ``record`` (one fault) with its window's figures and checks."""
    rig, args = soak.rig, soak.args
    t0, t1 = soak.t_start + record["t"], soak.t_start + obs_end
    s, t = soak.packets.streams(rig.bot.ssrc_guild, t0 - 2.0, t1, rig.dead_ssrcs)
    index = {g: i for i, g in enumerate(rig.guilds)}
    if record["kind"] == "voice_restart":
        hit = set(index.values())
    else:
        hit = {
            index[g]
            for at, op, g, _ in soak.events
            if t0 <= at <= t1 and op in HIT_OPS and g in index
        }
    affected = np.array(sorted(hit), dtype=np.int64)
    every = np.arange(len(rig.guilds))
    rec = recovery(s, t, every, t0, t1)
    record.update(
        window_s=[record["t"], round(obs_end, 2)],
        affected=len(affected),
        recovery=rec,
        silence_all=silences(s, t, every, t0, t1),
        silence_affected=silences(s, t, affected, t0, t1),
        others=others_gaps(s, t, affected, t0, t1),
    )
    record["checks"] = _checks(record, args)
    record["judged"] = True


def _checks(record: dict[str, Any], args: argparse.Namespace) -> dict[str, bool | None]:
    rec, others, d = record["recovery"], record["others"], record.get("details", {})
    checks: dict[str, bool | None] = {
        "injected": "details" in record and "error" not in d,
        f"pps >= {TARGET_PPS} within {args.recover_within:g} s": (
            None
            if rec["recovered"] is None
            else bool(rec["recovered"] and rec["recovery_s"] <= args.recover_within)
        ),
        "no guild left silent": record["silence_all"].get("still_silent_at_end") == 0,
        f"others' gap p99 <= {args.gap_p99_limit:g} ms": (
            None if "gap_p99_ms" not in others else others["gap_p99_ms"] <= args.gap_p99_limit
        ),
    }
    kind = record["kind"]
    if kind == "worker_kill":
        checks["worker back"] = d.get("respawn_s") is not None
    elif kind == "voice_restart":
        checks["every guild rejoined"] = d.get("rejoin_failed") == 0
    elif kind == "stalled_bot":
        # The 4008 close frame waits behind the unread backlog, so the peer often sees 1006 when
        # the node gives up on the handshake: what counts is that the node ended it, in bounds.
        grew = d.get("control_rss_mb", [0.0, 1e9])
        checks["closed by the node, backlog bounded"] = (
            bool(d.get("closed_by_node")) and grew[1] - grew[0] <= STALL_RSS_MB
        )
        checks["its session lived on"] = d.get("session_resumed") is True
    elif kind == "bad_requests":
        checks["every answer 4xx"] = not d.get("not_4xx") and "statuses" in d
        checks["/ws: precise replies"] = all(
            v not in WS_BAD and v.startswith(("reply", "close")) for v in d.get("ws", {}).values()
        )
        checks["/health < 1 s"] = (
            d.get("health_failed") == 0 and (d.get("health_max_ms") or 1e9) < 1000
        )
    return checks


def judge_run(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, Any]:
    """The run's verdict from its timeline, RSS samples and judged faults."""
    rows, faults = result["timeline"], result["faults"]
    slopes = rss_slopes(result["rss_samples"], after=args.minutes * 60 / 5)
    limit = args.rss_slope_limit
    rss_ok = all(
        v is None or v <= limit
        for v in (slopes["control_mb_per_hour"], slopes["workers_mb_per_hour"])
    )
    failed = [
        f"{f['n']}:{f['kind']}: {name}"
        for f in faults
        for name, ok in f.get("checks", {}).items()
        if ok is False
    ]
    steady = steady_rows(rows, faults, args.interval)
    criteria = {
        "sessions lost = 0": not result["lost_sessions"],
        f"between faults: every stream at >= {TARGET_PPS} pkts/s": all(
            r["pps_mean"] >= TARGET_PPS and r["silent_streams"] == 0 for r in steady
        ),
        "at the end: every stream sounding": bool(rows) and rows[-1]["silent_streams"] == 0,
        f"RSS growth <= {limit:g} MB/hour (control, workers)": rss_ok,
        "every fault's checks": not failed and all("checks" in f for f in faults),
    }
    return {
        "pass": all(criteria.values()),
        "criteria": criteria,
        "failed_fault_checks": failed,
        "sessions_lost": len(result["lost_sessions"]),
        "rss_slopes": slopes,
        "rss_all_mb_first_last_peak": _first_last_peak([r["rss_all_mb"] for r in rows]),
        "rss_control_mb_first_last_peak": _first_last_peak([r["rss_control_mb"] for r in rows]),
        "pps_mean_of_rows": round(float(np.mean([r["pps_mean"] for r in rows])), 3)
        if rows
        else None,
        "pps_min_of_rows": min((r["pps_min"] for r in rows), default=None),
        "gap_p99_ms_worst_row": max((r.get("gap_p99_ms", 0.0) for r in rows), default=None),
        "steady_rows": len(steady),
        "steady_pps_min": min((r["pps_min"] for r in steady), default=None),
        "steady_gap_p99_ms_worst": max((r.get("gap_p99_ms", 0.0) for r in steady), default=None),
        "faults": len(faults),
    }


def steady_rows(
    rows: list[dict[str, Any]], faults: list[dict[str, Any]], interval: float
) -> list[dict[str, Any]]:
    """The timeline rows whose span overlaps no fault (from its start to the end of its
    window, or to when it finished if later), leaving out a short last row (a second's count
    is 49 or 51 packets by where its edges fall)."""
    spans = [(f["t"], max(f.get("window_s", [0, 0])[1], f.get("t_done", f["t"]))) for f in faults]
    return [
        r
        for r in rows
        if r.get("span_s", interval) >= interval / 2
        and not any(a < r["t"] and r["t"] - interval < b for a, b in spans)
    ]


def _first_last_peak(values: list[float]) -> list[float] | None:
    return [values[0], values[-1], max(values)] if values else None


def _header(*names: str) -> None:
    print("\n| " + " | ".join(names) + " |")
    print("|" + "---|" * len(names))


def print_report(result: dict[str, Any]) -> None:
    args, summary = result["args"], result["summary"]
    print(
        f"\n# soak: {args['players']} players, {args['minutes']:g} min, "
        f"{args['workers']} engine workers, DAVE {'on' if args['dave'] else 'off'}"
    )
    _header("t s", "pkts/s mean (min)", "gap p99 / max ms", "missed",
            "RSS control / workers / all MB", "lost", "idle", "faults")  # fmt: skip
    for r in result["timeline"]:
        print(
            f"| {r['t']:.0f} | {r['pps_mean']:.2f} ({r['pps_min']:.2f}) | "
            f"{r.get('gap_p99_ms', 0):.1f} / {r.get('gap_max_ms', 0):.0f} | {r.get('missed', 0)} | "
            f"{r['rss_control_mb']:.0f} / {r['rss_workers_mb']:.0f} / {r['rss_all_mb']:.0f} | "
            f"{r['sessions_lost']} | {r['players_idle']} | {' '.join(r['faults'])} |"
        )
    _header("fault", "at s", "hit", "back at rate after s", "lowest pkts/s",
            "silence of hit, max s", "others' gap p99 / max ms", "checks failed")  # fmt: skip
    for f in result["faults"]:
        rec, sil, oth = f.get("recovery", {}), f.get("silence_affected", {}), f.get("others", {})
        bad = [k for k, v in f.get("checks", {}).items() if v is False] or ["none"]
        print(
            f"| {f['kind']} | {f['t']:.0f} | {f.get('affected', '?')} | {rec.get('recovery_s')} | "
            f"{rec.get('pps_lowest_second')} | {sil.get('silence_max_s', '-')} | "
            f"{oth.get('gap_p99_ms', '-')} / {oth.get('gap_max_ms', '-')} | {'; '.join(bad)} |"
        )
    print()
    for f in result["faults"]:
        print(f"fault {f['n']} {f['kind']}: {f.get('details')}")
    slopes = summary["rss_slopes"]
    print(
        f"\nRSS slope MB/hour (after the first fifth): control {slopes['control_mb_per_hour']}, "
        f"workers {slopes['workers_mb_per_hour']}, all {slopes['total_mb_per_hour']}; "
        f"all processes first/last/peak {summary['rss_all_mb_first_last_peak']} MB"
    )
    for name, ok in summary["criteria"].items():
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    for line in summary["failed_fault_checks"]:
        print(f"  failed: {line}")
    print(f"soak: {'PASS' if summary['pass'] else 'FAIL'}")
