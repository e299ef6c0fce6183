"""Issue 6 end to end: what the listener hears is what the bot asked for."""

from __future__ import annotations

from tests.conftest import NodeFactory
from tests.e2e.chain import chain, decode, dominant, events_until


async def test_a_queued_tone_is_heard_by_the_listener(node_factory: NodeFactory) -> None:
    async with chain(node_factory) as c:
        source = await c.load("tone:440?seconds=2")
        assert source["title"] and source["encoded"]
        start = await events_until(c.ws, "SOURCE_START")
        assert start[-1]["d"]["source"]["tag"] == source["tag"]
        stop = await events_until(c.ws, "SOURCE_STOP")
        assert stop[-1]["d"]["reason"] == "finished"
        await c.listener.wait_for(lambda: len(c.listener.packets) >= 100 + 5, within=10)
        frames = [f for _, f in c.audio_frames(c.bot_ssrc())]
        audio = [f for f in frames if f != b"\xf8\xff\xfe"]
        assert 95 <= len(audio) <= 105, len(audio)
        pcm = decode(audio)
        assert abs(dominant(pcm[9600:-9600]) - 440) < 5


async def test_a_track_queued_before_the_voice_connection_plays_once_connected(
    node_factory: NodeFactory,
) -> None:
    async with chain(node_factory, connect=False) as c:
        source = await c.load("tone:660?seconds=1")
        await c.connect_voice()
        start = await events_until(c.ws, "SOURCE_START")
        assert start[-1]["d"]["source"]["tag"] == source["tag"]
        await events_until(c.ws, "SOURCE_STOP")
        await c.listener.wait_for(lambda: len(c.listener.packets) >= 50, within=10)
        audio = [f for _, f in c.audio_frames(c.bot_ssrc()) if f != b"\xf8\xff\xfe"]
        assert abs(dominant(decode(audio)[4800:-4800]) - 660) < 5
