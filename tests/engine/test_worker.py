"""Worker processes: real spawned processes, real sockets, a real SIGKILL."""

from __future__ import annotations

import os
import signal

from audionode.engine import messages as m
from audionode.engine.worker import WorkerPool, default_workers
from audionode.sources.api import Playable
from tests.conftest import eventually, make_config

TONE = Playable.from_bytes(b"RIFF", format="wav")
FACTORY = "tests.engine.echo_engine:EchoEngine"


async def wait_for(events: list[m.Event], n: int) -> None:
    await eventually(lambda: len(events) >= n, timeout=20)


def test_default_worker_count() -> None:
    assert default_workers(3) == 3 and default_workers(0) == 0
    assert default_workers(-1) == max(1, (os.cpu_count() or 2) - 1)


async def test_commands_are_sharded_and_events_come_back() -> None:
    events: list[m.Event] = []
    pool = WorkerPool(make_config(), events.append, lambda slot, players: None, 2, FACTORY)
    await pool.start()
    try:
        for player in (1, 2, 3, 4):
            pool.send(m.Seek(player=player, position_ms=player))
        await wait_for(events, 4)
        pid_of = {e.player: e.serial for e in events if isinstance(e, m.TrackPosition)}
        assert pid_of[1] == pid_of[3] != pid_of[2] == pid_of[4]
        assert sorted(pid_of.values()) == sorted(pool.pids() * 2)
    finally:
        await pool.close()
    assert all(not p.is_alive() for p in (w.process for w in pool._workers if w))


async def test_killed_worker_is_reported_and_replaced() -> None:
    events: list[m.Event] = []
    lost: list[tuple[int, set[int]]] = []
    pool = WorkerPool(make_config(), events.append, lambda s, p: lost.append((s, p)), 2, FACTORY)
    await pool.start()
    try:
        pool.send(m.Play(player=1, serial=1, source=TONE))
        pool.send(m.Play(player=3, serial=1, source=TONE))
        pool.send(m.Play(player=2, serial=1, source=TONE))
        pool.send(m.Disconnect(player=3))
        await wait_for(events, 3)
        victim = pool.stats()["processes"][1]["pid"]
        survivor = pool.stats()["processes"][0]["pid"]
        os.kill(victim, signal.SIGKILL)
        await eventually(lambda: bool(lost), timeout=20)
        assert lost == [(1, {1})]  # player 3 had disconnected
        assert pool.restarts == 1 and victim not in pool.pids() and survivor in pool.pids()
        events.clear()
        pool.send(m.Seek(player=1, position_ms=7))
        pool.send(m.Seek(player=2, position_ms=8))
        await wait_for(events, 2)
        served = {e.player: e.serial for e in events if isinstance(e, m.TrackPosition)}
        assert served[2] == survivor and served[1] in pool.pids() and served[1] != victim
    finally:
        await pool.close()
