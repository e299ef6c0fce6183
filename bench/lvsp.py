"""A concurrent LVSP client for the benchmarks: many VST_REQUESTs in flight on one socket.

LVSP as the built-in voice server speaks it (docs/protocols/lvsp.md): IDENTIFY with the shared
token, then VST_REQUEST (op 7) answered by INFO (op 6) of type VST, matched here by
(user, guild, channel). The benchmarks configure a long LVSP heartbeat interval, so this client
never heartbeats.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp


class Lvsp:
    """``await Lvsp.open(http, url, token)``; ``await grant(user, channel, guild)``."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._waiting: dict[tuple[str, str, str], asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, url: str, token: str) -> Lvsp:
        ws = await http.ws_connect(url, max_msg_size=0)
        hello = json.loads((await ws.receive(timeout=10)).data)
        assert hello["op"] == 0, hello
        await ws.send_str(json.dumps({"op": 1, "d": {"token": token}}))
        ready = json.loads((await ws.receive(timeout=10)).data)
        assert ready["op"] == 3, ready
        client = cls(ws)
        client._reader = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            info = frame.get("d", {}).get("info", {}) if frame.get("op") == 6 else {}
            key = (str(info.get("user_id")), str(info.get("guild_id")), str(info.get("channel_id")))
            fut = self._waiting.pop(key, None)
            if fut is not None and not fut.done():
                fut.set_result(frame)

    async def request(self, op: int, d: dict[str, Any]) -> dict[str, Any]:
        """VST_REQUEST and its INFO reply (the shape ``tests/voiceserver/dpy.py`` expects)."""
        key = (str(d["user_id"]), str(d["guild_id"]), str(d["channel_id"]))
        fut = asyncio.get_running_loop().create_future()
        self._waiting[key] = fut
        await self.ws.send_str(json.dumps({"op": op, "d": d}))
        return await asyncio.wait_for(fut, 30)

    async def grant(self, user_id: int, channel_id: int, guild_id: int) -> dict[str, Any]:
        """The voice state's ``info``: session_id, token, ..."""
        d = {"user_id": str(user_id), "channel_id": str(channel_id), "guild_id": str(guild_id)}
        frame = await self.request(7, d)
        info: dict[str, Any] = frame["d"]["info"]
        return info

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
