"""Issue 11 item 5: the engine survives its own failures, attacked on a real running node.

Two guilds on a node with two worker processes (player keys 1 and 2 land on different
workers); a listener in each guild's channel hears what the node sends through the built-in
voice server. Guild A is attacked (its worker SIGKILLed, its producer thread or event loop
stalled through the test-only fault hook); guild B, on the other worker, must keep its 50
packets per second throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from audionode.control.commands import PlayerRef
from audionode.engine import messages as msg
from audionode.engine.faults import ENV
from audionode.engine.worker import WorkerPool
from tests.conftest import NodeFactory, eventually
from tests.e2e.chain import BOT, Chain, EventLog, chain
from tests.engine.guilds import Guild, gaps, join, of_chain

pytestmark = pytest.mark.timeout(90)


@dataclass
class Scene:
    c: Chain
    log: EventLog
    pool: WorkerPool
    a: Guild
    b: Guild

    def key(self, guild: Guild) -> int:
        service = self.c.node.node.service
        return service.sessions.find(PlayerRef(user_id=BOT, guild_id=guild.guild))[1].key

    def slot(self, guild: Guild) -> int:
        """The worker the guild's player was placed on (by load: ``engine/admission.py``)."""
        return self.pool.placer.slot_of(self.key(guild))

    def pid(self, guild: Guild) -> int:
        process = self.pool.stats()["processes"][self.slot(guild)]
        assert process["alive"], process
        pid: int = process["pid"]
        return pid

    def ops(self, guild: Guild, *names: str) -> list[dict[str, Any]]:
        return [d for d in (f["d"] for f in self.log.ops(*names)) if d["guild_id"] == guild.id]

    async def started(self, guild: Guild, title: str, count: int = 1) -> None:
        """Until ``count`` SOURCE_START of ``title`` in ``guild`` were seen."""

        def seen() -> int:
            return sum(title in d["source"]["title"] for d in self.ops(guild, "SOURCE_START"))

        await eventually(lambda: seen() >= count, timeout=30)


@contextlib.asynccontextmanager
async def scene(
    node_factory: NodeFactory, b_plays: str = "tone:660?seconds=60", **engine: Any
) -> AsyncIterator[Scene]:
    async with chain(node_factory, engine={"workers": 2, **engine}) as c:
        log = EventLog(c.ws)
        try:
            pool = c.node.node.service.engine
            assert isinstance(pool, WorkerPool)
            b = await join(c, log)
            s = Scene(c, log, pool, of_chain(c), b)
            assert s.slot(s.a) != s.slot(s.b)  # one worker each
            await b.load(b_plays)
            await s.started(b, "660")
            yield s
        finally:
            await log.stop()
            await b.listener.close()


def steady(guild: Guild, since: float) -> tuple[float, float]:
    rate, gap = gaps(guild.arrivals(since))
    print(f"guild {guild.id}: {rate:.1f} packets/s, longest gap {gap * 1000:.0f} ms")
    return rate, gap


async def test_a_track_that_killed_its_worker_twice_is_quarantined(
    node_factory: NodeFactory,
) -> None:
    async with scene(node_factory) as s:
        await s.a.load("tone:440?seconds=60")
        await s.a.load("tone:550?seconds=5")
        await s.started(s.a, "440")
        await s.a.listener.wait_for(lambda: len(s.a.arrivals()) >= 25, within=10)
        since = time.monotonic()

        os.kill(s.pid(s.a), signal.SIGKILL)
        await s.log.wait("PLAYER_TRACEBACK", lambda d: d["guild_id"] == s.a.id)
        await s.started(s.a, "440", count=2)  # restored from its position on a new worker
        await s.a.listener.wait_for(lambda: len(s.a.arrivals(since)) >= 25, within=10)
        outage = s.a.arrivals(since)[0] - since
        print(f"guild A: first packet {outage:.2f} s after its worker was killed")
        assert s.pool.stats()["strikes"] >= 1 and s.pool.stats()["quarantined"] == 0

        os.kill(s.pid(s.a), signal.SIGKILL)  # the replay "crashes" it again
        failed = await s.log.wait(
            "SOURCE_TRACEBACK", lambda d: d["guild_id"] == s.a.id and "440" in str(d)
        )
        assert "quarantined" in failed["traceback"]
        await s.started(s.a, "550")  # the player moved on instead of replaying it
        stats = s.pool.stats()
        assert stats["quarantined"] == 1 and stats["restarts"] == 2
        slot = stats["processes"][s.slot(s.a)]
        assert slot["restarts"] == 2 and "exit code -9" in slot["last_death"]
        assert stats["processes"][s.slot(s.b)]["restarts"] == 0

        # Guild B, on the other worker, never noticed.
        rate, gap = steady(s.b, since)
        assert rate > 45 and gap < 0.2, (rate, gap)


async def test_one_worker_death_quarantines_nothing_that_several_guilds_play(
    node_factory: NodeFactory,
) -> None:
    # The soak's finding: a popular track in two guilds of the killed worker (and queued
    # again in one) counted as two deaths and was refused everywhere for an hour.
    async with scene(node_factory) as s:
        c = await join(s.c, s.log)
        try:
            assert s.key(c) % 2 == s.key(s.a) % 2  # A and C share a worker
            for guild in (s.a, c):
                await guild.load("tone:440?seconds=60")
            await s.a.load("tone:440?seconds=60")
            for guild in (s.a, c):
                await s.started(guild, "440")
            os.kill(s.pid(s.a), signal.SIGKILL)
            for guild in (s.a, c):
                await s.started(guild, "440", count=2)  # both restored, nothing refused
            stats = s.pool.stats()
            assert stats["strikes"] == 1 and stats["quarantined"] == 0, stats
            assert not s.ops(s.a, "SOURCE_TRACEBACK") and not s.ops(c, "SOURCE_TRACEBACK")
        finally:
            await c.listener.close()


