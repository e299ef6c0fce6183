"""An LVSP client: the Litecord side of ``docs/protocols/lvsp.md``, over an aiohttp websocket.

The one LVSP client of the project: the demo, the benchmarks and the tests all use it. Two ways
to use it:

- **As Litecord would** (:meth:`LvspClient.open`): IDENTIFY, heartbeat in the background, and
  :meth:`LvspClient.grant` voice states, many in flight at once (each VST_REQUEST is answered by
  an INFO(VST) that is matched to it by user, guild and channel)::

      lvsp = await LvspClient.open(http, server.lvsp_url, token)
      grant = await lvsp.grant(user_id, channel_id, guild_id)   # session_id, token, endpoint
      await lvsp.close()

- **Frame by frame** (:meth:`LvspClient.connect`, for protocol tests): :meth:`~LvspClient.send`,
  :meth:`~LvspClient.recv` (every frame no grant claimed, HELLO included, in order),
  :meth:`~LvspClient.request` (send, then the next frame) and :meth:`~LvspClient.closed`.

``VoiceGrant.endpoint`` is what Litecord relays in VOICE_SERVER_UPDATE: READY's ``host:port``.
LVSP and the voice gateway share one HTTP port (lvsp.md §1), so when LVSP itself is plain
``ws://`` (a loopback voice server without a TLS proxy), the endpoint is given as
``ws://host:port`` so that voice clients (which add ``wss://`` to a bare endpoint) dial it
without TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp

from audionode.errors import AudionodeError, RemoteError
from audionode.protocol.lvsp import CloseCode, InfoType, Op

MAX_KEPT_FRAMES: Final = 1000
"""Unclaimed frames kept for :meth:`LvspClient.recv`; older ones are dropped (a long-lived
client that only grants never reads them: the snapshot, answers to INFOs...)."""


class LvspClosed(RemoteError):
    """The LVSP socket closed; ``close_code`` and ``reason`` are the server's close frame."""

    def __init__(self, close_code: int | None, reason: str) -> None:
        super().__init__(f"LVSP socket closed ({close_code} {reason})")
        self.close_code = close_code
        self.reason = reason


@dataclass(frozen=True)
class VoiceGrant:
    """A voice state on the voice server: what a user who joins a channel gets from Discord
    (VOICE_STATE_UPDATE's ``session_id``, VOICE_SERVER_UPDATE's ``token`` and ``endpoint``)."""

    user_id: int
    channel_id: int
    guild_id: int | None
    session_id: str
    token: str
    endpoint: str
    info: dict[str, Any] = field(compare=False, repr=False)
    """The whole INFO(VST) ``info`` object (flags included)."""


_Key = tuple[str, str | None, str]


def _key(user_id: object, guild_id: object, channel_id: object) -> _Key:
    return (str(user_id), None if guild_id is None else str(guild_id), str(channel_id))


