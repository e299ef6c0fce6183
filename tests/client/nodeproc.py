"""A node in a process of its own (``python -m audionode run``), so that a test can kill it
with SIGKILL and start it again on the same port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import PASSWORD
from tests.test_cli import free_port

REPO = Path(__file__).resolve().parents[2]


class NodeProcess:
    """``start()``, ``kill()`` (SIGKILL) or ``terminate()`` (SIGTERM), ``start()`` again:
    always the same port, config and state file (``node-<name>.db``, unless the config says)."""

    def __init__(self, folder: Path, name: str, config: dict[str, Any]) -> None:
        self.port = free_port()
        self.name = name
        self.config_path = folder / f"node-{name}.json"
        self.log_path = folder / f"node-{name}.log"
        base = {"password": PASSWORD, "host": "127.0.0.1", "port": self.port,
                "log_level": "WARNING", "engine": {"workers": 0},
                "state": {"path": str(folder / f"node-{name}.db")}}  # fmt: skip
        self.config_path.write_text(json.dumps({**base, **config}))
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, within: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "audionode", "run", "--config", str(self.config_path),
                cwd=REPO, stdout=log, stderr=log,
            )  # fmt: skip
        async with aiohttp.ClientSession() as http, asyncio.timeout(within):
            while True:
                assert self.proc.returncode is None, self.log_path.read_text()
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(f"{self.url}/health") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        """SIGKILL: no clean shutdown, no close frames."""
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()

    async def terminate(self) -> None:
        """SIGTERM: the node's clean shutdown (a last checkpoint of the positions)."""
        assert self.proc is not None
        self.proc.terminate()
        assert await self.proc.wait() == 0, self.log_path.read_text()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@contextlib.asynccontextmanager
async def node_process(folder: Path, name: str, **config: Any) -> AsyncIterator[NodeProcess]:
    node = NodeProcess(folder, name, config)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()
