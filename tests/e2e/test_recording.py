"""Issue 15 item 3 end to end: two real discord.py 2.7.1 members speak (DAVE on) while the node
records; the per-user Ogg/Opus files hold each member's tone, the mixed one both."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import av
import numpy as np

from audionode.engine.engine import Engine
from audionode.engine.host import LocalHost
from tests.conftest import NodeFactory
from tests.e2e.chain import Chain, EventLog, band_level, chain
from tests.voiceserver.audio import dominant_frequency, tone_opus
from tests.voiceserver.dpy import DpyHarness, OpusTone


def engine_of(c: Chain) -> Engine:
    host = c.node.node.service.engine
    assert isinstance(host, LocalHost) and isinstance(host.engine, Engine)
    return host.engine


async def until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def members(c: Chain, *user_ids: int) -> AsyncIterator[list[DpyHarness]]:
    """discord.py members in the chain's channel, once everyone's DAVE is up."""
    joined: list[DpyHarness] = []
    try:
        for uid in user_ids:
            bot = DpyHarness(
                c.vs.lvsp, c.vs.http, user_id=uid, guild_id=c.guild, channel_id=c.channel
            )
            await bot.connect(c.vs.server.endpoint)
            joined.append(bot)
        engine = engine_of(c)
        await until(
            lambda: (
                all(u.conn is not None and u.conn.dave.ready for u in engine._units.values())
                and all(m.voice_client._connection.can_encrypt for m in joined)
            )
        )
        yield joined
    finally:
        for m in joined:
            await m.disconnect()


def decode_file(path: Path) -> np.ndarray:
    with av.open(str(path)) as f:
        chunks = [fr.to_ndarray() for fr in f.decode(audio=0)]
    planar = np.concatenate(chunks, axis=-1)  # (2, n) planar float
    return np.asarray(planar[0], dtype=np.float64)


async def test_recording_files_hold_each_members_tone(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    overrides = {"voice": {"receive": True}, "recording": {"path": str(tmp_path)}}
    async with chain(node_factory, **overrides) as c, members(c, 555, 556) as (a, b):
        log = EventLog(c.ws)
        try:
            status, rec = await c.rest("POST", "/record", {"action": "start"})
            assert status == 200 and rec["active"] is True, rec
            started = await log.wait("RECORDING_STARTED")
            assert started["recording"]["id"] == rec["id"] and started["mixed"] == "mixed.ogg"
            again = await c.rest("POST", "/record", {"action": "start"})
            assert again[0] == 409 and again[1]["error"]["code"] == "ALREADY_RECORDING"
            await asyncio.gather(
                a.play_and_wait(OpusTone(tone_opus(440, 1.5))),
                b.play_and_wait(OpusTone(tone_opus(660, 1.5))),
            )
            await asyncio.sleep(0.3)
            status, done = await c.rest("POST", "/record", {"action": "stop"})
            assert status == 200 and done["active"] is False
            stopped = await log.wait("RECORDING_STOPPED")
        finally:
            await log.stop()
    assert stopped["reason"] == "stopped"
    folder = Path(rec["directory"])
    assert folder.parent == tmp_path and folder.name == rec["id"]
    files = {f["name"]: f for f in stopped["files"]}
    assert set(files) == {"mixed.ogg", "user-555.ogg", "user-556.ogg"}
    assert files["user-555.ogg"]["user_id"] == "555" and files["mixed.ogg"]["user_id"] is None
    for name, freq in (("user-555.ogg", 440), ("user-556.ogg", 660)):
        pcm = decode_file(folder / name)
        assert abs(files[name]["seconds"] - len(pcm) / 48000) < 0.05
        assert len(pcm) >= 1.4 * 48000, name
        assert abs(dominant_frequency(pcm) - freq) < 3, name
        other = 660 if freq == 440 else 440
        assert band_level(pcm, other) < 0.05 * band_level(pcm, freq), name
    mixed = decode_file(folder / "mixed.ogg")
    assert 0.5 < band_level(mixed, 440) / band_level(mixed, 660) < 2.0
    assert files["mixed.ogg"]["start"] == 0.0 and files["user-555.ogg"]["start"] >= 0.0
    assert all(f["bytes"] > 0 for f in files.values())


async def test_a_recording_stops_itself_at_max_seconds(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    overrides = {
        "voice": {"receive": True},
        "recording": {"path": str(tmp_path), "max_seconds": 0.6},
    }
    async with chain(node_factory, **overrides) as c:
        log = EventLog(c.ws)
        try:
            off = await c.rest("POST", "/record", {"action": "stop"})
            assert off[0] == 409 and off[1]["error"]["code"] == "NOT_RECORDING"
            await c.listener.wait_dave_ready()
            status, rec = await c.rest("POST", "/record", {"action": "start"})
            assert status == 200
            await c.listener.play(tone_opus(523.25, 1.0))
            stopped = await log.wait("RECORDING_STOPPED")
        finally:
            await log.stop()
        assert stopped["reason"] == "max_seconds"
        files = {f["name"]: f for f in stopped["files"]}
        assert abs(files["mixed.ogg"]["seconds"] - 0.6) < 0.03
        user = files[f"user-{c.listener.user_id}.ogg"]
        assert user["start"] + user["seconds"] <= 0.62
        pcm = decode_file(Path(rec["directory"]) / f"user-{c.listener.user_id}.ogg")
        assert abs(dominant_frequency(pcm) - 523.25) < 5
        assert (await c.rest("POST", "/record", {"action": "stop"}))[0] == 409


async def test_recording_is_refused_while_it_is_off(node_factory: NodeFactory) -> None:
    async with chain(node_factory, connect=False) as c:
        status, body = await c.rest("POST", "/record", {"action": "start"})
        assert status == 409 and body["error"]["code"] == "RECORDING_OFF"
        status, body = await c.rest("POST", "/record", {"action": "pause"})
        assert status == 400 and "field `action`" in body["error"]["message"]
