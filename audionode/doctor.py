"""``audionode doctor``: is this machine able to run a node? Prints a table; exit 1 on failure."""

from __future__ import annotations

import socket
from collections.abc import Callable

from audionode.config import Config

Check = Callable[[], str]


def _opus() -> str:
    import av

    codec = av.Codec("libopus", "w")
    return f"PyAV {av.__version__}, encoder {codec.name}"


def _davey() -> str:
    import davey

    version = int(davey.DAVE_PROTOCOL_VERSION)
    if version < 1:
        raise RuntimeError(f"DAVE protocol version {version} < 1")
    return f"davey, DAVE protocol version {version}"


def _ytdlp() -> str:
    from yt_dlp.version import __version__ as v

    return f"yt-dlp {v}"


def _port(config: Config) -> Check:
    def check() -> str:
        with socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET) as s:
            s.bind((config.host, config.port))
        return f"{config.host}:{config.port} is free"

    return check


def _realtime(config: Config) -> Check:
    def check() -> str:
        from audionode.engine import rtprio

        wanted = config.engine.realtime_priority
        if not wanted:
            return "engine.realtime_priority is 0: workers run at normal priority"
        outcome = rtprio.probe(wanted)
        if outcome.reason:
            raise RuntimeError(f"SCHED_FIFO {wanted}: {outcome.reason}")
        return f"workers' event-loop threads may run at SCHED_FIFO {wanted}"

    return check


def run_doctor(config: Config) -> int:
    """Run every check, print one row each, return 1 if any failed."""
    checks: list[tuple[str, Check]] = [
        ("opus", _opus),
        ("DAVE", _davey),
        ("yt-dlp", _ytdlp),
        ("port", _port(config)),
        ("realtime", _realtime(config)),
    ]
    failed = False
    rows: list[tuple[str, str, str]] = []
    for name, check in checks:
        try:
            rows.append((name, "ok", check()))
        except Exception as e:  # any failure of a check is a finding, not a crash
            failed = True
            rows.append((name, "FAIL", f"{type(e).__name__}: {e}"))
    width = max(len(r[0]) for r in rows)
    for name, state, detail in rows:
        print(f"{name:<{width}}  {state:<4}  {detail}")
    return 1 if failed else 0
