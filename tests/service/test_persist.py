"""The service with a real state file and a fake engine: what a node writes while it runs,
and what a new node rebuilds from it (a crash: no last checkpoint; a clean stop: one). No
sockets; ``tests/e2e/test_restart.py`` does the same with real processes and real audio."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from audionode.control import commands as c
from audionode.control import events as ev
from audionode.engine import messages as m
from audionode.protocol.filters import parse_filters
from audionode.service import NodeService
from audionode.service.persist import RESTORED_VOICE_HOLD
from audionode.service.state import NodeState
from audionode.sources.loader import SourceManager
from audionode.store import Store
from tests.conftest import make_config
from tests.service.test_node import SESSION, USER, FakeEngine, Sink, Songs


@dataclass
class Clock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Node:
    """One life of a node on the state file ``path``."""

    svc: NodeService
    engine: FakeEngine
    store: Store

    async def run(self, ref: Any, command: Any) -> Any:
        return await self.svc.execute(ref, command)

    def crash(self) -> None:
        """What is committed stays; what the keeper has not handed over is lost."""
        self.svc.keeper.store = None
        self.store.close()

    async def started(self, guild: int) -> m.Play:
        await asyncio.sleep(0)  # the open task
        await asyncio.sleep(0)
        play = [p for p in self.engine.of(m.Play) if p.player == self.key(guild)][-1]
        self.svc.on_engine_event(m.TrackStarted(player=play.player, serial=play.serial))
        return play

    def key(self, guild: int) -> int:
        return self.svc.sessions.find(c.PlayerRef(user_id=USER, guild_id=guild))[1].key


async def boot(path: Path, clock: Clock, **config: Any) -> Node:
    store = Store.open(path)
    snapshot = store.load()
    identity = snapshot.identity
    svc = NodeService(
        make_config(**config),
        clock=clock,
        state=NodeState(identity.node_id, identity.token_secret),
        store=store,
    )
    engine = FakeEngine()
    svc.engine = engine
    svc.sources = SourceManager([Songs()])
    svc.restore(snapshot)
    return Node(svc, engine, store)


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[list[Node]]:
    made: list[Node] = []
    yield made
    for node in made:
        await node.svc.close()


async def join(node: Node, guild: int, sink: Sink | None = None) -> c.PlayerRef:
    if SESSION not in node.svc.sessions.by_ref:
        await node.svc.identify(SESSION, sink or Sink())
    await node.run(SESSION, c.VoiceState(guild_id=guild, session_id=f"s{guild}", channel_id=30))
    await node.run(SESSION, c.VoiceServer(guild_id=guild, token=f"t{guild}", endpoint="e:1"))
    player = node.svc.sessions.find(c.PlayerRef(user_id=USER, guild_id=guild))[1]
    node.svc.on_engine_event(
        m.VoiceConnected(player=player.key, ssrc=1, mode="x", dave_protocol_version=1)
    )
    return c.PlayerRef(user_id=USER, guild_id=guild, voice_client_id=player.id)


async def observe(node: Node, ref: c.PlayerRef) -> dict[str, Any]:
    state = await node.run(ref, c.GetState())
    queue = await node.run(ref, c.GetQueue())
    return {
        "id": state.voice_client_id,
        "state": state.state,
        "options": await node.run(ref, c.GetOptions()),
        "repeat": state.repeat,
        "context": state.context,
        "current": None if state.current is None else state.current.entry.tag,
        "position": None if state.current is None else state.current.position,
        "queue": [(e.tag, e.track.id, e.context, e.start_position) for e in queue.entries],
    }


async def two_guilds(node: Node, clock: Clock) -> tuple[c.PlayerRef, c.PlayerRef]:
    """Guild 1 plays song:a at 12.5 s with filters; guild 2 is paused at 4 s in song:x."""
    a = await join(node, 1)
    await node.run(a, c.Load(query="song:a"))
    await node.run(a, c.Load(query="song:b"))
    await node.run(a, c.Load(query="song:c"))
    await node.started(1)
    filters = parse_filters({"equalizer": [{"band": 1, "gain": 0.3}]})
    await node.run(a, c.SetOptions(volume=0.4, crossfade=2.0, filters=filters))
    await node.run(a, c.SetRepeat(mode="queue"))
    await node.run(a, c.SetContext(context={"dj": "alice"}))
    await node.run(a, c.UpdateEntry(key=0, context={"why": "request"}, start_position=3.0))
    b = await join(node, 2)
    await node.run(b, c.Load(query="song:x"))
    await node.started(2)
    clock.now += 4.0
    await node.run(b, c.Pause())
    clock.now += 8.5  # guild 1 is 12.5 s in
    return a, b


async def test_a_crash_keeps_everything_up_to_the_last_checkpoint(
    tmp_path: Path, nodes: list[Node]
) -> None:
    clock = Clock()
    first = await boot(tmp_path / "s.db", clock)
    nodes.append(first)
    a, b = await two_guilds(first, clock)
    first.svc.keeper.checkpoint()  # the periodic checkpoint, run now
    before = {1: await observe(first, a), 2: await observe(first, b)}
    assert first.store.flush()
    clock.now += 0.4  # played on after the checkpoint: lost with the crash
    first.crash()

    second = await boot(tmp_path / "s.db", clock)
    nodes.append(second)
    session = second.svc.sessions.by_ref[SESSION]
    assert session.sink is None and session.expiry is not None  # waits for its bot
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    engine = second.engine
    assert engine.of(m.Connect) == [], "voice waits for the bot (VoiceHold)"
    key_a, key_b = second.key(1), second.key(2)
    [play_a] = [p for p in engine.of(m.Play) if p.player == key_a]
    [play_b] = [p for p in engine.of(m.Play) if p.player == key_b]
    assert play_a.start_ms == 12_500 and play_b.start_ms == 4_000
    assert m.SetVolume(player=key_a, volume=0.4) in engine.commands
    assert m.SetCrossfade(player=key_a, seconds=2.0) in engine.commands
    assert [f.filters["equalizer"] for f in engine.of(m.SetFilters)] == [[{"band": 1, "gain": 0.3}]]
    assert engine.commands.index(play_b) < max(  # paused stays paused
        i for i, x in enumerate(engine.commands) if x == m.Pause(player=key_b)
    )

    sink = Sink()
    identified, _ = await second.svc.identify(SESSION, sink)
    assert identified.resumed
    ids = {v.guild_id: v.voice_client_id for v in identified.voice_clients}
    assert ids == {1: a.voice_client_id, 2: b.voice_client_id}
    await second.run(a, c.GetState())  # the bot speaks of guild 1: it connects at once
    connects = {x.guild_id: x for x in engine.of(m.Connect)}
    assert list(connects) == [1]
    assert (connects[1].token, connects[1].session_id, connects[1].channel_id) == ("t1", "s1", 30)
    await asyncio.sleep(RESTORED_VOICE_HOLD + 0.1)  # guild 2: when the hold runs out
    connects = {x.guild_id: x for x in engine.of(m.Connect)}
    assert connects[2].token == "t2"
    for guild in (1, 2):
        second.svc.on_engine_event(
            m.VoiceConnected(player=second.key(guild), ssrc=2, mode="x", dave_protocol_version=1)
        )
    after = {1: await observe(second, a), 2: await observe(second, b)}
    assert after == before


async def test_a_restored_voice_client_connects_only_if_its_bot_comes_back_for_it(
    tmp_path: Path, nodes: list[Node]
) -> None:
    """Its credentials may have gone to another node meanwhile: no voice before the bot is
    back, and none for a voice client the returning bot destroys (docs/PERSISTENCE.md)."""
    clock = Clock()
    first = await boot(tmp_path / "s.db", clock)
    await join(first, 1)
    moved = await join(first, 2)  # the bot's client will have moved this one elsewhere
    await first.svc.close()

    second = await boot(tmp_path / "s.db", clock)
    nodes.append(second)
    await asyncio.sleep(RESTORED_VOICE_HOLD + 0.1)
    assert second.engine.of(m.Connect) == [], "no voice for a bot that is not back"
    await second.svc.identify(SESSION, Sink())
    await second.run(moved, c.Destroy())
    await asyncio.sleep(RESTORED_VOICE_HOLD + 0.1)
    assert [x.guild_id for x in second.engine.of(m.Connect)] == [1]


async def test_a_clean_stop_writes_the_exact_position(tmp_path: Path, nodes: list[Node]) -> None:
    clock = Clock()
    first = await boot(tmp_path / "s.db", clock)
    await two_guilds(first, clock)
    first.svc.keeper.checkpoint()
    clock.now += 0.4
    await first.svc.close()  # the last checkpoint, then the sessions close

    second = await boot(tmp_path / "s.db", clock)
    nodes.append(second)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    [play_a] = [p for p in second.engine.of(m.Play) if p.player == second.key(1)]
    assert play_a.start_ms == 12_900
    assert second.svc.sessions.by_ref[SESSION].sink is None  # closed at shutdown, kept


async def test_a_session_not_identified_within_vc_timeout_expires_after_the_restart(
    tmp_path: Path, nodes: list[Node]
) -> None:
    clock = Clock()
    first = await boot(tmp_path / "s.db", clock, vc_timeout=0.2)
    a = await join(first, 1)
    await first.run(a, c.Load(query="song:a"))
    await first.svc.close()

    second = await boot(tmp_path / "s.db", clock, vc_timeout=0.2)
    assert SESSION in second.svc.sessions.by_ref
    key = second.key(1)
    await asyncio.sleep(0.35)
    assert second.svc.sessions.by_ref == {}
    assert m.Disconnect(player=key) in second.engine.commands
    await second.svc.close()

    third = await boot(tmp_path / "s.db", clock)
    nodes.append(third)
    assert third.svc.sessions.by_ref == {}, "the expired session left the state file"


async def test_a_session_detached_longer_than_vc_timeout_is_not_restored(
    tmp_path: Path, nodes: list[Node]
) -> None:
    clock = Clock()
    first = await boot(tmp_path / "s.db", clock, vc_timeout=30)
    sink = Sink()
    await join(first, 1, sink)
    first.svc.disconnect(SESSION, sink, [])  # the bot went away 20 s before the crash
    first.svc.keeper.flush()
    first.store.flush()
    first.crash()
    await first.svc.close()

    clock.now += 20
    second = await boot(tmp_path / "s.db", clock, vc_timeout=30)
    session = second.svc.sessions.by_ref[SESSION]
    assert session.expiry is not None
    left = session.expiry.when() - asyncio.get_running_loop().time()
    assert 9 < left <= 10  # what was left of its vc_timeout
    await second.svc.close()

    clock.now += 15
    third = await boot(tmp_path / "s.db", clock, vc_timeout=30)
    nodes.append(third)
    assert third.svc.sessions.by_ref == {} and third.engine.of(m.Connect) == []


async def test_events_kept_for_an_absent_bot_survive_the_restart(
    tmp_path: Path, nodes: list[Node]
) -> None:
    clock = Clock()
    first = await boot(tmp_path / "s.db", clock)
    sink = Sink()
    a = await join(first, 1, sink)
    first.svc.disconnect(SESSION, sink, [])
    await first.run(a, c.Load(query="song:a"))  # QueueChanged events, kept
    await first.started(1)  # TrackStarted, kept
    await asyncio.sleep(0.1)  # the keeper's batch
    first.store.flush()
    first.crash()
    await first.svc.close()

    second = await boot(tmp_path / "s.db", clock)
    nodes.append(second)
    _, kept = await second.svc.identify(SESSION, Sink())
    kinds = [type(e) for e in kept]
    assert kinds[:3] == [ev.QueueChanged, ev.QueueChanged, ev.TrackStarted], kinds


def stored_position(node: Node, guild: int) -> tuple[float, float | None, float]:
    """``(position, position_at)`` of the guild's row and the node's ``alive_at``, once
    everything submitted is committed (the writer thread is idle then)."""
    assert node.store.flush()
    conn = node.store._conn
    row = conn.execute("SELECT position, position_at FROM players WHERE guild_id = ?", (guild,))
    position, at = row.fetchone()
    (alive,) = conn.execute("SELECT value FROM node WHERE key = 'alive_at'").fetchone()
    return position, at, struct.unpack(">d", alive)[0]


async def test_a_track_playing_on_is_written_once_and_moved_on_at_start_up(
    tmp_path: Path, nodes: list[Node]
) -> None:
    """Each checkpoint writes the time; a track's position only when it stopped keeping time
    with the wall clock (here: the engine reports less than was extrapolated, a stall)."""
    clock = Clock()
    node = await boot(tmp_path / "s.db", clock, state={"checkpoint_interval": 0.1})
    a = await join(node, 1)
    await node.run(a, c.Load(query="song:a"))
    play = await node.started(1)
    started_at = clock.now
    await asyncio.sleep(0.15)
    assert stored_position(node, 1) == (0.0, started_at, clock.now)
    for _ in range(3):  # the track plays on: only the time is written
        clock.now += 0.5
        await asyncio.sleep(0.12)
    assert stored_position(node, 1) == (0.0, started_at, clock.now)
    node.svc.on_engine_event(
        m.TrackPosition(player=play.player, serial=play.serial, position_ms=200)
    )
    await asyncio.sleep(0.15)
    assert stored_position(node, 1) == (0.2, clock.now, clock.now)
    stalled_at = clock.now
    clock.now += 0.3
    await asyncio.sleep(0.15)
    assert stored_position(node, 1) == (0.2, stalled_at, clock.now)
    await node.run(a, c.Pause())  # still: the position as it stands, no time
    clock.now += 0.1
    await asyncio.sleep(0.15)
    assert stored_position(node, 1) == (pytest.approx(0.5), None, clock.now)
    await node.run(a, c.Resume())
    await asyncio.sleep(0.15)
    assert stored_position(node, 1) == (pytest.approx(0.5), clock.now, clock.now)
    clock.now += 2.0
    await asyncio.sleep(0.15)
    node.crash()

    second = await boot(tmp_path / "s.db", clock)
    nodes.append(second)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    [replay] = [p for p in second.engine.of(m.Play) if p.player == second.key(1)]
    assert replay.start_ms == 2500  # 0.5 s, moved on 2 s to the last checkpoint
    status = await second.svc.status(None, c.GetStatus())
    assert status.state["enabled"] is True and status.state["errors"] == 0
