"""Issue 6: the bot's socket drops and comes back (resume), or never comes back (vc_timeout)."""

from __future__ import annotations

import asyncio

from audionode.voice.packetizer import SILENCE_FRAME
from tests.conftest import NodeFactory
from tests.e2e.chain import BOT, EventLog, chain


async def test_audio_continues_and_missed_events_are_replayed(node_factory: NodeFactory) -> None:
    async with chain(node_factory, vc_timeout=10) as c:
        source = await c.load("tone:440?seconds=2")
        log = EventLog(c.ws)
        await log.wait("SOURCE_START")
        await log.stop()
        await c.ws.ws.close()
        dropped_at = asyncio.get_running_loop().time()
        stop = None
        async with c.node.ws() as ws:
            await asyncio.sleep(2.3)  # the track ends while no bot is attached
            heard = [p for p in c.listener.packets if p.at > dropped_at]
            assert len(heard) >= 60, "audio went on without the bot"
            identified = await ws.identify(BOT)
            assert identified["resumed"] is True
            resumed = await ws.expect("RESUMED")
            assert resumed["voice_clients"] == [[str(c.guild), str(c.channel)]]
            assert resumed["dropped"] == 0
            while stop is None:
                frame = await ws.recv()
                if frame["op"] == "SOURCE_STOP":
                    stop = frame["d"]
        assert stop["source"]["tag"] == source["tag"] and stop["reason"] == "finished"


async def test_after_vc_timeout_the_voice_client_is_gone(node_factory: NodeFactory) -> None:
    async with chain(node_factory, vc_timeout=0.5) as c:
        await c.load("tone:440?seconds=20")
        log = EventLog(c.ws)
        await log.wait("SOURCE_START")
        await log.stop()
        await c.ws.ws.close()
        # The listener sees the bot leave: op 13 Client Disconnect for it.
        await c.listener.wait_for(
            lambda: any(m["d"]["user_id"] == str(BOT) for _, m in c.listener.ops(13)), within=10
        )
        frames = [f for _, f in c.audio_frames(c.bot_ssrc())]
        assert frames[-5:] == [SILENCE_FRAME] * 5, "five silence frames before the disconnect"
        status, body = await c.node.get("/status")
        assert status == 200 and body["sessions"] == 0 and body["players"] == 0
        count = len(c.listener.packets)
        await asyncio.sleep(0.3)
        assert len(c.listener.packets) == count, "nothing is sent after the disconnect"
