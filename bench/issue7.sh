#!/usr/bin/env bash
# Every run behind the issue-7 tables of docs/PERFORMANCE.md, one after another (they must not
# overlap: each measures the whole machine). JSON results go to bench/results/ (git-ignored).
# Needs `make test` once (the venv with the dev extra) and ffmpeg on PATH for --peer discordpy.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=bench/results
mkdir -p "$OUT"
run() {  # run NAME ARGS...: one benchmark, its summary printed and kept
    local name=$1
    shift
    echo "=== $name: python -m bench.streams $*"
    # Admission off: these rows measure cost per stream, also past a worker's budget.
    "$PY" -m bench.streams --admission off "$@" --json "$OUT/$name.json" >"$OUT/$name.log" 2>&1
    grep -E '^(system|CPU|packets|gap|engine|bare|stress|cost)' "$OUT/$name.log" || tail -5 "$OUT/$name.log"
}
only=${1:-all}
want() { [[ $only == all || $only == *"$1"* ]]; }
want n50 && run node-pt-dave-50 --players 50 --mode passthrough --dave --seconds 20
want d50 && run dpy-pt-dave-50 --players 50 --mode passthrough --dave --seconds 20 --peer discordpy
want n300 && run node-pt-dave-300 --players 300 --mode passthrough --dave --seconds 20
want n400 && run node-pt-dave-400 --players 400 --mode passthrough --dave --seconds 20
want n600 && run node-pt-dave-600-w2 --players 600 --mode passthrough --dave --seconds 20 --workers 2
want n700 && run node-pt-dave-700-w2 --players 700 --mode passthrough --dave --seconds 20 --workers 2
want d100 && run dpy-pt-dave-100 --players 100 --mode passthrough --dave --seconds 20 --peer discordpy
want d150 && run dpy-pt-dave-150 --players 150 --mode passthrough --dave --seconds 20 --peer discordpy
want tc && run node-tc-dave-30 --players 30 --mode transcode --dave --seconds 20
want dtc && run dpy-tc-dave-30 --players 30 --mode transcode --dave --seconds 20 --peer discordpy
want s0 && run node-pt-dave-100 --players 100 --mode passthrough --dave --seconds 20
want s1 && run node-pt-dave-100-stress --players 100 --mode passthrough --dave --seconds 20 --stress
want m1000 && run node-pt-1000-w2 --players 1000 --mode passthrough --seconds 20 --workers 2
