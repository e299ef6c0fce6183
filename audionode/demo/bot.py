"""The two outside parties of the demo: "Discord" handing out voice states, and a bot.

"Discord" is the package's LVSP client (:class:`~audionode.voiceserver.lvsp_client.LvspClient`,
Litecord's side of ``docs/protocols/lvsp.md``): it asks the built-in voice server for voice states
(:class:`~audionode.voiceserver.lvsp_client.VoiceGrant`), which is what Discord would put in a
bot's VOICE_STATE_UPDATE / VOICE_SERVER_UPDATE.

:class:`Bot` is a bot using the node: the Discodo control websocket (``/ws``: IDENTIFY, then the
two ``DISCORD_EVENT`` s that point the node at the voice server) and REST (``/loadSource``,
``/options``) with the headers ``Authorization``, ``User-ID``, ``Guild-ID``, ``VoiceClient-ID``
(docs/API.md). Every event the node sends is kept with its arrival time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from audionode.errors import AudionodeError
from audionode.voiceserver.lvsp_client import VoiceGrant


class DemoError(AudionodeError):
    """A step of the demo did not happen as the protocol says (the message names the step)."""


@dataclass(frozen=True)
class BotEvent:
    at: float
    """``time.monotonic()`` on arrival."""
    op: str
    d: dict[str, Any]


class Bot:
    """A bot of ``user_id`` on the node at ``node_url``; :meth:`connect`, :meth:`join`, then
    REST calls; :attr:`events` fills in the background until :meth:`close`."""

    def __init__(
        self, http: aiohttp.ClientSession, node_url: str, password: str, user_id: int
    ) -> None:
        self.http, self.node_url, self.password, self.user_id = http, node_url, password, user_id
        self.events: list[BotEvent] = []
        self.headers: dict[str, str] = {"Authorization": password, "User-ID": str(user_id)}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def connect(self) -> None:
        """Open ``/ws``: HELLO, IDENTIFY → IDENTIFIED; then keep every event."""
        auth = {"Authorization": self.password}
        self._ws = await self.http.ws_connect(f"{self.node_url}/ws", headers=auth)
        self._reader = asyncio.create_task(self._read(self._ws))
        await self.wait("HELLO")
        await self._send("IDENTIFY", {"user_id": self.user_id, "shard_id": None})
        await self.wait("IDENTIFIED")

    async def join(self, guild_id: int, channel_id: int, grant: VoiceGrant, endpoint: str) -> None:
        """Forward what Discord sent the bot (seed 002 DISCORD_EVENT) and wait until the node's
        voice connection is up (``VOICE_CONNECTED``)."""
        state = {"guild_id": str(guild_id), "user_id": str(self.user_id)}
        state |= {"channel_id": str(channel_id), "session_id": grant.session_id}
        await self._send("DISCORD_EVENT", {"t": "VOICE_STATE_UPDATE", "d": state})
        created = await self.wait("VC_CREATED")
        self.headers |= {"Guild-ID": str(guild_id), "VoiceClient-ID": str(created["id"])}
        server = {"guild_id": str(guild_id), "token": grant.token, "endpoint": endpoint}
        await self._send("DISCORD_EVENT", {"t": "VOICE_SERVER_UPDATE", "d": server})
        await self.wait("VOICE_CONNECTED")

    async def rest(self, method: str, path: str, body: Any = None) -> Any:
        """One REST call with the bot's headers; a non-2xx answer raises :class:`DemoError`."""
        url = f"{self.node_url}{path}"
        async with self.http.request(method, url, headers=self.headers, json=body) as r:
            data = await r.json() if r.content_length else None
            if r.status >= 300:
                error = data.get("error", {}) if isinstance(data, dict) else {}
                why = f"{error.get('code')}: {error.get('message')}" if error else data
                raise DemoError(f"{method} {path} answered {r.status} {why}")
            return data

    async def wait(
        self,
        op: str,
        match: Callable[[dict[str, Any]], bool] = lambda d: True,
        within: float = 10.0,
    ) -> dict[str, Any]:
        """The ``d`` of the first event ``op`` that matches, already received or still to come."""
        try:
            async with asyncio.timeout(within):
                while True:
                    for event in self.events:
                        if event.op == op and match(event.d):
                            return event.d
                    if self._reader is None or self._reader.done():
                        raise DemoError(f"the node closed the bot's socket before {op}")
                    await self._changed.wait()
        except TimeoutError:
            raise DemoError(f"no {op} from the node within {within:g} s") from None

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _send(self, op: str, d: Any) -> None:
        assert self._ws is not None
        await self._ws.send_json({"op": op, "d": d})

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                frame = json.loads(msg.data)
                self.events.append(BotEvent(time.monotonic(), frame["op"], frame.get("d") or {}))
                self._wake()
        finally:
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
