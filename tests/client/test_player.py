"""The client library against a real node, the built-in voice server and discord.py 2.7.1's
real VoiceProtocol flow: what the bot asks for is heard, the queue mirror equals the node's
queue after every change, and the bot gets its events."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from audionode.client import NodeError, Player
from tests.client.harness import BOT
from tests.client.hearing import Ears, band_level, decode, dominant
from tests.client.setup import node_get, stage
from tests.conftest import NodeFactory

pytestmark = pytest.mark.timeout(60)


async def test_play_is_heard_and_the_queue_mirror_follows_every_change(
    node_factory: NodeFactory,
) -> None:
    async with stage(node_factory) as s:
        await s.events.wait("audionode_node_ready")
        player = await s.bot.channel().connect(cls=Player)
        assert isinstance(player, Player) and player.connected
        assert s.bot.client.voice_clients == [player]
        assert s.bot.gateway.requests == [(player.guild.id, player.channel.id)]
        assert player.node is s.pool.get_node("n1")

        first = await player.play("tone:440?seconds=8")
        assert first.title.startswith("Tone 440") and first.duration == 8.0
        (_, started) = await s.events.wait("audionode_track_start")
        assert started.tag == first.tag and player.current == started
        assert await s.mirror_matches(player) == []

        # queue changes while the first track plays: the mirror equals GET /queue after each
        a = await player.play("tone:660?seconds=2")
        assert [t.tag for t in await s.mirror_matches(player)] == [a.tag]
        b = await player.play("tone:880?seconds=2")
        c = await player.play("tone:990?seconds=1")
        assert [t.tag for t in await s.mirror_matches(player)] == [a.tag, b.tag, c.tag]
        await player.move(c, 0)
        assert [t.tag for t in await s.mirror_matches(player)] == [c.tag, a.tag, b.tag]
        removed = await player.remove(player.queue[1])
        assert removed.tag == a.tag
        assert [t.tag for t in await s.mirror_matches(player)] == [c.tag, b.tag]
        await player.play("tone:1100?seconds=1")
        await player.shuffle()
        assert len(await s.mirror_matches(player)) == 3
        await player.clear()
        assert await s.mirror_matches(player) == [] and len(player.queue) == 0
        nxt = await player.play("tone:660?seconds=2")
        await s.mirror_matches(player)

        # heard: 440 Hz from the bot's SSRC
        ears = Ears(s.listener, BOT)
        await s.listener.wait_for(lambda: len(ears.frames()) >= 60, within=10)
        frames = ears.frames()
        assert abs(dominant(decode([f.opus for f in frames[10:60]])) - 440) < 5

        # skip: track_end (skipped) then the next track's start, and the mirror pops it
        await player.skip()
        (_, ended, reason) = await s.events.wait("audionode_track_end")
        assert ended.tag == first.tag and reason == "skipped"
        (_, started) = await s.events.wait("audionode_track_start", lambda p, t: t.tag == nxt.tag)
        assert player.current is not None and player.current.tag == nxt.tag
        assert await s.mirror_matches(player) == []
        (_, ended, reason) = await s.events.wait(
            "audionode_track_end", lambda p, t, r: t.tag == nxt.tag
        )
        assert reason == "finished" and player.current is None

        await player.disconnect()
        assert s.bot.gateway.requests[-1] == (player.guild.id, None)
        assert s.bot.client.voice_clients == []
        await s.listener.wait_for(
            lambda: any(m["d"]["user_id"] == str(BOT) for _, m in s.listener.ops(13)), within=10
        )
        status, body = await s.node.get("/status")
        assert status == 200 and body["players"] == 0


async def test_volume_pause_seek_and_filters(node_factory: NodeFactory) -> None:
    async with stage(node_factory) as s:
        player = await s.bot.channel().connect(cls=Player)
        track = await player.play("tone:440?seconds=20")
        await s.events.wait("audionode_track_start")
        await asyncio.sleep(1.0)

        # position extrapolated from PLAYER_UPDATE/SOURCE_START (position + as_of)
        assert 0.7 < player.position < 1.4, player.position
        t_volume = time.monotonic()
        await player.set_volume(0.25)
        assert player.volume == 0.25
        assert (await node_get(s.node.http, s.node.url, player, "/options"))["volume"] == 0.25
        await asyncio.sleep(0.8)

        await player.pause()
        assert player.paused
        frozen = player.position
        await asyncio.sleep(0.4)
        assert player.position == frozen
        await player.resume()
        assert not player.paused
        await player.seek(12.0)
        assert 11.9 < player.position < 12.3
        await asyncio.sleep(1.0)
        assert 12.6 < player.position < 13.4, player.position

        await player.set_filters({"timescale": {"speed": 1.25}})
        assert player.filters.get("timescale") == {"speed": 1.25, "pitch": 1.0, "rate": 1.0}
        with pytest.raises(NodeError) as refused:
            await player.set_filters({"timescale": {"speed": 100.0}})
        assert refused.value.status == 400 and "timescale.speed" in refused.value.message
        await player.set_filters(None)
        assert "timescale" not in player.filters
        assert player.current is not None and player.current.tag == track.tag

        # the volume was heard: the 440 Hz level drops to about a quarter
        frames = Ears(s.listener, BOT).frames()
        before = [f for f in frames if t_volume - 0.6 < f.at < t_volume - 0.1]
        after = [f for f in frames if t_volume + 0.25 < f.at < t_volume + 0.75]
        ratio = band_level(decode([f.opus for f in after]), 440) / band_level(
            decode([f.opus for f in before]), 440
        )
        assert 0.15 < ratio < 0.4, f"volume 1.0 -> 0.25 changed the level by {ratio:.2f}"
        assert np.isfinite(ratio)
        await player.disconnect()