@pytest.mark.parametrize("kind", ["stall-producer", "stall-loop", "hold-gil"])
async def test_a_stalled_worker_is_restarted_within_2_s(
    node_factory: NodeFactory, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setenv(ENV, "1")  # inherited by the spawned workers only in this test
    async with scene(node_factory) as s:
        await s.a.load("tone:440?seconds=60")
        await s.started(s.a, "440")
        victim, since = s.pid(s.a), time.monotonic()

        s.pool.send(msg.Fault(player=s.key(s.a), kind=kind, seconds=30))
        await asyncio.sleep(1.0)
        status, body = await s.c.node.get("/status")
        slot = s.slot(s.a)
        stalled = body["engine"]["processes"][slot]
        # /status tells the truth while it lasts: the stalled part's last sign of life ages
        idle = stalled["producer_idle_s" if kind == "stall-producer" else "loop_idle_s"]
        assert status == 200 and idle >= 0.8, stalled

        await eventually(lambda: s.pool.restarts == 1, timeout=5)
        noticed = time.monotonic() - since
        print(f"{kind}: worker restarted {noticed:.2f} s after the stall began")
        assert noticed < 2.0
        assert victim not in s.pool.pids()
        part = {"stall-producer": "producer thread", "stall-loop": "event loop"}.get(
            kind, "worker process"
        )
        assert part in s.pool.stats()["processes"][slot]["last_death"]

        await s.log.wait("PLAYER_TRACEBACK", lambda d: d["guild_id"] == s.a.id)
        await s.started(s.a, "440", count=2)  # its player restored on the new worker
        await eventually(lambda: s.pool.stats()["processes"][slot]["alive"], timeout=10)
        rate, gap = steady(s.b, since)
        assert rate > 45 and gap < 0.2, (rate, gap)


async def test_a_generated_source_over_the_message_limit_fails_that_track_only(
    node_factory: NodeFactory,
) -> None:
    # 1 MiB per message; 10 s of 48 kHz stereo 16-bit WAV is 1.92 MB.
    async with scene(node_factory, "tone:660?seconds=5", max_message_bytes=1 << 20) as s:
        before = set(s.pool.pids())
        await s.a.load("tone:440?seconds=10")
        await s.a.load("tone:550?seconds=2")
        failed = await s.log.wait("SOURCE_TRACEBACK", lambda d: d["guild_id"] == s.a.id)
        assert "engine.max_message_bytes" in failed["traceback"], failed
        await s.started(s.a, "550")  # the next track plays, on the same worker
        assert set(s.pool.pids()) == before and s.pool.restarts == 0
        assert all(p["alive"] for p in s.pool.stats()["processes"])


async def test_in_process_the_same_message_limit_fails_the_track(
    node_factory: NodeFactory,
) -> None:
    async with chain(node_factory, engine={"workers": 0, "max_message_bytes": 1 << 20}) as c:
        log = EventLog(c.ws)
        try:
            await c.load("tone:440?seconds=10")
            await c.load("tone:550?seconds=1")
            failed = await log.wait("SOURCE_TRACEBACK")
            assert "engine.max_message_bytes" in failed["traceback"], failed
            started = await log.wait("SOURCE_START")
            assert "550" in started["source"]["title"]
        finally:
            await log.stop()


async def test_a_paused_player_restored_on_a_new_worker_can_be_seeked_before_it_resumes(
    node_factory: NodeFactory,
) -> None:
    # Restored paused, the player stays "opening" until resumed (its track has sent no frame
    # yet); a seek used to answer NOT_PLAYING there (docs/PERSISTENCE.md, known limits).
    async with scene(node_factory) as s:
        await s.a.load("tone:440?seconds=60")
        await s.started(s.a, "440")
        assert (await s.c.rest("POST", "/pause"))[0] == 204
        os.kill(s.pid(s.a), signal.SIGKILL)
        await eventually(lambda: s.pool.restarts == 1, timeout=10)
        await asyncio.sleep(1.0)  # the restore's Play reached the new worker, paused
        status, body = await s.c.rest("POST", "/seek", {"offset": 30.0})
        assert status == 204, body
        status, current = await s.c.rest("GET", "/current")
        assert status == 200 and abs(current["position"] - 30.0) < 0.5, current
        assert (await s.c.rest("POST", "/resume"))[0] == 204
        await s.started(s.a, "440", count=2)  # the restored track starts, where it was seeked

        def latest() -> float:
            updates = s.ops(s.a, "PLAYER_UPDATE")
            return float(updates[-1]["position"]) if updates else -1.0

        await eventually(lambda: latest() >= 30.0, timeout=10)
        assert latest() < 40.0, latest()
        errors = [d for d in s.ops(s.a, "PLAYER_TRACEBACK") if "worker" not in d["traceback"]]
        assert errors == [], errors  # only the death itself (the engine took the seek)
