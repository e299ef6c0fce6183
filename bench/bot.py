"""The bot side of ``bench/streams.py``: one Discodo session driving N guild players.

Per guild it does what a bot does (docs/API.md): forward its VOICE_STATE_UPDATE and
VOICE_SERVER_UPDATE (here obtained from the built-in voice server over LVSP) in a
``DISCORD_EVENT``, wait for ``VOICE_CONNECTED``, then ``POST /loadSource`` and wait for
``SOURCE_START``. Events are counted per op and per guild so the benchmark can tell when every
player is up and whether anything failed meanwhile. ``ssrc_guild`` maps each SSRC a
``VOICE_CONNECTED`` announced to its guild (the counting sink sees SSRCs only), ``listeners``
are called with every frame as it arrives (``bench/soak.py`` timestamps the ones it needs), and
:meth:`stop_reading` leaves frames unread, as a stuck bot would.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import aiohttp

from audionode.voiceserver.lvsp_client import LvspClient


class Bot:
    """``await Bot.open(http, node_url, password, user_id)``, then :meth:`join` and
    :meth:`play` per guild."""

    def __init__(self, http: aiohttp.ClientSession, url: str, password: str, user_id: int):
        self.http, self.url, self.password, self.user_id = http, url, password, user_id
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.counts: Counter[str] = Counter()
        self.errors: list[dict[str, Any]] = []
        self.vc_ids: dict[int, str] = {}
        self.ssrc_guild: dict[int, int] = {}
        self.voice_sessions: dict[int, str] = {}
        self.listeners: list[Callable[[str, Any], None]] = []
        self._reading = asyncio.Event()
        self._reading.set()
        self._waiters: dict[tuple[str, int], asyncio.Future[dict[str, Any]]] = {}
        self._seen: defaultdict[str, set[int]] = defaultdict(set)
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, url: str, password: str, user_id: int) -> Bot:
        bot = cls(http, url, password, user_id)
        bot.ws = await http.ws_connect(
            f"{url}/ws", headers={"Authorization": password}, max_msg_size=0
        )
        hello = json.loads((await bot.ws.receive(timeout=10)).data)
        assert hello["op"] == "HELLO", hello
        await bot._send("IDENTIFY", {"user_id": user_id, "shard_id": None})
        identified = json.loads((await bot.ws.receive(timeout=10)).data)
        assert identified["op"] == "IDENTIFIED", identified
        bot._reader = asyncio.create_task(bot._read())
        return bot

    async def _send(self, op: str, d: Any) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps({"op": op, "d": d}))

    def stop_reading(self) -> None:
        """Leave every further frame unread (the socket's buffers fill, then the node's)."""
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    async def _read(self) -> None:
        assert self.ws is not None
        while True:
            await self._reading.wait()
            msg = await self.ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return
            if msg.type is aiohttp.WSMsgType.ERROR:
                return
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            op, d = frame["op"], frame.get("d") or {}
            self.counts[op] += 1
            for listener in self.listeners:
                listener(op, d)
            if op in ("PLAYER_TRACEBACK", "SOURCE_TRACEBACK", "VOICE_CLOSED"):
                self.errors.append(frame)
            guild = int(d.get("guild_id") or 0) if isinstance(d, dict) else 0
            if op == "VC_CREATED":
                self.vc_ids[guild] = d["id"]
            elif op == "VOICE_CONNECTED" and "ssrc" in d:
                self.ssrc_guild[int(d["ssrc"])] = guild
            self._seen[op].add(guild)
            fut = self._waiters.pop((op, guild), None)
            if fut is not None and not fut.done():
                fut.set_result(d)

    async def wait(self, op: str, guild: int, within: float = 60.0) -> None:
        if guild in self._seen[op]:
            return
        fut = self._waiters.setdefault((op, guild), asyncio.get_running_loop().create_future())
        await asyncio.wait_for(fut, within)

    async def join(self, lvsp: LvspClient, guild: int, channel: int, endpoint: str) -> None:
        """Voice state + voice server update for ``guild``; returns once VOICE_CONNECTED."""
        grant = await lvsp.grant(self.user_id, channel, guild)
        self.voice_sessions[guild] = grant.session_id
        await self._send(
            "DISCORD_EVENT",
            {
                "t": "VOICE_STATE_UPDATE",
                "d": {
                    "guild_id": str(guild),
                    "user_id": str(self.user_id),
                    "channel_id": str(channel),
                    "session_id": grant.session_id,
                },
            },
        )
        await self.wait("VC_CREATED", guild)
        await self._server_update(guild, grant.token, endpoint)

    async def rejoin(self, lvsp: LvspClient, guild: int, channel: int, endpoint: str) -> None:
        """What Discord does when a guild's voice server went away: the same voice session
        (``session_id``) on a new voice server, so only a new VOICE_SERVER_UPDATE; returns
        once a new VOICE_CONNECTED arrived."""
        grant = await lvsp.grant(
            self.user_id, channel, guild, session_id=self.voice_sessions[guild]
        )
        await self._server_update(guild, grant.token, endpoint)

    async def _server_update(self, guild: int, token: str, endpoint: str) -> None:
        self._seen["VOICE_CONNECTED"].discard(guild)
        await self._send(
            "DISCORD_EVENT",
            {
                "t": "VOICE_SERVER_UPDATE",
                "d": {"guild_id": str(guild), "token": token, "endpoint": endpoint},
            },
        )
        await self.wait("VOICE_CONNECTED", guild)

    def headers(self, guild: int) -> dict[str, str]:
        return {
            "Authorization": self.password,
            "User-ID": str(self.user_id),
            "Guild-ID": str(guild),
            "VoiceClient-ID": self.vc_ids[guild],
        }

    async def rest(self, method: str, path: str, guild: int, body: Any = None) -> int:
        async with self.http.request(
            method, f"{self.url}{path}", headers=self.headers(guild), json=body
        ) as r:
            await r.read()
            return r.status

    async def play(self, guild: int, query: str) -> None:
        status = await self.rest("POST", "/loadSource", guild, {"query": query})
        assert status == 200, f"loadSource for guild {guild}: HTTP {status}"
        await self.wait("SOURCE_START", guild)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        self._reading.set()  # a paused reader sees the closed socket and ends
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
