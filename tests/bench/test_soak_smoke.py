"""``bench/soak.py`` end to end, small: 4 players for 15 s and one worker SIGKILL, so the
script cannot rot. A real node, voice server and sink on loopback (the full soak's rig)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(150)
def test_soak_runs_a_fault_and_judges_it(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    cmd = [
        sys.executable, "-m", "bench.soak", "--players", "4", "--minutes", "0.25",
        "--interval", "3", "--faults", "worker_kill", "--fault-count", "1",
        "--first-fault", "5", "--warmup", "1", "--track-seconds", "20", "--json", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=140)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]  # 1 = a check failed, still a report
    assert "soak: PASS" in proc.stdout or "soak: FAIL" in proc.stdout, proc.stdout[-3000:]
    result = json.loads(out.read_text())
    rows, (fault,) = result["timeline"], result["faults"]
    assert len(rows) >= 5 and rows[0]["pps_mean"] > 40, rows
    assert all(r["rss_control_mb"] > 10 and r["rss_workers_mb"] > 10 for r in rows), rows
    assert fault["kind"] == "worker_kill" and fault["judged"], fault
    details = fault["details"]
    assert details["respawn_s"] is not None and details["new_pid"] != details["pid"], details
    # 4 guilds + 1 more player on 2 workers, placed by load (engine/admission.py): 3 and 2;
    # the guilds hit are those of the killed worker (the extra player is no guild of the rig)
    assert 1 <= fault["affected"] <= details["players"] <= 3, fault
    assert fault["affected"] >= details["players"] - 1, fault
    assert fault["silence_affected"]["streams"] == 2
    assert fault["recovery"]["recovery_s"] is not None
    assert fault["checks"]["worker back"] is True
    assert result["summary"]["sessions_lost"] == 0, result["lost_sessions"]
    assert Path(str(out.with_suffix(".node.log"))).exists()
