"""Two builds of the node measured in alternated runs of ``bench/streams.py``.

    python -m bench.builds --base COMMIT [--rounds N] -- <bench.streams arguments>

Why alternate: on this machine the same build drifts by about ±8 % of CPU within ten minutes
(docs/PERFORMANCE.md, "Reader packets in native code, prefetching"), more than most single
changes, so two builds are only comparable run against run, close in time.

The base commit is checked out in a temporary git worktree and its C extension built with this
virtualenv's Python (``audionode/native/build.sh``); ``python -m bench.streams`` then runs
from each tree in turn (base first), so the node it starts is that tree's code. One line per
run, then the range per build. Nothing else should run meanwhile: each run measures the whole
machine. Example, the rows of the section named above:

    python -m bench.builds --base 5c50b62 --rounds 4 -- --admission off --players 300 \
        --mode passthrough --dave --seconds 20

``--together`` runs the two builds at the same time instead, each round: for loads far below
the machine's capacity (50 streams are a twentieth of a core), where a change of a few
percent is smaller than the drift between two runs a minute apart but both runs of one round
see the same machine (docs/PERFORMANCE.md, "Fewer wake-ups").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent


def start_streams(tree: Path, args: list[str], out: Path) -> subprocess.Popen[bytes]:
    """One ``bench.streams`` run from ``tree``, started; its JSON result goes to ``out``."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench.streams", *args, "--json", str(out)],
        cwd=tree,
        stdout=subprocess.DEVNULL,
    )


def result_of(run: subprocess.Popen[bytes], out: Path) -> dict[str, Any]:
    if run.wait() != 0:
        raise SystemExit(f"bench.streams failed ({run.returncode}) in {run.args!r}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def row(label: str, result: dict[str, Any]) -> dict[str, Any]:
    r = result["receiver"]
    engines = result.get("engine", {}).get("engines", {}).values()
    return {
        "build": label,
        "utc": time.strftime("%H:%M:%S", time.gmtime()),
        "cores": result["cpu_cores"],
        "pct_per_stream": result["cpu_pct_per_stream"],
        "p99_ms": r.get("gap_p99_ms"),
        "p999_ms": r.get("gap_p999_ms"),
        "max_ms": r.get("gap_max_ms"),
        "missed_pct": r.get("missed_pct"),
        "pps_min": r.get("pps_per_stream_min"),
        "late_max_ms": max((e.get("late_max_ms", 0.0) for e in engines), default=None),
        **({"churn_cycles": r["churn"]["cycles"]} if "churn" in r else {}),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="the commit to compare this tree against")
    p.add_argument("--rounds", type=int, default=3, help="pairs of runs")
    p.add_argument("--json", help="also write the rows here")
    p.add_argument("--together", action="store_true", help="both builds at once each round")
    p.add_argument("streams", nargs=argparse.REMAINDER, help="-- then bench.streams arguments")
    args = p.parse_args(argv)
    streams = [a for a in args.streams if a != "--"]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-builds-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base), args.base], cwd=HERE, check=True
        )
        try:
            subprocess.run(
                ["sh", "audionode/native/build.sh", sys.executable], cwd=base, check=True
            )
            builds = ((args.base, base), ("this tree", HERE))
            for k in range(args.rounds):
                if args.together:  # start order swapped every round
                    order = builds if k % 2 == 0 else builds[::-1]
                    outs = [Path(tmp) / f"{k}-{tree.name}.json" for _, tree in order]
                    pairs = list(zip(order, outs, strict=True))
                    runs = [start_streams(tree, streams, out) for (_, tree), out in pairs]
                    done = [
                        (label, result_of(run, out))
                        for ((label, _), out), run in zip(pairs, runs, strict=True)
                    ]
                    done.sort(key=lambda d: d[0] != args.base)
                else:
                    done = []
                    for label, tree in builds:
                        out = Path(tmp) / f"{k}-{tree.name}.json"
                        done.append((label, result_of(start_streams(tree, streams, out), out)))
                for label, result in done:
                    rows.append(row(label, result))
                    print(json.dumps(rows[-1]), flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=HERE)
    for label in (args.base, "this tree"):
        pct = [r["pct_per_stream"] for r in rows if r["build"] == label]
        p99 = [r["p99_ms"] for r in rows if r["build"] == label and r["p99_ms"] is not None]
        print(
            f"{label}: % of a core per stream {min(pct):.3f}-{max(pct):.3f}"
            + (f", gap p99 {min(p99)}-{max(p99)} ms" if p99 else "")
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
