"""Issue 12 item 3: Discodo 3.0.5's own client classes, unmodified, drive the real node.

The client runs in a subprocess (``discodo_driver.py``) against a node on loopback that plays
into the built-in voice server, where a listening member hears the audio. Discodo and its
websockets pin are installed with ``pip install --no-deps --target`` (they cannot share the
node's environment: see the driver's docstring); ``make lint``/``make test`` does it once, and
:func:`discodo_root` does it on first use otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import PASSWORD, NodeFactory
from tests.e2e.chain import decode, dominant
from tests.transport.listener import Listener
from tests.transport.voiceserver_harness import voice_server

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / ".venv" / "discodo-3.0.5"
PINS = ("discodo==3.0.5", "websockets==13.1")
BOT, GUILD, CHANNEL, LISTENER = 5151, 6161, 7171, 8181


@pytest.fixture(scope="session")
def discodo_root() -> Path:
    """Where Discodo 3.0.5's client lives (installed from PyPI on first use)."""
    if not (TARGET / "discodo" / "client" / "node.py").exists():
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(TARGET)]
        subprocess.run([*cmd, *PINS], check=True, capture_output=True, timeout=300)
    return TARGET


async def run_driver(root: Path, args: dict[str, Any]) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONWARNINGS": "ignore"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("discodo_driver.py")),
        json.dumps({**args, "root": str(root)}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    steps = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert proc.returncode == 0, f"driver failed after {steps[-1:]}: {err.decode()[-3000:]}"
    return steps


async def test_discodo_client_drives_the_node(
    node_factory: NodeFactory, discodo_root: Path
) -> None:
    sources = {"plugins": ["tone"]}
    async with voice_server() as vs, node_factory(sources=sources, vc_timeout=10) as node:
        lgrant = await vs.lvsp.grant(LISTENER, CHANNEL, GUILD)
        listener = Listener(vs.endpoint, GUILD, LISTENER, CHANNEL, lgrant.session_id, lgrant.token)
        await listener.connect(vs.http)
        try:
            grant = await vs.lvsp.grant(BOT, CHANNEL, GUILD)
            args = {
                "port": node.node.port,
                "password": PASSWORD,
                "user": BOT,
                "guild": GUILD,
                "channel": CHANNEL,
                "session_id": grant.session_id,
                "token": grant.token,
                "endpoint": grant.endpoint,
            }
            frames: list[bytes] = []
            tap = asyncio.create_task(decrypt_while_playing(listener, frames))
            try:
                steps = {s["step"]: s for s in await run_driver(discodo_root, args)}
            finally:
                tap.cancel()
            heard = [p for p in listener.packets if p.data is not None]
        finally:
            await listener.close()
    assert steps["identified"]["d"] == {"user_id": str(BOT), "shard_id": 0, "resumed": False}
    assert steps["vc_created"]["same"] and len(steps["vc_created"]["id"]) == 32
    assert steps["voice_connected"]["dave"] == 1
    assert steps["loaded"]["tag"] == steps["loaded"]["started"]
    assert steps["loaded"]["type"] == "AudioData"
    mirror = steps["queue_mirror"]
    assert len(mirror["mirror"]) == 2 and mirror["mirror"] == mirror["rest"]
    assert steps["volume"]["options"]["volume"] == 0.5
    seek = steps["seek"]
    assert seek["type"] == "AudioSource" and 2.0 <= seek["position"] < 3.5
    assert abs(seek["now"] - seek["as_of"]) < 2.0
    assert steps["pause_resume"] == {
        "step": "pause_resume",
        "paused": "PAUSED",
        "resumed": "PLAYING",
    }
    rest_error = steps["rest_error"]
    assert rest_error["status"] == 422 and rest_error["description"] == "Unprocessable Entity"
    assert rest_error["message"].startswith("seek position 10000 s is past the end")
    ws_error = steps["ws_error"]
    assert ws_error["name"] == "VOICE_CLIENT_NOT_FOUND" and ws_error["took"] < 2.0
    assert ws_error["reason"] == "no voice client for guild 4242"
    assert steps["skip"]["reason"] == "skipped"
    assert steps["resumed"]["d"]["voice_clients"] == [[str(GUILD), str(CHANNEL)]]
    assert steps["resumed"]["id"] == steps["vc_created"]["id"]
    assert steps["destroyed"]["known"] is False
    assert len(heard) > 100, "the listener heard the bot"
    assert len(frames) > 50
    assert abs(dominant(np.asarray(decode(frames[:50]))) - 440) < 5


async def decrypt_while_playing(listener: Listener, frames: list[bytes]) -> None:
    """DAVE-decrypt the bot's frames as they arrive (its key leaves with it at VC_DESTROY)."""
    done = 0
    while True:
        await asyncio.sleep(0.05)
        ssrcs = {p.data[8:12] for p in listener.packets if len(p.data) > 12}
        if len(ssrcs) != 1:
            continue
        opened = listener.opened(int.from_bytes(ssrcs.pop(), "big"))
        for _, packet in opened[done:]:
            frame = packet.payload
            if frame.endswith(b"\xfa\xfa"):
                with contextlib.suppress(ValueError):  # before the listener joined the group
                    frames.append(listener.dave_decrypt(BOT, frame))
        done = len(opened)
