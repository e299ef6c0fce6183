"""The LVSP control websocket: an aiohttp driver around ``protocol.lvsp.LvspConnection``.

One :class:`LvspEndpoint` per voice server; :meth:`LvspEndpoint.handle` is the aiohttp handler.
Protocol rules live in ``audionode/protocol/lvsp.py``; channel/voice-state rules in ``state.py``.
This module only moves frames, applies events to the registry and asks the voice side to drop
clients whose voice state went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from aiohttp import WSMessage, WSMsgType, web

from audionode.protocol.lvsp import ChannelInfo, CloseCode
from audionode.protocol.lvsp_session import (
    Authenticated,
    CloseConnection,
    Event,
    InfoReceived,
    LvspConnection,
    LvspSessions,
    VstRequested,
)
from audionode.voiceserver.state import VoiceRegistry, VoiceState

SHUTTING_DOWN = b"voice server shutting down"

log = logging.getLogger("audionode.voiceserver.lvsp")


class VoiceClients(Protocol):
    """What LVSP needs from the voice gateway side."""

    async def disconnect(self, state: VoiceState) -> None:
        """The voice state was removed or moved away: close its client (4014)."""

    def refresh(self, state: VoiceState) -> None:
        """The voice state's server mute/deaf/suppress may have changed."""


class LvspEndpoint:
    """Serves LVSP on a websocket route; state is shared by all LVSP connections."""

    def __init__(
        self,
        *,
        token: str,
        registry: VoiceRegistry,
        endpoint: Callable[[], str],
        heartbeat_interval_ms: int,
        voice: VoiceClients,
        sessions: LvspSessions | None = None,
        identify_timeout: float | None = None,
        max_frame_bytes: int = 1 << 18,
    ) -> None:
        self._token = token
        self._registry = registry
        self._endpoint = endpoint
        self._interval_ms = heartbeat_interval_ms
        self._voice = voice
        self.sessions = LvspSessions() if sessions is None else sessions
        self._identify_timeout = identify_timeout
        self._max_frame_bytes = max_frame_bytes
        self._sockets: dict[LvspConnection, web.WebSocketResponse] = {}
        self.shutting_down = False
        """Set by :meth:`close_all`: a socket accepted from now on is closed with 1001 at once."""

    async def sweep_forever(self) -> None:
        """Forget LVSP sessions nobody resumed in time, also while no client connects."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(self.sessions.resume_window / 4, 0.05))
            if gone := self.sessions.expire(loop.time()):
                log.info("LVSP: %d session(s) not resumed in time, forgotten", gone)

    async def close_all(self, within: float = 0.5) -> None:
        """Close every LVSP socket with 1001 (server shutting down); sessions stay resumable.
        All at once, each peer given ``within`` seconds to answer the close frame (one after
        the other, a peer that does not read held the shutdown for aiohttp's 10 s each)."""
        self.shutting_down = True
        closing = [
            asyncio.ensure_future(ws.close(code=1001, message=SHUTTING_DOWN))
            for ws in list(self._sockets.values())
        ]
        if closing:
            _, late = await asyncio.wait(closing, timeout=within)
            for task in late:
                task.cancel()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """aiohttp handler for the LVSP route."""
        ws = web.WebSocketResponse(max_msg_size=self._max_frame_bytes)
        await ws.prepare(request)
        if self.shutting_down:
            with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
                await asyncio.wait_for(ws.close(code=1001, message=SHUTTING_DOWN), 0.5)
            return ws
        loop = asyncio.get_running_loop()
        conn = LvspConnection(
            token=self._token,
            sessions=self.sessions,
            endpoint=self._endpoint(),
            heartbeat_interval_ms=self._interval_ms,
            now=loop.time(),
            identify_timeout=self._identify_timeout,
        )
        self._sockets[conn] = ws
        peer = request.remote
        log.info("LVSP connection from %s", peer)
        sent: int | None = None
        try:
            await ws.send_str(conn.hello())
            sent = await self._serve(conn, ws, loop)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            conn.connection_lost(loop.time())
            self._sockets.pop(conn, None)
            log.info("LVSP connection from %s closed (code %s)", peer, sent or ws.close_code)
        return ws

    async def _serve(
        self, conn: LvspConnection, ws: web.WebSocketResponse, loop: asyncio.AbstractEventLoop
    ) -> int | None:
        """Serve until the socket closes; returns the close code we sent, if we closed it."""
        while not ws.closed:
            try:
                msg = await ws.receive(timeout=max(conn.deadline - loop.time(), 0.001))
            except TimeoutError:
                msg = None
            if msg is not None and msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                return None  # closed by the client, or a transport error (1009: too big)
            try:
                close = await self._apply(conn, self._events(conn, msg, loop.time()))
            except Exception:  # our bug: keep the server up, the client may RESUME
                log.exception("LVSP: internal error while handling %s", msg)
                close = conn.fail(CloseCode.GENERAL, "internal error", loop.time())
            for text in conn.data_to_send():
                await ws.send_str(text)
            if close is not None:
                log.info("closing LVSP connection: %d %s", close.code, close.reason)
                await ws.close(code=close.code, message=close.reason.encode())
                return close.code
        return None

    @staticmethod
    def _events(conn: LvspConnection, msg: WSMessage | None, now: float) -> list[Event]:
        """What one frame (or, for None, the deadline passing) means for the connection."""
        if msg is None:
            close = conn.expire(now)
            return [close] if close else []
        if msg.type is WSMsgType.BINARY:
            return [conn.fail(CloseCode.DECODE_ERROR, "binary frames are not LVSP", now)]
        return conn.receive(msg.data, now)

    async def _apply(self, conn: LvspConnection, events: list[Event]) -> CloseConnection | None:
        for ev in events:
            if isinstance(ev, CloseConnection):
                return ev
            if isinstance(ev, Authenticated):
                await self._authenticated(conn, ev)
            elif isinstance(ev, InfoReceived):
                if isinstance(ev.info, ChannelInfo):
                    result, gone = self._registry.apply_channel(ev.info)
                    conn.send_info(result)
                    for state in gone:
                        await self._voice.disconnect(state)
                else:
                    vinfo, dropped = self._registry.apply_voice(ev.info)
                    conn.send_info(vinfo)
                    await self._after_voice_change(vinfo.user_id, dropped)
            elif isinstance(ev, VstRequested):
                state, moved = self._registry.request(ev.request)
                conn.send_info(state.info())
                if moved is not None:
                    await self._voice.disconnect(moved)
        return None

    async def _after_voice_change(self, user_id: str, dropped: VoiceState | None) -> None:
        """Disconnect a removed/moved client; re-apply mute/deaf to the user's live clients."""
        if dropped is not None:
            await self._voice.disconnect(dropped)
        for state in self._registry.states():
            if str(state.user_id) == user_id:
                self._voice.refresh(state)

    async def _authenticated(self, conn: LvspConnection, ev: Authenticated) -> None:
        log.info("LVSP session %s %s", ev.session.id, "resumed" if ev.resumed else "identified")
        old = ev.previous_owner
        if isinstance(old, LvspConnection) and old in self._sockets:
            # A half-open socket still held the session: it loses it (lvsp.md §3).
            old.connection_lost(asyncio.get_running_loop().time())
            old_ws = self._sockets[old]
            await old_ws.close(code=CloseCode.GENERAL, message=b"session resumed elsewhere")
        if not ev.resumed:
            for info in self._registry.snapshot():
                conn.send_info(info)
