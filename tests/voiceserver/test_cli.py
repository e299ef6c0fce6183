"""``audionode voiceserver --config PATH`` as a real process."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from pathlib import Path

import aiohttp

TOKEN = "cli-lvsp-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write(config: dict[str, object], path: Path) -> Path:
    path.write_text(json.dumps(config))
    return path


async def start(path: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "audionode",
        "voiceserver",
        "--config",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_serves_lvsp_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    cfg = {"password": "pw", "voiceserver": {"port": port, "lvsp_token": TOKEN}}
    proc = await start(write(cfg, tmp_path / "config.json"))
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    ws = await http.ws_connect(f"ws://127.0.0.1:{port}/lvsp")
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("voice server did not start")
            assert (await ws.receive_json(timeout=5))["op"] == 0
            await ws.send_json({"op": 1, "d": {"token": TOKEN}})
            ready = await ws.receive_json(timeout=5)
            assert ready["op"] == 3 and ready["d"]["endpoint"] == f"127.0.0.1:{port}"
            await ws.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    proc = await start(write({"password": "pw", "voiceserver": {"port": 0}}, tmp_path / "c.json"))
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert b"voiceserver.lvsp_token" in err
