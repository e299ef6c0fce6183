"""``audionode demo`` end to end: the real chain on loopback, judged by what the listener heard."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

from audionode.cli import main
from audionode.demo.analysis import MATCH_HZ, evaluate, tone_order
from audionode.demo.run import Plan, run_demo


async def test_the_demo_hears_the_three_tones_in_order_with_the_crossfade() -> None:
    out = io.StringIO()
    result = await run_demo(out=out)
    text = out.getvalue()

    assert result.exit_code == 0, text
    assert [round(f) for f in tone_order(result.windows)] == [440, 554, 659], text
    assert abs(result.decoded_seconds - (3 * 2.0 - 2 * 0.5)) <= 0.1, text
    overlaps = [sorted(round(f) for f in w.tones) for w in result.windows if len(w.tones) == 2]
    assert [440, 554] in overlaps and [554, 659] in overlaps, text
    assert result.errors == 0 and result.packets >= 250 + 5, text
    connected = [e.d for e in result.events if e.op == "VOICE_CONNECTED"]
    assert len(connected) == 1 and connected[0]["dave_protocol_version"] == 1
    assert [e.d["reason"] for e in result.events if e.op == "SOURCE_STOP"] == ["finished"] * 3
    # End to end encrypted, every audio frame: the listener was in the channel first, so the
    # bot held its audio until its DAVE group was ready (issue 11 item 7).
    dave = re.search(r"(\d+) of the (\d+) audio frames DAVE-encrypted", text)
    assert dave is not None and int(dave[1]) == int(dave[2]) > 0, text
    for line in (
        "DAVE        v1, epoch",
        "440 Hz + 554 Hz",
        "554 Hz + 659 Hz",
        "PASS  the listener heard what was queued",
    ):
        assert line in text, f"{line!r} missing from:\n{text}"

    # The same recording against another queue order: the self-check must say no.
    wrong = evaluate(result.windows, result.decoded_seconds, [440, 659, 554], 5.0, 0)
    assert not wrong[0].ok and wrong[0].detail.startswith("heard 440"), wrong[0].detail
    assert wrong[0].detail.endswith("expected 440 → 659 → 554 Hz"), wrong[0].detail


async def test_a_chain_that_breaks_is_reported_not_raised() -> None:
    out = io.StringIO()
    result = await run_demo(Plan(tones=(440.0,), seconds=0), out=out)
    assert result.exit_code == 1 and not result.checks
    assert (
        result.error is not None
        and "POST /loadSource answered 422 LOAD_FAILED: tone: `seconds`" in result.error
    )
    assert out.getvalue().rstrip().splitlines()[-1].startswith("FAIL  DemoError")


def test_the_cli_exits_1_when_the_tones_heard_are_not_the_ones_expected(tmp_path: Path) -> None:
    # Run from elsewhere: the tone plugin is found beside the package, not only in ./plugins.
    proc = subprocess.run(
        [sys.executable, "-m", "audionode", "demo", "--expect", "440,659,554"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=40,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    # What was heard is an FFT peak (2 Hz bins): under load it may read 441 for 440.
    pattern = re.compile(
        r"  FAIL  tones in queued order  heard ([\d.]+) → ([\d.]+) → ([\d.]+) Hz, "
        r"expected 440 → 659 → 554 Hz"
    )
    found = [m for m in map(pattern.match, lines) if m]
    assert found, proc.stdout
    heard = [float(f) for f in found[0].groups()]
    assert all(abs(h - e) <= MATCH_HZ for h, e in zip(heard, [440, 554, 659], strict=True))
    assert any(line.startswith("  ok    decoded length") for line in lines), proc.stdout
    assert lines[-1].startswith("FAIL  see the checks above"), proc.stdout
    assert proc.stderr == "", "logs stay at WARNING: a clean run prints nothing on stderr"


def test_a_malformed_expectation_is_a_usage_error(capsys: object) -> None:
    try:
        main(["demo", "--expect", "440,la"])
    except SystemExit as exit_:
        assert exit_.code == 2
    else:
        raise AssertionError("argparse should have refused --expect 440,la")