class LvspClient:
    """One LVSP websocket; build it with :meth:`open` (identified) or :meth:`connect` (raw)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, url: str, token: str) -> None:
        self.ws = ws
        self.url = url
        self.token = token
        self.last_s = 0
        """The highest ``s`` received: what a HEARTBEAT acknowledges and a RESUME resumes."""
        self.session_id: str | None = None
        self.endpoint = ""
        """READY's ``endpoint`` (``host:port`` of the voice gateway)."""
        self.heartbeat_interval = 0.0
        """HELLO's interval, in seconds."""
        self.close_code: int | None = None
        self.close_reason = ""
        self._tls = url.startswith("wss://")
        self._frames: deque[dict[str, Any]] = deque(maxlen=MAX_KEPT_FRAMES)
        self._arrived = asyncio.Event()
        self._waiting: dict[_Key, list[asyncio.Future[dict[str, Any]]]] = {}
        self._eat_acks = False
        self._beater: asyncio.Task[None] | None = None
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, url: str, token: str) -> LvspClient:
        """Open the socket and start reading; nothing is sent (HELLO waits in :meth:`recv`)."""
        return cls(await http.ws_connect(url, max_msg_size=0), url, token)

    @classmethod
    async def open(
        cls, http: aiohttp.ClientSession, url: str, token: str, *, heartbeat: bool = True
    ) -> LvspClient:
        """Connect, IDENTIFY, and (``heartbeat``) heartbeat at HELLO's interval until closed."""
        client = await cls.connect(http, url, token)
        await client.identify()
        if heartbeat:
            client.start_heartbeats()
        return client

    # -- raw frames --

    async def send(self, op: int, d: Any) -> None:
        """Send one frame; :class:`LvspClosed` when the socket is closed or closing."""
        try:
            await self.ws.send_str(json.dumps({"op": op, "d": d}))
        except ConnectionError:
            raise LvspClosed(self.ws.close_code, self.close_reason) from None

    async def recv(self, within: float = 5.0) -> dict[str, Any]:
        """The next frame no grant claimed; :class:`LvspClosed` once the socket is closed."""

        async def next_frame() -> dict[str, Any]:
            while not self._frames:
                if self.close_code is not None or self._reader.done():
                    raise LvspClosed(self.close_code, self.close_reason)
                self._arrived.clear()
                await self._arrived.wait()
            return self._frames.popleft()

        return await asyncio.wait_for(next_frame(), within)

    async def request(self, op: int, d: Any, within: float = 5.0) -> dict[str, Any]:
        """Send, then return the next frame."""
        await self.send(op, d)
        return await self.recv(within)

    async def closed(self, within: float = 5.0) -> tuple[int | None, str]:
        """Wait for the close (frames before it are dropped); ``(code, reason)``."""
        with contextlib.suppress(LvspClosed):
            while True:
                await self.recv(within)
        return self.close_code, self.close_reason

    # -- the protocol --

    async def identify(self, within: float = 5.0) -> dict[str, Any]:
        """IDENTIFY with the token; returns the READY frame (HELLO is skipped if not read)."""
        await self.send(Op.IDENTIFY, {"token": self.token})
        return await self._until_ready(within)

    async def resume(self, within: float = 5.0) -> dict[str, Any]:
        """RESUME this client's session from :attr:`last_s` (on a fresh socket: see
        :meth:`reconnect`); returns READY. Replayed INFOs go where any INFO goes."""
        d = {"token": self.token, "seq": self.last_s, "session_id": self.session_id}
        await self.send(Op.RESUME, d)
        return await self._until_ready(within)

    async def reconnect(self, http: aiohttp.ClientSession) -> bool:
        """After the socket dropped (or to replace it): a new socket that RESUMEs the session;
        if the server cannot (4003: it restarted, or the session expired), one that IDENTIFYs
        afresh. Returns True when resumed. Heartbeats and pending grants carry over."""
        await self._replace_socket(http)
        try:
            await self.resume()
            return True
        except LvspClosed as e:
            if e.close_code != CloseCode.INVALID_SESSION:
                raise
        await self._replace_socket(http)
        self.last_s = 0
        await self.identify()
        return False

    async def _replace_socket(self, http: aiohttp.ClientSession) -> None:
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)
        self.ws = await http.ws_connect(self.url, max_msg_size=0)
        self.close_code, self.close_reason = None, ""
        self._frames.clear()
        self._reader = asyncio.create_task(self._read())
        if self._beater is not None and self._beater.done():
            self._beater = asyncio.create_task(self._beat())

    async def _until_ready(self, within: float) -> dict[str, Any]:
        while (frame := await self.recv(within))["op"] != Op.READY:
            if frame["op"] not in (Op.HELLO, Op.INFO, Op.HEARTBEAT_ACK):
                raise AudionodeError(f"LVSP: expected READY, got {frame}")
        self.session_id = frame["d"].get("session_id")
        self.endpoint = frame["d"]["endpoint"]
        return frame

    def start_heartbeats(self) -> None:
        """HEARTBEAT every HELLO interval with :attr:`last_s`; ACKs are consumed, not queued."""
        self._eat_acks = True
        if self._beater is None:
            self._beater = asyncio.create_task(self._beat())

    async def grant(
        self,
        user_id: int,
        channel_id: int,
        guild_id: int | None = None,
        *,
        session_id: str | None = None,
        within: float = 30.0,
    ) -> VoiceGrant:
        """VST_REQUEST → INFO(VST): the voice state of ``user_id`` in ``channel_id`` (a move
        when the user has one elsewhere in the guild: new token; lvsp.md §6)."""
        d: dict[str, Any] = {"user_id": str(user_id), "channel_id": str(channel_id)}
        if guild_id is not None:
            d["guild_id"] = str(guild_id)
        if session_id is not None:
            d["session_id"] = session_id
        key = _key(user_id, guild_id, channel_id)
        fut = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(fut)
        try:
            await self.send(Op.VST_REQUEST, d)
            info = await asyncio.wait_for(fut, within)
        finally:
            if fut in self._waiting.get(key, []):
                self._waiting[key].remove(fut)
        endpoint = self.endpoint if self._tls else f"ws://{self.endpoint}"
        return VoiceGrant(
            user_id, channel_id, guild_id, info["session_id"], info["token"], endpoint, info
        )

    async def close(self) -> None:
        if self._beater is not None:
            self._beater.cancel()
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)

    # -- background --

    async def _read(self) -> None:
        msg: aiohttp.WSMessage | None = None
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                self._on_frame(json.loads(msg.data))
        finally:
            # the close frame's own code: aiohttp's close_code says 1006 when its reply to the
            # frame cannot be written (the server process is already gone)
            if msg is not None and msg.type is aiohttp.WSMsgType.CLOSE:
                self.close_code, self.close_reason = int(msg.data), str(msg.extra or "")
            else:
                self.close_code, self.close_reason = self.ws.close_code, ""
            for futures in self._waiting.values():
                for fut in futures:
                    if not fut.done():
                        fut.set_exception(LvspClosed(self.close_code, self.close_reason))
            self._waiting.clear()
            self._arrived.set()

    def _on_frame(self, frame: dict[str, Any]) -> None:
        self.last_s = max(self.last_s, frame.get("s", 0))
        if frame["op"] == Op.HELLO:
            self.heartbeat_interval = frame["d"]["heartbeat_interval"] / 1000
        if frame["op"] == Op.HEARTBEAT_ACK and self._eat_acks:
            return
        d = frame.get("d")
        if frame["op"] == Op.INFO and isinstance(d, dict) and d.get("type") == InfoType.VST:
            info = d["info"]
            waiting = self._waiting.pop(
                _key(info["user_id"], info.get("guild_id"), info["channel_id"]), []
            )
            for fut in waiting:
                if not fut.done():
                    fut.set_result(info)
            if waiting:
                return
        self._frames.append(frame)
        self._arrived.set()

    async def _beat(self) -> None:
        with contextlib.suppress(LvspClosed, RuntimeError):
            while not self.ws.closed:
                await asyncio.sleep(self.heartbeat_interval or 1.0)
                await self.send(Op.HEARTBEAT, {"s": self.last_s})
