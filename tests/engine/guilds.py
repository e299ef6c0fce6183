"""More guilds on the node of a :func:`tests.e2e.chain.chain`: the same bot joins another
voice channel (another guild) where another listener hears it, so a test can watch a guild
that a fault must not touch. Events of every guild are read by one :class:`EventLog`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from audionode.voice import rtp
from tests.conftest import PASSWORD, WsClient
from tests.e2e.chain import BOT, Chain, EventLog
from tests.transport.listener import Listener
from tests.transport.voiceserver_harness import Harness

_ids = itertools.count(1)


@dataclass
class Guild:
    chain: Chain
    guild: int
    listener: Listener
    headers: dict[str, str]

    @property
    def id(self) -> str:
        return str(self.guild)

    async def load(self, query: str) -> dict[str, Any]:
        url = f"{self.chain.node.url}/loadSource"
        async with self.chain.node.http.post(url, headers=self.headers, json={"query": query}) as r:
            body = await r.json()
            assert r.status == 200, body
            source: dict[str, Any] = body["source"]
            return source

    def arrivals(self, since: float = 0.0) -> np.ndarray:
        """Arrival times of the RTP packets this guild's listener received after ``since``."""
        return np.array(
            [
                p.at
                for p in self.listener.packets
                if p.at >= since and rtp.classify(p.data) is rtp.DatagramKind.RTP
            ]
        )


def of_chain(c: Chain) -> Guild:
    """The chain's own guild, seen the same way."""
    return Guild(c, c.guild, c.listener, c.headers)


async def join(c: Chain, log: EventLog) -> Guild:
    """Put the chain's bot in a new guild's voice channel, with a listener there."""
    guild, channel, listener_id = 17000 + next(_ids), 18000 + next(_ids), 19000 + next(_ids)
    listener, headers = await join_voice(c.vs, c.ws, log, guild, channel, listener_id)
    return Guild(c, guild, listener, headers)


async def join_voice(
    vs: Harness, ws: WsClient, log: EventLog, guild: int, channel: int, listener_id: int
) -> tuple[Listener, dict[str, str]]:
    """A listener in ``channel``, then the bot's voice updates forwarded over ``ws`` until its
    voice client is connected; returns the listener and the REST headers of that client."""
    grant = await vs.lvsp.grant(listener_id, channel, guild)
    listener = Listener(vs.endpoint, guild, listener_id, channel, grant.session_id, grant.token)
    await listener.connect(vs.http)
    bot = await vs.lvsp.grant(BOT, channel, guild)
    state = {
        "guild_id": str(guild),
        "user_id": str(BOT),
        "channel_id": str(channel),
        "session_id": bot.session_id,
    }
    await ws.send("DISCORD_EVENT", {"t": "VOICE_STATE_UPDATE", "d": state})
    created = await log.wait("VC_CREATED", lambda d: d["guild_id"] == str(guild))
    server = {"guild_id": str(guild), "token": bot.token, "endpoint": bot.endpoint}
    await ws.send("DISCORD_EVENT", {"t": "VOICE_SERVER_UPDATE", "d": server})
    await log.wait("VOICE_CONNECTED", lambda d: d["guild_id"] == str(guild))
    headers = {
        "Authorization": PASSWORD,
        "User-ID": str(BOT),
        "Guild-ID": str(guild),
        "VoiceClient-ID": created["id"],
    }
    return listener, headers


def gaps(arrivals: np.ndarray) -> tuple[float, float]:
    """(packets per second, longest gap in seconds) of a series of arrival times."""
    if len(arrivals) < 2:
        return 0.0, float("inf")
    span = float(arrivals[-1] - arrivals[0])
    return (len(arrivals) - 1) / span, float(np.diff(arrivals).max())
