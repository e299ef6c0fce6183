"""The node as a real process (``python -m audionode run``), its engine workers included, for
the restart tests: start it, kill every one of its processes, stop it cleanly, start it again
on the same port and state file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from tests.conftest import PASSWORD, eventually

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class NodeProcess:
    """``config`` is written to ``folder/config.json``; the state file lies beside it (the
    default of ``state.path``)."""

    folder: Path
    config: dict[str, Any]
    proc: asyncio.subprocess.Process | None = None
    runs: int = 0
    log_paths: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.config = {"password": PASSWORD, "port": free_port(), **self.config}
        (self.folder / "config.json").write_text(json.dumps(self.config))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config['port']}"

    @property
    def state_file(self) -> Path:
        return self.folder / "audionode-state.db"

    async def start(self, http: aiohttp.ClientSession, within: float = 30.0) -> None:
        """Start the node and wait until ``/health`` answers."""
        self.runs += 1
        log_path = self.folder / f"node-{self.runs}.log"
        self.log_paths.append(log_path)
        with log_path.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "audionode", "run", "--config",
                str(self.folder / "config.json"),
                cwd=ROOT, stdout=log, stderr=log,
            )  # fmt: skip
        async with asyncio.timeout(within):
            while True:
                assert self.proc.returncode is None, f"the node exited: {self.log()}"
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.url}/health") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.05)

    def pids(self) -> list[int]:
        """The node's process and all of its children (the engine workers)."""
        assert self.proc is not None
        parent = psutil.Process(self.proc.pid)
        return [parent.pid, *(p.pid for p in parent.children(recursive=True))]

    async def kill(self) -> int:
        """SIGKILL every node process at once; returns how many there were."""
        assert self.proc is not None
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await self.proc.wait()
        await _gone(pids)
        return len(pids)

    async def terminate(self, within: float = 20.0) -> int:
        """SIGTERM (a clean stop); returns the exit code once every node process is gone."""
        assert self.proc is not None
        pids = self.pids()
        self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(within):
            code = await self.proc.wait()
        await _gone(pids)
        return code

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.log_paths)

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            await self.kill()


async def _gone(pids: list[int], within: float = 10.0) -> None:
    """Until none of ``pids`` runs (a zombie left to a parent that does not reap is dead)."""

    def running(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    await eventually(lambda: not any(map(running, pids)), timeout=within)


async def run_cli(*args: str, within: float = 30.0) -> tuple[int, str]:
    """Run ``python -m audionode ARGS``; (exit code, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "audionode", *args,
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(within):
        _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode(errors="replace")
