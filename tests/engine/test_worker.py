"""Worker processes: real spawned processes, real sockets, a real SIGKILL."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from audionode.engine import messages as m
from audionode.engine.worker import WorkerPool, _Groups, default_workers
from audionode.sources.api import Playable
from tests.conftest import eventually, make_config
from tests.engine.echo_engine import FLAKY_ENV

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
        pids = pool.pids()
    finally:
        await pool.close()
    for pid in pids:  # exited and reaped
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


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


async def test_a_failing_respawn_is_retried_and_pending_commands_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken"
    monkeypatch.setenv(FLAKY_ENV, str(broken))
    events: list[m.Event] = []
    lost: list[int] = []
    config = make_config(engine={"workers": 1, "max_pending_commands": 16})
    pool = WorkerPool(
        config,
        events.append,
        lambda s, p: lost.append(s),
        1,
        "tests.engine.echo_engine:FlakyEngine",
    )
    pool.backoff_max = 0.5
    await pool.start()
    try:
        pool.send(m.Seek(player=1, position_ms=0))
        await wait_for(events, 1)
        (first,) = pool.pids()
        broken.touch()  # from now on a new worker exits as it starts
        os.kill(first, signal.SIGKILL)
        await eventually(lambda: pool.restarts >= 3, timeout=30)  # died, and failed twice
        assert pool.stats()["processes"][0]["last_death"] == "it died with exit code 3"
        events.clear()
        for i in range(20):  # while no worker runs: 16 are kept, 4 refused
            pool.send(m.Seek(player=1, position_ms=i))
        await wait_for(events, 4)
        refused = [e for e in events if isinstance(e, m.CommandFailed)]
        assert len(refused) == 4 and "command queue is full" in refused[0].message
        assert pool.stats()["processes"][0]["pending"] == 16
        broken.unlink()  # the next attempt succeeds and gets the kept commands, in order
        await eventually(lambda: len(events) == 20, timeout=30)
        served = [e.position_ms for e in events if isinstance(e, m.TrackPosition)]
        assert served == list(range(16))
        assert first not in pool.pids() and len(lost) == pool.restarts
    finally:
        await pool.close()


async def test_an_oversize_command_fails_its_track_and_the_worker_lives() -> None:
    events: list[m.Event] = []
    config = make_config(engine={"workers": 1, "max_message_bytes": 1 << 20})
    pool = WorkerPool(config, events.append, lambda s, p: None, 1, FACTORY)
    await pool.start()
    try:
        (pid,) = pool.pids()
        big = Playable.from_bytes(b"\0" * (1 << 20), format="wav")
        pool.send(m.Play(player=1, serial=7, source=big))
        pool.send(m.Play(player=1, serial=8, source=TONE))
        await wait_for(events, 2)
        failed, started = events[:2]
        assert isinstance(failed, m.TrackEnded) and failed.serial == 7
        assert failed.reason == "error" and "engine.max_message_bytes" in (failed.message or "")
        assert isinstance(started, m.TrackStarted) and started.serial == 8
        assert pool.pids() == [pid] and pool.restarts == 0
    finally:
        await pool.close()


def test_backoff_doubles_while_workers_die_young() -> None:
    pool = WorkerPool(make_config(), lambda e: None, lambda s, p: None, 1, FACTORY)
    assert [pool.backoff(n) for n in range(8)] == [0, 0, 0.5, 1, 2, 4, 8, 16]
    assert pool.backoff(30) == pool.backoff_max


# --- the pool's view of shared encodes (placement grouping, engine/worker.py _Groups) ----------


def _live_play(player: int, serial: int = 1, url: str = "http://127.0.0.1:1/live") -> m.Play:
    return m.Play(player=player, serial=serial, source=Playable.from_url(url, is_live=True))


def test_groups_keep_what_a_fresh_player_needs_again_and_who_shares_what() -> None:
    groups = _Groups(enabled=True)
    connect = m.Connect(
        player=1, guild_id=5, user_id=6, session_id="s", token="t", channel_id=7, endpoint="e"
    )
    for command in (connect, m.SetVolume(player=1, volume=0.5), m.Pause(player=1)):
        groups.saw(command)
    assert groups.fresh(1)
    assert groups.replay(1) == [connect, m.SetVolume(player=1, volume=0.5)]
    share = groups.played(_live_play(1))
    assert share is not None and not groups.fresh(1) and groups.replay(1) == []
    groups.join(share, 1, 0)
    assert groups.members(share) == {0: 1}
    # the same volume again keeps it in the group; another volume, a preload or a stop do not
    groups.saw(m.SetVolume(player=1, volume=0.5))
    assert groups.members(share) == {0: 1}
    groups.saw(m.SetVolume(player=1, volume=0.6))
    assert groups.members(share) == {}
    # a second player with the first player's former options gets another key
    groups.saw(m.SetVolume(player=2, volume=0.5))
    assert groups.played(_live_play(2)) == share
    assert groups.played(_live_play(3)) != share  # volume 1.0


def test_groups_leave_on_divergence_and_forget_on_disconnect() -> None:
    groups = _Groups(enabled=True)
    share = groups.played(_live_play(1))
    assert share is not None
    groups.join(share, 1, 0)
    groups.saw(m.Seek(player=1, position_ms=5))  # refused for a live member: it stays
    groups.saw(m.Resume(player=1))
    assert groups.members(share) == {0: 1}
    groups.saw(m.SetFilters(player=1, filters={"timescale": {"pitch": 1.5}}))
    assert groups.members(share) == {}
    groups.join(share, 1, 0)
    groups.saw(m.Disconnect(player=1))
    assert groups.members(share) == {} and groups.fresh(1)


def test_groups_share_nothing_when_sharing_is_off_or_the_play_is_not_live() -> None:
    assert _Groups(enabled=False).played(_live_play(1)) is None
    groups = _Groups(enabled=True)
    file = Playable.from_url("http://127.0.0.1:1/a.mp3")
    assert groups.played(m.Play(player=1, serial=2, source=file)) is None
    live = Playable.from_url("http://127.0.0.1:1/live", is_live=True)
    assert groups.played(m.Play(player=2, serial=1, source=live, start_ms=1000)) is None
