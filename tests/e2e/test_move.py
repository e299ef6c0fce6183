"""Issue 4 item 7: a channel move (new voice state + new voice server token) reconnects the node's
voice client into the new channel with a new DAVE group; the old channel hears nothing more."""

from __future__ import annotations

import asyncio

from tests.conftest import NodeFactory
from tests.e2e.chain import BOT, EventLog, chain, decode, dominant
from tests.transport.listener import Listener


async def test_channel_move_reconnects_into_a_new_dave_group(node_factory: NodeFactory) -> None:
    async with chain(node_factory) as c:
        await c.load("tone:440?seconds=20")
        log = EventLog(c.ws)
        await log.wait("SOURCE_START")
        new_channel = c.channel + 1
        other = await c.vs.lvsp.grant(7777, new_channel, c.guild)
        listener2 = Listener(
            c.vs.endpoint, c.guild, 7777, new_channel, other.session_id, other.token
        )
        await listener2.connect(c.vs.http)
        try:
            moved = await c.vs.lvsp.grant(BOT, new_channel, c.guild)  # the server closes 4014
            closed = await log.wait("VOICE_CLOSED", lambda d: d["code"] == 4014)
            assert closed["will_reconnect"] is False and closed["by_remote"] is True
            old_count = len(c.listener.packets)
            state = {
                "guild_id": str(c.guild),
                "user_id": str(BOT),
                "channel_id": str(new_channel),
                "session_id": moved.session_id,
            }
            await c.ws.send("DISCORD_EVENT", {"t": "VOICE_STATE_UPDATE", "d": state})
            await asyncio.sleep(0.5)  # Discord's VOICE_SERVER_UPDATE may come a while later
            server = {"guild_id": str(c.guild), "token": moved.token, "endpoint": moved.endpoint}
            await c.ws.send("DISCORD_EVENT", {"t": "VOICE_SERVER_UPDATE", "d": server})
            connected = [f["d"] for f in log.ops("VOICE_CONNECTED")]
            await log.wait("VOICE_CONNECTED", lambda d: d not in connected)
            await log.wait("VC_CHANNEL_EDITED", lambda d: d["channel_id"] == str(new_channel))
            await listener2.wait_for(lambda: len(listener2.packets) >= 100, within=10)
            assert listener2.dave_ready and c.listener.dave is not None
            assert listener2.dave.epoch >= 1
            ssrcs = {p.data[8:12] for p in listener2.packets}
            assert len(ssrcs) == 1
            frames = []
            for _, opened in listener2.opened(int.from_bytes(ssrcs.pop(), "big")):
                frame = opened.payload
                if frame.endswith(b"\xfa\xfa"):
                    frames.append(listener2.dave_decrypt(BOT, frame))
            assert len(frames) >= 90, "audio in the new channel is DAVE-encrypted end to end"
            assert abs(dominant(decode(frames[10:])) - 440) < 5
            assert len(c.listener.packets) <= old_count + 6, "the old channel hears nothing more"
            codes = [f["d"]["code"] for f in log.ops("VOICE_CLOSED")]
            assert codes == [4014], "no doomed attempt with the old token (4004) in between"
            await log.stop()
        finally:
            await listener2.close()
