"""``audionode voiceserver`` as a real process: config file, flags, no node password."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from audionode.voice import rtp
from audionode.voiceserver.lvsp_client import LvspClient, VoiceGrant

TOKEN = "cli-lvsp-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write(config: dict[str, object], path: Path) -> Path:
    path.write_text(json.dumps(config))
    return path


async def start(path: Path | None, *flags: str) -> asyncio.subprocess.Process:
    config = ("--config", str(path)) if path is not None else ()
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "audionode",
        "voiceserver",
        *config,
        *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def lvsp_ready(http: aiohttp.ClientSession, port: int, token: str = TOKEN) -> Any:
    """Connect (retrying while the process starts), IDENTIFY; return (socket, READY)."""
    for _ in range(100):
        try:
            ws = await http.ws_connect(f"ws://127.0.0.1:{port}/lvsp")
            break
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.1)
    else:
        raise AssertionError("voice server did not start")
    assert (await ws.receive_json(timeout=5))["op"] == 0
    await ws.send_json({"op": 1, "d": {"token": token}})
    return ws, await ws.receive_json(timeout=5)


async def test_serves_lvsp_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    cfg = {"voiceserver": {"port": port, "lvsp_token": TOKEN}}  # no node password needed
    proc = await start(write(cfg, tmp_path / "config.json"))
    try:
        async with aiohttp.ClientSession() as http:
            ws, ready = await lvsp_ready(http, port)
            assert ready["op"] == 3 and ready["d"]["endpoint"] == f"127.0.0.1:{port}"
            await ws.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_flags_configure_it_without_a_config_file() -> None:
    """--host/--port/--udp-port/--public-ip/--lvsp-token: READY's endpoint and a voice client's
    op 2 Ready name the public IP and the ports given."""
    port, udp_port = free_port(), free_port()
    proc = await start(
        None,
        *("--host", "127.0.0.1", "--port", str(port), "--udp-port", str(udp_port)),
        *("--public-ip", "127.0.0.2", "--lvsp-token", "flag-token"),
    )
    try:
        async with aiohttp.ClientSession() as http:
            ws, ready = await lvsp_ready(http, port, "flag-token")
            assert ready["d"]["endpoint"] == f"127.0.0.2:{port}"
            ids = {"user_id": "1", "channel_id": "2", "guild_id": "3"}
            await ws.send_json({"op": 7, "d": ids})
            info = (await ws.receive_json(timeout=5))["d"]["info"]
            voice = await http.ws_connect(f"ws://127.0.0.1:{port}/?v=8")
            await voice.receive_json(timeout=5)  # Hello
            await voice.send_json(
                {
                    "op": 0,
                    "d": {
                        "server_id": "3",
                        "user_id": "1",
                        "session_id": info["session_id"],
                        "token": info["token"],
                        "max_dave_protocol_version": 1,
                    },
                }
            )
            ready2 = await voice.receive_json(timeout=5)
            assert ready2["op"] == 2 and (ready2["d"]["ip"], ready2["d"]["port"]) == (
                "127.0.0.2",
                udp_port,
            )
            await voice.close()
            await ws.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_flags_override_the_file_and_bad_values_name_the_key(tmp_path: Path) -> None:
    port = free_port()
    path = write({"voiceserver": {"port": 1, "lvsp_token": "from-file"}}, tmp_path / "c.json")
    proc = await start(path, "--port", str(port), "--lvsp-token", TOKEN)
    try:
        async with aiohttp.ClientSession() as http:
            ws, ready = await lvsp_ready(http, port)
            assert ready["op"] == 3
            await ws.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 10)
    proc = await start(path, "--port", "70000")
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert b"config key `voiceserver.port`: expected `int` <= 65535" in err


async def test_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    proc = await start(write({"voiceserver": {"port": 0}}, tmp_path / "c.json"))
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert b"voiceserver.lvsp_token" in err


def test_load_voiceserver_config_needs_no_password_and_reads_env_then_flags() -> None:
    from audionode.config import load_voiceserver_config
    from audionode.errors import ConfigError

    env = {"AUDIONODE_VOICESERVER__LVSP_TOKEN": "env-token", "AUDIONODE_LOG_LEVEL": "DEBUG"}
    cfg = load_voiceserver_config(None, env=env, overrides={"port": 9100, "host": None})
    assert (cfg.voiceserver.lvsp_token, cfg.voiceserver.port) == ("env-token", 9100)
    assert cfg.voiceserver.host == "127.0.0.1" and cfg.log_level == "DEBUG"
    flags = {"lvsp_token": "flag-token", "udp_port": 5000}
    cfg = load_voiceserver_config(None, env=env, overrides=flags)
    assert (cfg.voiceserver.lvsp_token, cfg.voiceserver.udp_port) == ("flag-token", 5000)
    with pytest.raises(ConfigError) as err:
        load_voiceserver_config(None, env={}, overrides={"public_ip": 5})
    assert str(err.value) == "config key `voiceserver.public_ip`: expected `str`, got `int`"


async def test_restart_on_the_same_ports_loses_state_and_clients_recover() -> None:
    """SIGTERM closes LVSP and voice sockets with 1001 and exits at once; a new process binds
    the same ports; the LVSP client's RESUME gets 4003, so it IDENTIFYs afresh (an empty
    snapshot: nothing is kept, docs/protocols/lvsp.md "Hardening") and grants again; voice
    clients can join with the new grants and IP discovery answers on the same UDP port."""
    port, udp_port = free_port(), free_udp_port()
    flags = ("--port", str(port), "--udp-port", str(udp_port), "--lvsp-token", TOKEN)
    proc = await start(None, *flags)
    try:
        async with aiohttp.ClientSession() as http:
            lvsp = await started(http, port)
            voice = await join_voice(http, port, await lvsp.grant(1, 2, 3))
            began = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert await lvsp.closed() == (1001, "voice server shutting down")
            while (msg := await voice.receive(timeout=5)).type is aiohttp.WSMsgType.TEXT:
                pass
            # (the close frame's code: aiohttp reports 1006 when its reply finds the process gone)
            assert (msg.type, msg.data, msg.extra) == (
                aiohttp.WSMsgType.CLOSE,
                1001,
                "voice server shutting down",
            )
            assert await asyncio.wait_for(proc.wait(), 10) == 0
            assert time.monotonic() - began < 2.0

            proc = await start(None, *flags)
            for _ in range(100):
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    assert await lvsp.reconnect(http) is False  # the session did not survive
                    break
                await asyncio.sleep(0.1)
            ready = await join_voice(http, port, await lvsp.grant(1, 2, 3))
            ssrc = (await ready.receive_json(timeout=5))["d"]["ssrc"]
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.setblocking(False)
                udp.bind(("127.0.0.1", 0))
                await loop.sock_sendto(
                    udp, rtp.pack_discovery_request(ssrc), ("127.0.0.1", udp_port)
                )
                reply = await asyncio.wait_for(loop.sock_recv(udp, 100), 5)
                assert rtp.parse_discovery(reply).port == udp.getsockname()[1]
            await ready.close()
            await lvsp.close()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 10)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def started(http: aiohttp.ClientSession, port: int) -> LvspClient:
    for _ in range(100):
        with contextlib.suppress(aiohttp.ClientConnectionError):
            return await LvspClient.open(http, f"ws://127.0.0.1:{port}/lvsp", TOKEN)
        await asyncio.sleep(0.1)
    raise AssertionError("voice server did not start")


async def join_voice(
    http: aiohttp.ClientSession, port: int, grant: VoiceGrant
) -> aiohttp.ClientWebSocketResponse:
    """A voice socket that identified with ``grant`` (Hello read; op 2 Ready is next)."""
    ws = await http.ws_connect(f"ws://127.0.0.1:{port}/?v=8")
    await ws.receive_json(timeout=5)
    ident = {"server_id": str(grant.guild_id), "user_id": str(grant.user_id)}
    ident |= {"session_id": grant.session_id, "token": grant.token}
    await ws.send_json({"op": 0, "d": {**ident, "max_dave_protocol_version": 1}})
    return ws


async def test_sigterm_exits_within_a_second_while_clients_reconnect() -> None:
    from tests.voiceserver.test_shutdown import redial

    port = free_port()
    proc = await start(None, "--port", str(port), "--udp-port", "0", "--lvsp-token", TOKEN)
    try:
        async with aiohttp.ClientSession() as http:
            lvsp = await started(http, port)
            done = asyncio.Event()
            url = f"ws://127.0.0.1:{port}/?v=8"
            dialers = [asyncio.create_task(redial(http, url, done)) for _ in range(3)]
            await asyncio.sleep(0.5)
            began = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 10) == 0
            took = time.monotonic() - began
            done.set()
            seen = await asyncio.wait_for(asyncio.gather(*dialers), 5)
            print(f"exited {took * 1000:.0f} ms after SIGTERM; redialers saw {seen}")
            assert took < 1.0
            assert all(codes and codes[0] == 1001 for codes in seen), seen
            await lvsp.close()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
