"""The pool: placement by load (from each node's ``/status``), a node that comes back within the
grace keeps its players (socket drop; restart without state: rebuilt on it), a refused
password is an error."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from audionode.client import (
    AuthenticationFailed,
    Node,
    NodeUnavailable,
    NoNodesAvailable,
    Player,
    Pool,
)
from tests.client.harness import BOT, discord_bot
from tests.client.hearing import Ears, position_at_end, position_at_start
from tests.client.proxy import relay
from tests.client.setup import (
    SOURCES,
    Events,
    crowd,
    listen,
    node_get,
    node_queue,
    process_stage,
)
from tests.conftest import PASSWORD, NodeFactory
from tests.test_cli import free_port
from tests.transport.voiceserver_harness import voice_server

pytestmark = pytest.mark.timeout(60)


async def test_a_new_player_goes_to_the_least_loaded_node(node_factory: NodeFactory) -> None:
    async with (
        voice_server() as vs,
        node_factory(sources=SOURCES, vc_timeout=30) as a,
        node_factory(sources=SOURCES) as b,
        discord_bot(vs.lvsp) as bot,
    ):
        await crowd(a, 100)  # the socket closes; the voice clients live on for vc_timeout
        a_node = Node(url=a.url, password=PASSWORD, identifier="a", status_interval=60)
        b_node = Node(url=b.url, password=PASSWORD, identifier="b", status_interval=60)
        pool = await Pool.connect(client=bot.client, nodes=[a_node, b_node])
        try:
            await a_node.refresh_stats()
            await b_node.refresh_stats()
            assert (a_node.stats.players, b_node.stats.players) == (100, 0)
            expected = min((a_node, b_node), key=lambda n: n.penalty)
            print(f"\npenalties: a {a_node.penalty:.1f} ({a_node.stats}), "
                  f"b {b_node.penalty:.1f} ({b_node.stats})")  # fmt: skip
            assert pool.best_node() is expected
            player = await bot.channel().connect(cls=Player)
            assert player.node is expected and expected.placed == 1
            await player.disconnect()
        finally:
            await pool.close()


async def test_a_dropped_socket_that_comes_back_keeps_its_players(
    node_factory: NodeFactory,
) -> None:
    async with (
        voice_server() as vs,
        node_factory(sources=SOURCES) as a,
        node_factory(sources=SOURCES) as b,
        relay(a.node.port) as link,
        discord_bot(vs.lvsp) as bot,
    ):
        listener = await listen(vs, bot.channel())
        events = Events(bot)
        a_node = Node(url=link.url, password=PASSWORD, identifier="a")
        b_node = Node(url=b.url, password=PASSWORD, identifier="b")
        pool = await Pool.connect(client=bot.client, nodes=[a_node, b_node], restart_grace=5)
        try:
            player = await bot.channel().connect(cls=Player)
            assert player.node is a_node or pytest.skip("placed on b by load")
            await player.play("tone:440?seconds=6")
            await player.play("tone:660?seconds=2")
            await events.wait("audionode_track_start")
            ears = Ears(listener, BOT)
            await listener.wait_for(lambda: len(ears.frames()) >= 25, within=10)
            cut = time.monotonic()
            link.cut()
            await events.wait("audionode_node_lost")
            queued = asyncio.create_task(player.play("tone:880?seconds=1"))  # waits for it
            await asyncio.sleep(0.1)
            assert not queued.done() and player.suspended
            await events.wait("audionode_node_ready", lambda n: n is a_node and n.available)
            track = await asyncio.wait_for(queued, 10)
            assert not events.named("audionode_player_moved") and player.node is a_node
            assert [t.tag for t in player.queue][-1] == track.tag
            assert list(player.queue) == await node_queue(a.http, a.url, player)
            await asyncio.sleep(0.5)
            frames = [f for f in ears.frames() if f.at > cut - 0.5]
            gaps = [later.at - f.at for f, later in itertools.pairwise(frames)]
            print(f"\nsocket cut: longest silence {max(gaps):.3f} s over {len(frames)} frames")
            assert max(gaps) < 0.15, f"audio paused {max(gaps):.2f} s while the socket was down"
            assert len({f.ssrc for f in frames}) == 1
            await player.disconnect()
        finally:
            await pool.close()
            await listener.close()


async def test_a_restarted_node_without_state_gets_the_player_back(tmp_path: Path) -> None:
    # no state file: the restarted node knows nothing, so the client rebuilds the player
    async with process_stage(tmp_path, 10, state={"path": None}) as s:
        listener, events, pool, bot, sweep = s.listener, s.events, s.pool, s.bot, s.sweep
        proc, node = s.proc, s.a_node
        player = await bot.channel().connect(cls=Player)
        await player.play(f"local:{sweep}")
        nxt = await player.play("tone:440?seconds=1")
        await events.wait("audionode_track_start")
        ears = Ears(listener, BOT)
        await listener.wait_for(lambda: len(ears.frames()) >= 100, within=10)
        await proc.kill()
        await events.wait("audionode_node_lost")
        with pytest.raises(NodeUnavailable):
            pool.best_node()
        volume = asyncio.create_task(player.set_volume(0.5))
        await proc.start()
        (_, old, new) = await events.wait("audionode_player_moved", within=20)
        assert old is new is node
        await asyncio.wait_for(volume, 10)
        first_ssrc = ears.frames()[0].ssrc
        await listener.wait_for(
            lambda: sum(f.ssrc != first_ssrc for f in ears.frames()) >= 25, within=10
        )
        before = [f for f in ears.frames() if f.ssrc == first_ssrc]
        after = [f for f in ears.frames() if f.ssrc != first_ssrc]
        skipped = position_at_start(after) - position_at_end(before)
        gap = after[0].at - before[-1].at
        print(f"\nrestart without state: audible gap {gap:.2f} s, skipped {skipped:+.2f} s")
        assert -0.5 < skipped < 1.0, f"{skipped:.2f} s of the track lost across the restart"
        assert (await node_get(pool.http, proc.url, player, "/options"))["volume"] == 0.5
        assert [t.uri for t in player.queue] == [nxt.uri]
        await player.disconnect()


async def test_a_refused_password_is_an_error(node_factory: NodeFactory) -> None:
    async with voice_server() as vs, node_factory() as a, discord_bot(vs.lvsp) as bot:
        with pytest.raises(AuthenticationFailed, match="refused the password"):
            await Pool.connect(client=bot.client, nodes=[Node(url=a.url, password="wrong")])
        with pytest.raises(RuntimeError, match=r"Pool\.connect"):
            Pool.of(bot.client)


async def test_with_no_node_connected_joining_fails_cleanly() -> None:
    async with voice_server() as vs, discord_bot(vs.lvsp) as bot:
        down = Node(url=f"http://127.0.0.1:{free_port()}", password=PASSWORD)
        pool = await Pool.connect(client=bot.client, nodes=[down])  # keeps trying meanwhile
        try:
            assert not down.available
            with pytest.raises(NoNodesAvailable, match="no audionode node is connected"):
                await bot.channel().connect(cls=Player)
            # discord.py forgets the player (a second connect is not "already connected"),
            # and Discord was never asked for a voice state
            assert bot.client.voice_clients == [] and bot.gateway.requests == []
            with pytest.raises(NoNodesAvailable):
                await bot.channel().connect(cls=Player)
        finally:
            await pool.close()
