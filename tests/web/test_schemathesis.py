"""Issue 16: a schema-driven fuzz run (schemathesis) of every operation ``/openapi.json``
describes, against the real node on loopback: 0 server errors, 0 replies that break their
described schema (error bodies included), and the count of cases printed.

The node is the one of ``test_fuzz_rest.py`` (a bot identified, a voice client with three tone
tracks queued); the run sends that voice client's headers with every request so player routes
reach real handlers and real state (header validation is fuzzed by ``test_fuzz_rest.py``).
Excluded: the websockets (a fuzzer's plain GET is no upgrade; tests/web/test_openapi.py checks
they are described). Runs the CLI in a subprocess: its JSON report gives the
counts. ``AUDIONODE_SCHEMATHESIS_EXAMPLES`` raises the cases per operation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import PASSWORD
from tests.web.test_fuzz_rest import LiveNode

EXAMPLES = int(os.environ.get("AUDIONODE_SCHEMATHESIS_EXAMPLES", "12"))
EXCLUDED = r"^/(ws|rpc|v4/websocket|dashboard/ws)$"


def test_every_operation_matches_its_description(tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("schemathesis")
    report = tmp_path / "schemathesis.json"
    with LiveNode() as node:
        headers = [f"{k}: {v}" for k, v in node.headers.items()]
        assert f"Authorization: {PASSWORD}" in headers
        args = [
            str(cli), "run", f"http://127.0.0.1:{node.port}/openapi.json",
            "--checks", "not_a_server_error,response_schema_conformance",
            *(a for h in headers for a in ("-H", h)),
            "--max-examples", str(EXAMPLES), "--seed", "16", "--workers", "1",
            "--exclude-path-regex", EXCLUDED, "--no-shrink",
            "--report", "json", "--report-json-path", str(report),
            "--request-timeout", "20",
        ]  # fmt: skip
        env = {**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "NO_COLOR": "1"}
        run = subprocess.run(args, capture_output=True, text=True, timeout=240, env=env)
    out = run.stdout + run.stderr
    result = json.loads(report.read_text())
    cases = result["test_cases"]
    print(f"\nschemathesis {result['schemathesis_version']}: {cases}")
    print(out[out.find("SUMMARY") :][:1500])
    if result["failures"]:
        print(out[:12000])
    ops = result["operations"]
    print(f"operations tested: {ops['tested']} of {ops['total']} described")
    assert result["failures"] == [], out[-6000:]
    assert result["errors"] == [] and cases["errored"] == 0, out[-6000:]
    assert cases["with_failures"] == 0 and cases["generated"] > 20 * ops["tested"]
    assert ops["tested"] == ops["selected"] == ops["total"] - 4  # the 4 websockets
    assert run.returncode == 0, out[-6000:]
