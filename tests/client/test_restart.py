"""A node's own restart, with its state file, against the pool (issue 14 item 3).

Within ``restart_grace`` the restart is preferred to failover: the player stays on its node,
which restores the voice client and the track where it was. After the grace the player lives
on another node; the node that comes back must not take that node's voice session (it holds
its restored voice client until the bot is back, and the bot destroys it).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from pathlib import Path

import aiohttp
import pytest

from audionode.client import Player
from tests.client.harness import BOT
from tests.client.hearing import (
    Ears,
    Heard,
    decode,
    position_at_end,
    position_at_start,
    sweep_position,
)
from tests.client.nodeproc import NodeProcess
from tests.client.setup import node_get, node_queue, process_stage
from tests.conftest import PASSWORD, NodeFactory, eventually

pytestmark = pytest.mark.timeout(90)

GRACE = 10.0
"""Long enough for a node process to start again on a busy machine (about 1 s when idle)."""


def split(frames: list[Heard], ssrc: int) -> tuple[list[Heard], list[Heard]]:
    """The frames of the voice session ``ssrc`` and those after it (another session)."""
    before = [f for f in frames if f.ssrc == ssrc]
    return before, [f for f in frames if f.ssrc != ssrc and f.at > before[-1].at]


@pytest.mark.parametrize("how", ["kill", "terminate"])
async def test_a_node_restarted_within_the_grace_keeps_its_player(
    tmp_path: Path, how: str
) -> None:
    async with process_stage(tmp_path, GRACE) as s:
        listener, events, pool, bot, proc, node = (
            s.listener, s.events, s.pool, s.bot, s.proc, s.a_node
        )  # fmt: skip
        player = await bot.channel().connect(cls=Player)
        await player.set_volume(0.8)
        track = await player.play(f"local:{s.sweep}")
        q1 = await player.play("tone:440?seconds=1")
        q2 = await player.play("tone:660?seconds=1")
        await events.wait("audionode_track_start")
        ears = Ears(listener, BOT)
        await listener.wait_for(lambda: len(ears.frames()) >= 150, within=10)

        down = time.monotonic()
        await getattr(proc, how)()
        await events.wait("audionode_node_lost")
        await proc.start()
        up = time.monotonic()
        first = ears.frames()[0].ssrc
        await listener.wait_for(
            lambda: len(split(ears.frames(), first)[1]) >= 60, within=15
        )

        before, after = split(ears.frames(), first)
        gap = after[0].at - before[-1].at
        error = position_at_start(after) - position_at_end(before)
        print(f"\n{how}: node down {up - down:.2f} s (its start included); audible gap "
              f"{gap:.2f} s; the track went on {error:+.2f} s from where it was")  # fmt: skip
        assert abs(error) <= 1.5, f"went on {error:+.2f} s off"
        later = sweep_position(decode([f.opus for f in after[50:55]]))
        assert abs(later - (position_at_start(after) + 1.05)) < 0.3, "plays on at 1x"

        # the same player on the same node: nothing moved, nothing rebuilt
        assert events.named("audionode_player_moved") == [] and player.node is node
        assert player.connected and not player.suspended
        assert player.current is not None and player.current.uri == track.uri
        assert [t.uri for t in player.queue] == [q1.uri, q2.uri]
        assert list(player.queue) == await node_queue(pool.http, proc.url, player)
        assert (await node_get(pool.http, proc.url, player, "/options"))["volume"] == 0.8
        assert len(events.named("audionode_track_start")) == 1, "told once it started"
        await player.skip()
        await events.wait("audionode_track_start", lambda p, t: t.uri == q1.uri)
        assert list(player.queue) == await node_queue(pool.http, proc.url, player)
        await player.disconnect()


async def players_on(http: aiohttp.ClientSession, proc: NodeProcess) -> int:
    async with http.get(f"{proc.url}/status", headers={"Authorization": PASSWORD}) as r:
        players: int = (await r.json())["players"]
        return players


async def test_a_node_back_after_the_grace_does_not_take_the_session_back(
    tmp_path: Path, node_factory: NodeFactory
) -> None:
    """A's player moved to B; A restarts with its state (the voice client and its stored
    voice credentials). A holds that voice client until the bot is back, the bot destroys it,
    and B plays on: one voice session, its packet rate, no second move."""
    async with process_stage(tmp_path, 0.5, node_factory) as s:
        listener, events, bot, proc_a = s.listener, s.events, s.bot, s.proc
        a_node, b_node = s.a_node, s.b_node
        player = await bot.channel().connect(cls=functools.partial(Player, node=a_node))
        await player.play(f"local:{s.sweep}")
        await events.wait("audionode_track_start")
        ears = Ears(listener, BOT)
        await listener.wait_for(lambda: len(ears.frames()) >= 50, within=10)
        await proc_a.kill()
        (_, _, new) = await events.wait("audionode_player_moved", within=20)
        assert new is b_node
        first = ears.frames()[0].ssrc
        await listener.wait_for(lambda: len(split(ears.frames(), first)[1]) >= 50, within=10)
        on_b = ears.frames()[-1].ssrc

        back = time.monotonic()
        await proc_a.start()  # restores the voice client with the session B now holds

        def a_ready() -> bool:
            return sum(n is a_node for (n,) in events.named("audionode_node_ready")) == 2

        await eventually(a_ready, timeout=10)
        async with aiohttp.ClientSession() as http:
            for _ in range(200):  # the client destroys the stale voice client
                if await players_on(http, proc_a) == 0:
                    break
                await asyncio.sleep(0.05)
            assert await players_on(http, proc_a) == 0
        await asyncio.sleep(2.5)  # well past A's hold (0.5 s) and a voice connect of A

        heard = [f for f in ears.frames() if f.at >= back]
        span = heard[-1].at - heard[0].at
        gaps = [later.at - f.at for f, later in itertools.pairwise(heard)]
        print(f"\nA back after the grace: {len(heard)} frames over {span:.2f} s "
              f"({len(heard) / span:.1f}/s), longest gap {max(gaps):.3f} s, "
              f"voice sessions {sorted({f.ssrc for f in heard})}")  # fmt: skip
        assert {f.ssrc for f in heard} == {on_b}, "only B's voice session was heard"
        assert max(gaps) < 0.15, f"B went silent {max(gaps):.2f} s"
        assert len(heard) / span > 45
        assert len(events.named("audionode_player_moved")) == 1 and player.node is b_node
        assert player.connected
        await player.disconnect()
