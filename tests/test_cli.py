"""The console script, run as a real subprocess: config errors, --version, run, doctor."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from audionode import __version__
from audionode.engine import rtprio


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audionode", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def write(tmp_path: Path, data: object) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_version() -> None:
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"audionode {__version__}"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"password": "x", "colour": 1}, "config key `colour` is unknown"),
        ({"password": "x", "port": "eighty"}, "config key `port`: expected `int`, got `str`"),
        ({"password": "x", "port": 70000}, "config key `port`: expected `int` <= 65535"),
        ({"port": 8000}, "config key `password` is required"),
        ({"password": "x", "engine": {"workerz": 1}}, "config key `engine.workerz` is unknown"),
        ({"password": "x", "log_level": "LOUD"}, "config key `log_level`: expected one of"),
        ({"password": "change-me", "host": "0.0.0.0"}, "example password is refused"),
        ("{oops", "not valid JSON"),
        ([1], "expected a JSON object"),
    ],
)
def test_config_errors_exit_2_with_one_line(tmp_path: Path, config: object, expected: str) -> None:
    out = run_cli("run", "--config", write(tmp_path, config), env={"PATH": ""})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], out.stderr


def test_env_and_flags_override_in_order(tmp_path: Path) -> None:
    from audionode.config import load_config

    path = write(tmp_path, {"password": "file", "port": 1, "engine": {"workers": 3}})
    env = {
        "AUDIONODE_PORT": "2",
        "PORT": "9",
        "AUDIONODE_ENGINE__WORKERS": "0",
        "AUDIONODE_PASSWORD": "123",
    }
    cfg = load_config(path, env=env)
    assert (cfg.port, cfg.engine.workers, cfg.password) == (2, 0, "123")
    assert load_config(path, env=env, overrides={"port": 3}).port == 3
    assert load_config(path, env={"PORT": "9"}).port == 9


def test_unknown_environment_key_is_an_error(tmp_path: Path) -> None:
    out = run_cli(
        "run", "--config", write(tmp_path, {"password": "x"}), env={"AUDIONODE_COLOUR": "1"}
    )
    assert out.returncode == 2 and "AUDIONODE_COLOUR names no config key" in out.stderr


def test_run_serves_status_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "audionode",
            "run",
            "--config",
            write(tmp_path, {"password": "secret-pw"}),
            "--port",
            str(port),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body = None
        for _ in range(100):
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/status", headers={"Authorization": "secret-pw"}
                )
                with urllib.request.urlopen(req, timeout=2) as r:
                    body = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.1)
        assert body is not None and body["version"] == __version__
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "secret-pw" not in err  # no secrets in logs


def test_doctor_reports_a_table(tmp_path: Path) -> None:
    out = run_cli("doctor", "--config", write(tmp_path, {"password": "x", "port": free_port()}))
    assert out.returncode == 0, out.stdout
    rows = {line.split()[0]: line.split()[1] for line in out.stdout.splitlines()}
    assert rows == {"opus": "ok", "DAVE": "ok", "yt-dlp": "ok", "port": "ok", "realtime": "ok"}


def test_doctor_says_whether_the_realtime_priority_can_be_had(tmp_path: Path) -> None:
    config = {"password": "x", "port": free_port(), "engine": {"realtime_priority": 9}}
    out = run_cli("doctor", "--config", write(tmp_path, config))
    (row,) = [line for line in out.stdout.splitlines() if line.startswith("realtime")]
    if rtprio.probe(9).reason:  # this machine refuses it: the doctor must say so and fail
        assert "FAIL" in row and "SCHED_FIFO 9" in row and out.returncode == 1
    else:
        assert row.split()[1] == "ok" and "SCHED_FIFO 9" in row and out.returncode == 0


def test_doctor_fails_on_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        out = run_cli(
            "doctor", "--config", write(tmp_path, {"password": "x", "port": s.getsockname()[1]})
        )
    assert out.returncode == 1 and "FAIL" in out.stdout
