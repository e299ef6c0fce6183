"""Issue 14 item 1: the node restarts and every guild goes on where it was.

The node runs as a real process (``python -m audionode run``, one engine worker process) with
its state file beside its config; the built-in voice server, the bot (on ``/ws`` and REST) and
a listener per guild run in the test. Two guilds play different tones, one of them paused,
both with filters and options set. Then every node process is killed with SIGKILL (or the
node is stopped with SIGTERM) in the middle of the tracks and started again: the bot
identifies again and gets ``RESUMED`` with both voice clients, the node reconnects voice by
itself, and the listeners hear each guild go on with the right tone from where it was.

Where a track went on is measured at the listener: a track of ``L`` seconds is followed by
another tone, so the frames of its tone heard before the restart plus those heard after it,
until the next tone begins, add up to ``L`` when it went on exactly where it was heard last.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import PASSWORD, WsClient, eventually
from tests.e2e.chain import BOT, EventLog
from tests.e2e.hearing import FRAME, Ear
from tests.e2e.nodeproc import NodeProcess, run_cli
from tests.engine.guilds import join_voice
from tests.transport.listener import Listener
from tests.transport.voiceserver_harness import Harness, voice_server

pytestmark = pytest.mark.timeout(150)

A_TONE, A_NEXT, A_LEN = 440.0, 550.0, 6.0
B_TONE, B_NEXT, B_LEN = 660.0, 770.0, 5.0
TOLERANCE = 1.5
"""Seconds: where a track goes on after the restart, against where it was heard last."""


@dataclass
class Guild:
    guild: int
    channel: int
    listener: Listener
    ear: Ear
    headers: dict[str, str]

    @property
    def id(self) -> str:
        return str(self.guild)


@dataclass
class Scene:
    vs: Harness
    node: NodeProcess
    http: aiohttp.ClientSession
    ws: WsClient
    log: EventLog
    a: Guild
    b: Guild

    async def rest(self, g: Guild, method: str, path: str, body: Any = None) -> Any:
        url = f"{self.node.url}{path}"
        async with self.http.request(method, url, headers=g.headers, json=body) as r:
            data = await r.json() if r.content_length else None
            assert r.status < 300, (method, path, r.status, data)
            return data

    async def started(self, g: Guild, tone: float, count: int = 1) -> None:
        def seen() -> int:
            frames = self.log.ops("SOURCE_START")
            return sum(
                f["d"]["guild_id"] == g.id and f"{tone:g} Hz" in f["d"]["source"]["title"]
                for f in frames
            )

        await eventually(lambda: seen() >= count, timeout=20)

    async def ws_state(self, g: Guild) -> dict[str, Any]:
        """``getState`` over the bot's socket (it has no REST route)."""
        seen = len(self.log.ops("getState"))
        await self.ws.send("getState", {"guild_id": g.id})
        await eventually(lambda: len(self.log.ops("getState")) > seen)
        reply: dict[str, Any] = self.log.ops("getState")[seen]["d"]
        assert reply["guild_id"] == g.id, reply
        return reply

    async def observed(self, g: Guild) -> dict[str, Any]:
        """What the bot can read of a guild, minus what changes by itself (fresh tokens,
        the playing position)."""
        state = await self.ws_state(g)
        current = state.pop("current")
        for key in ("position", "remain", "voice"):
            state.pop(key, None)
        return {
            "options": await self.rest(g, "GET", "/options"),
            "queue": _untokened((await self.rest(g, "GET", "/queue"))["entries"]),
            "context": await self.rest(g, "GET", "/context"),
            "repeat": await self.rest(g, "GET", "/repeat"),
            "state": state,
            "current": None if current is None else _untokened([current])[0],
        }


