"""One control websocket to a node (``GET /ws``, ``docs/API.md``): a thin aiohttp driver.

It authenticates, reads ``HELLO``, heartbeats at the node's interval, matches replies to the
requests waiting for them, and hands every other frame to ``on_frame`` in arrival order.
Replies carry no request id; the node answers in order, so waiters are matched first come,
first served by reply op and ``guild_id``. :meth:`NodeSocket.barrier` is a ``HEARTBEAT``
with a nonce: once its ack is back, every event the node queued before it has been read.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import aiohttp

from audionode.client.errors import AuthenticationFailed, NodeError, NodeUnavailable, ProtocolError

log = logging.getLogger(__name__)
JSON = Any
OnFrame = Callable[[str, JSON], None]
_Key = tuple[str, str | None]

TAKEN_OVER = 4004
"""Close code: another connection identified as this session (``docs/API.md``)."""


async def cancel_and_wait(*tasks: asyncio.Future[Any]) -> None:
    """Cancel ``tasks`` and wait until each has ended; a task ending cancelled is fine, a
    cancellation of the caller while it waits is raised, never absorbed (``Task.cancelling``).
    The node has the same helper (``audionode/tasks.py``); this library imports nothing of it."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise


class NodeSocket:
    """A connected, authenticated ``/ws``; build it with :meth:`open`."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, interval: float) -> None:
        self.ws = ws
        self.heartbeat_interval = interval
        self.close_code: int | None = None
        self.on_frame: OnFrame = lambda op, d: None
        self._waiting: dict[_Key, deque[asyncio.Future[JSON]]] = {}
        self._nonces = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self.closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        """Resolves (with the close code) once the socket is gone."""

    @classmethod
    async def open(
        cls,
        http: aiohttp.ClientSession,
        url: str,
        password: str,
        *,
        within: float = 10.0,
        ping: float | None = 10.0,
    ) -> NodeSocket:
        """Connect and read ``HELLO``; :class:`AuthenticationFailed` on ``FORBIDDEN``,
        :class:`NodeUnavailable` when the node cannot be reached. ``ping``: seconds between
        websocket pings; a pong missing for half of it closes the socket (a link that died
        without closing is noticed)."""
        try:
            ws = await http.ws_connect(
                url, headers={"Authorization": password}, timeout=aiohttp.ClientWSTimeout(within),
                heartbeat=ping, autoping=True, max_msg_size=0,
            )  # fmt: skip
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise NodeUnavailable(f"cannot connect to {url}: {e or type(e).__name__}") from e
        try:
            hello = await _first_frame(ws, within)
        except BaseException:
            await ws.close()
            raise
        if hello.get("op") == "FORBIDDEN":
            await ws.close()
            raise AuthenticationFailed(f"{url}: the node refused the password ({hello.get('d')})")
        d = hello.get("d")
        if hello.get("op") != "HELLO" or not isinstance(d, dict):
            await ws.close()
            raise ProtocolError(f"{url}: expected HELLO, got {hello.get('op')!r}")
        return cls(ws, float(d.get("heartbeat_interval") or 15.0))

    def start(self, on_frame: OnFrame) -> None:
        """Start reading (every unclaimed frame goes to ``on_frame``) and heartbeating."""
        self.on_frame = on_frame
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._beat())]

    async def close(self) -> None:
        await self.ws.close()
        await cancel_and_wait(*self._tasks)

    # --- sending ------------------------------------------------------------------------------

    async def send(self, op: str, d: JSON = None) -> None:
        """Send one frame; :class:`NodeUnavailable` once the socket is closed."""
        if self.ws.closed:
            raise NodeUnavailable("the node's socket is closed")
        try:
            await self.ws.send_str(json.dumps({"op": op, "d": d}))
        except (ConnectionError, RuntimeError) as e:
            raise NodeUnavailable(f"the node's socket is closed: {e}") from e

    async def request(
        self, op: str, d: JSON, reply: str, guild_id: str | None = None, within: float = 10.0
    ) -> JSON:
        """Send ``op`` and return the ``d`` of the next ``reply`` frame for ``guild_id``;
        an error reply raises :class:`NodeError`."""
        fut = self._expect(reply, guild_id)
        try:
            await self.send(op, d)
            answer = await asyncio.wait_for(asyncio.shield(fut), within)
        finally:
            self._forget(reply, guild_id, fut)
        if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
            err = answer["error"]
            raise NodeError(0, str(err.get("code")), str(err.get("message")))
        return answer

    async def identify(self, user_id: int, within: float = 10.0) -> JSON:
        """IDENTIFY as the bot; the ``d`` of ``RESUMED`` when the node resumed the session
        (it follows ``IDENTIFIED``), else None."""
        resumed = self._expect("RESUMED", None)
        try:
            d = await self.request("IDENTIFY", {"user_id": str(user_id)}, "IDENTIFIED")
            if not (isinstance(d, dict) and d.get("resumed")):
                return None
            return await asyncio.wait_for(asyncio.shield(resumed), within)
        finally:
            self._forget("RESUMED", None, resumed)

    async def barrier(self, within: float = 10.0) -> None:
        """Return once every frame the node sent before this call has been read."""
        nonce = {"nonce": next(self._nonces)}
        fut = self._expect("HEARTBEAT_ACK", json.dumps(nonce))
        try:
            await self.send("HEARTBEAT", nonce)
            await asyncio.wait_for(asyncio.shield(fut), within)
        finally:
            self._forget("HEARTBEAT_ACK", json.dumps(nonce), fut)

    # --- receiving ----------------------------------------------------------------------------

    def _expect(self, op: str, key: str | None) -> asyncio.Future[JSON]:
        fut: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault((op, key), deque()).append(fut)
        return fut

    def _forget(self, op: str, key: str | None, fut: asyncio.Future[JSON]) -> None:
        waiting = self._waiting.get((op, key))
        if waiting is not None and fut in waiting:
            waiting.remove(fut)

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                self._on_text(msg.data)
        finally:
            self.close_code = self.ws.close_code
            gone = NodeUnavailable(f"the node's socket closed ({self.close_code})")
            for waiting in self._waiting.values():
                for fut in waiting:
                    if not fut.done():
                        fut.set_exception(gone)
            self._waiting.clear()
            if not self.closed.done():
                self.closed.set_result(self.close_code)

    def _on_text(self, text: str) -> None:
        try:
            frame = json.loads(text)
            op, d = frame["op"], frame.get("d")
        except (ValueError, TypeError, KeyError):
            log.warning("dropped a frame that is not {op, d}: %.200s", text)
            return
        if self._claim(op, d):
            return
        try:
            self.on_frame(op, d)
        except Exception:  # one bad frame must not end the socket
            log.exception("handling %s failed", op)

    def _claim(self, op: str, d: JSON) -> bool:
        if op == "HEARTBEAT_ACK":
            key: str | None = json.dumps(d)
        else:
            guild = d.get("guild_id") if isinstance(d, dict) else None
            key = None if guild is None else str(guild)
        waiting = self._waiting.get((op, key))
        while waiting:
            fut = waiting.popleft()
            if not fut.done():
                fut.set_result(d)
                return True
        return op == "HEARTBEAT_ACK"

    async def _beat(self) -> None:
        # The node closes a socket silent for 2 x its interval + 1 s (docs/API.md).
        with contextlib.suppress(NodeUnavailable):
            while not self.ws.closed:
                await asyncio.sleep(self.heartbeat_interval / 2)
                await self.send("HEARTBEAT", None)


async def _first_frame(ws: aiohttp.ClientWebSocketResponse, within: float) -> dict[str, JSON]:
    try:
        msg = await ws.receive(timeout=within)
    except TimeoutError as e:
        raise NodeUnavailable("the node sent no HELLO") from e
    if msg.type is not aiohttp.WSMsgType.TEXT:
        raise NodeUnavailable(f"the node closed the socket before HELLO ({ws.close_code})")
    try:
        frame = json.loads(msg.data)
    except ValueError as e:
        raise ProtocolError("the node's first frame is not JSON") from e
    if not isinstance(frame, dict):
        raise ProtocolError("the node's first frame is not an object")
    return frame