def _untokened(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    drop = {"encoded", "position", "as_of"}
    return [{k: v for k, v in e.items() if k not in drop} for e in entries]


async def _identify(node: NodeProcess, http: aiohttp.ClientSession) -> WsClient:
    ws = await http.ws_connect(
        f"{node.url}/ws", headers={"Authorization": PASSWORD}, autoclose=False
    )
    client = WsClient(ws)
    await client.expect("HELLO")
    return client


async def _join(s: Harness, ws: WsClient, log: EventLog, n: int, tones: tuple[float, ...]) -> Guild:
    guild, channel = 27000 + n, 28000 + n
    listener, headers = await join_voice(s, ws, log, guild, channel, 29000 + n)
    return Guild(guild, channel, listener, Ear(listener, BOT, tones), headers)


@contextlib.asynccontextmanager
async def scene(folder: Path) -> AsyncIterator[Scene]:
    config = {
        "log_level": "INFO",
        "vc_timeout": 60,
        "engine": {"workers": 1},
        "sources": {"plugins": ["tone"], "ytdlp": {"enabled": False}},
    }
    node = NodeProcess(folder, config)
    async with voice_server() as vs, aiohttp.ClientSession() as http:
        guilds: list[Guild] = []
        try:
            await node.start(http)
            ws = await _identify(node, http)
            await ws.identify(BOT)
            log = EventLog(ws)
            guilds.append(await _join(vs, ws, log, 1, (A_TONE, A_NEXT)))
            guilds.append(await _join(vs, ws, log, 2, (B_TONE, B_NEXT)))
            yield Scene(vs, node, http, ws, log, *guilds)
        except BaseException:
            print(node.log())
            raise
        finally:
            await node.close()
            for g in guilds:
                await g.ear.close()
                await g.listener.close()


async def _play_and_set_up(s: Scene) -> None:
    """A plays with filters and a volume; B plays, then pauses with its own options."""
    await s.rest(s.a, "POST", "/loadSource", {"query": f"tone:{A_TONE:g}?seconds={A_LEN:g}"})
    await s.rest(s.a, "POST", "/loadSource", {"query": f"tone:{A_NEXT:g}?seconds=2"})
    await s.rest(s.b, "POST", "/loadSource", {"query": f"tone:{B_TONE:g}?seconds={B_LEN:g}"})
    await s.rest(s.b, "POST", "/loadSource", {"query": f"tone:{B_NEXT:g}?seconds=2"})
    a_filter = {"equalizer": [{"band": 3, "gain": 0.2}], "raw": {"bass": "g=3"}}
    await s.rest(s.a, "POST", "/options", {"volume": 0.8, "filter": a_filter})
    await s.rest(s.a, "POST", "/context", {"context": {"requested_by": "alice"}})
    await s.rest(s.b, "POST", "/options", {"volume": 0.6, "filter": {"tremolo": {"depth": 0.2}}})
    await s.rest(s.b, "POST", "/repeat", {"mode": "queue"})
    await s.started(s.a, A_TONE)
    await s.started(s.b, B_TONE)
    await s.b.listener.wait_for(lambda: s.b.ear.count(B_TONE) >= 75, within=10)
    await s.rest(s.b, "POST", "/pause")
    await s.a.listener.wait_for(lambda: s.a.ear.count(A_TONE) >= 130, within=10)


async def _resumed(s: Scene) -> None:
    """The bot comes back: RESUMED with both voice clients, their ids again in VC_CREATED."""
    await s.log.stop()
    await s.ws.ws.close()
    s.ws = await _identify(s.node, s.http)
    identified = await s.ws.identify(BOT)
    assert identified["resumed"] is True
    resumed = await s.ws.expect("RESUMED")
    expected = sorted([[g.id, str(g.channel)] for g in (s.a, s.b)])
    assert sorted(resumed["voice_clients"]) == expected
    created = {(await s.ws.expect("VC_CREATED"))["guild_id"] for _ in range(2)}
    assert created == {s.a.id, s.b.id}
    s.log = EventLog(s.ws)


async def _restart_keeps_everything(
    tmp_path: Path, how: str, late: float = 0.0
) -> dict[str, float]:
    async with scene(tmp_path) as s:
        await _play_and_set_up(s)
        before = {g.id: await s.observed(g) for g in (s.a, s.b)}
        assert before[s.b.id]["state"]["state_name"] == "PAUSED"
        await asyncio.sleep(0.6)  # past a checkpoint of B's pause
        old = {g.id: g.ear.ssrcs()[-1] for g in (s.a, s.b)}

        if how == "kill":
            assert await s.node.kill() >= 2, "the node and its engine worker"
        else:
            assert await s.node.terminate() == 0
        down = asyncio.get_running_loop().time()
        for g in (s.a, s.b):
            g.ear.poll()
        heard = {s.a.id: s.a.ear.count(A_TONE), s.b.id: s.b.ear.count(B_TONE)}
        await s.node.start(s.http)
        await asyncio.sleep(late)  # the bot comes back late: nothing may play meanwhile
        await _resumed(s)
        for g in (s.a, s.b):
            await s.log.wait("VOICE_CONNECTED", lambda d, g=g: d["guild_id"] == g.id)
        print(
            f"{how}: node back and both voice clients connected in "
            f"{asyncio.get_running_loop().time() - down:.2f} s"
        )

        after = {g.id: await s.observed(g) for g in (s.a, s.b)}
        assert after == before, "options, queue, context, repeat, state and current unchanged"

        # A goes on by itself, on a new voice session; B stays silent while paused.
        await s.started(s.a, A_NEXT)
        await s.a.listener.wait_for(lambda: s.a.ear.count(A_NEXT) >= 10, within=10)
        since_restart = [h for h in s.b.ear.frames if h.ssrc != old[s.b.id]]
        assert [h for h in since_restart if h.tone is not None] == [], "paused stays paused"
        await s.rest(s.b, "POST", "/resume")
        await s.started(s.b, B_NEXT)
        await s.b.listener.wait_for(lambda: s.b.ear.count(B_NEXT) >= 10, within=15)

        errors = {}
        for g, tone, length in ((s.a, A_TONE, A_LEN), (s.b, B_TONE, B_LEN)):
            new = [x for x in g.ear.ssrcs() if x != old[g.id]]
            assert new, "a new voice session after the restart"
            again = sum(g.ear.count(tone, ssrc=x) for x in new)
            went_on = length - again * FRAME  # where the track went on
            was = heard[g.id] * FRAME  # where it was, as heard
            errors[g.id] = went_on - was
            print(
                f"{how}: guild {g.id} ({tone:g} Hz) heard to {was:.2f} s, went on at "
                f"{went_on:.2f} s: error {went_on - was:+.2f} s "
                f"({g.ear.undecryptable} frames undecryptable)"
            )
        for gid, error in errors.items():
            assert abs(error) <= TOLERANCE, (gid, error)
        return errors


async def test_kill_9_of_every_node_process_resumes_every_guild(tmp_path: Path) -> None:
    await _restart_keeps_everything(tmp_path, "kill")


async def test_a_bot_back_late_finds_every_guild_where_it_was(tmp_path: Path) -> None:
    # The restored players wait for their bot (and voice) without the track moving on.
    await _restart_keeps_everything(tmp_path, "kill", late=4.0)


async def test_a_clean_restart_resumes_every_guild(tmp_path: Path) -> None:
    errors = await _restart_keeps_everything(tmp_path, "term")
    assert all(abs(e) <= 0.5 for e in errors.values()), errors  # exact positions at shutdown


async def test_a_corrupt_state_file_is_refused_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"password": PASSWORD, "port": 0}))
    state = tmp_path / "audionode-state.db"
    state.write_bytes(b"SQLite format 3\x00" + b"\x13" * 4000)
    code, err = await run_cli("run", "--config", str(tmp_path / "config.json"))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert str(state) in lines[0] and "not an SQLite database" in lines[0], err


async def test_a_foreign_sqlite_file_is_refused_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"password": PASSWORD, "port": 0}))
    state = tmp_path / "audionode-state.db"
    with contextlib.closing(sqlite3.connect(state)) as db:
        db.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
        db.commit()
    before = state.read_bytes()
    code, err = await run_cli("run", "--config", str(tmp_path / "config.json"))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert str(state) in lines[0] and "another program" in lines[0] and "moz_places" in lines[0]
    assert state.read_bytes() == before, "a foreign file is left as it was"
