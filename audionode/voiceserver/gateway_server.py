"""The Discord voice gateway, server side: the aiohttp websocket driver (``GET /?v=8``).

docs/discord-voice.md "Serving the other side" (websocket steps 1-9) on voice-core's
``VoiceGateway(side=SERVER)``. Per socket: a writer task drains the session's outbox (so frames
leave in seq order), and the handler loop feeds received frames to the gateway, whose events the
:class:`~audionode.voiceserver.room.Room` applies. Credentials come from the LVSP-created voice
states (:class:`~audionode.voiceserver.state.VoiceRegistry`).

Session lifetime: a client closing with 1000, a server-side error close or a removed voice
state ends the session at once (op 13 + Remove proposal to the others). Any other loss of the
socket keeps it for :data:`RESUME_GRACE` seconds so that op 7 can pick it up (§1.6).

Edge rules (docs/SECURITY.md "Voice server"): a socket that has not identified or resumed within
``identify_timeout`` is closed with 4003; frames above ``max_frame_bytes`` are closed by aiohttp
with 1009; JSON nested deeper than the decoder allows is 4002 and an id that is no snowflake is
4004 (like any id that names no voice state), both without a traceback. A traceback is logged
only for our own bugs (4015).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Final

from aiohttp import WSMsgType, web

from audionode.voice.gateway import ServerGateway, Side, VoiceGateway
from audionode.voice.opcodes import CLOSE_REASONS, CloseCode, Heartbeat, Identify, Resume
from audionode.voice.wire import GatewayError
from audionode.voiceserver.dave_delivery import identify_close_code
from audionode.voiceserver.room import MODES, Close, Outbox, Room, Session
from audionode.voiceserver.state import VoiceRegistry, VoiceState, is_snowflake
from audionode.voiceserver.udp import Forwarder, Member

log = logging.getLogger("audionode.voiceserver.gateway")

RESUME_GRACE: Final = 15.0
"""Seconds a session whose socket died without a clean close waits for op 7."""
HEARTBEAT_TIMEOUT_FACTOR: Final = 2.0
"""No frame for this many Hello intervals closes the socket with 4009 (session timeout)."""
DEFAULT_IDENTIFY_TIMEOUT: Final = 10.0
DEFAULT_MAX_FRAME_BYTES: Final = 1 << 18


class _Refused(Exception):
    def __init__(self, code: int, reason: str | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason or CLOSE_REASONS.get(code, "")


class VoiceGatewayEndpoint:
    """Serves ``GET /?v=8`` for every channel of one voice server."""

    def __init__(
        self,
        *,
        registry: VoiceRegistry,
        forwarder: Forwarder,
        udp_address: Callable[[], tuple[str, int]],
        heartbeat_interval_ms: int,
        identify_timeout: float = DEFAULT_IDENTIFY_TIMEOUT,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        self._registry = registry
        self._forwarder = forwarder
        self._udp_address = udp_address
        self._interval_ms = heartbeat_interval_ms
        self._identify_timeout = identify_timeout
        self._max_frame_bytes = max_frame_bytes
        self._rooms: dict[int, Room] = {}
        self._sessions: dict[tuple[int, int], Session] = {}
        self._sockets: dict[web.WebSocketResponse, tuple[Outbox, asyncio.Task[None]]] = {}
        """Open sockets: their outbox and writer task."""
        self._closing: set[web.WebSocketResponse] = set()
        """Sockets whose writer is sending the close frame."""
        self.shutting_down = False
        """Set by :meth:`close_all`: a socket accepted from now on is closed with 1001 at once
        (a client reconnecting during shutdown must not wait for its identify deadline)."""

    # -- the voice-state side (called by the LVSP driver) --

    async def disconnect(self, state: VoiceState) -> None:
        """The voice state was removed or moved: close its client with 4014 and end it."""
        session = self._sessions.get(state.key)
        if session is not None and session.state is state:
            session.close(CloseCode.DISCONNECTED, CLOSE_REASONS[CloseCode.DISCONNECTED])
            self._end(session)

    def refresh(self, state: VoiceState) -> None:
        """Server mute/deaf/suppress changed: apply them to forwarding."""
        session = self._sessions.get(state.key)
        if session is not None and session.state is state:
            session.member.can_send = not (state.mute or state.suppress)
            session.member.can_hear = not state.deaf

    async def close_all(self, within: float = 0.5) -> None:
        """Shutting down: every socket's writer sends 1001 after what it has queued (closing
        the sockets from here instead races the writers: clients then saw 1006); a peer that
        does not read its close frame within ``within`` seconds is cut off."""
        self.shutting_down = True
        for session in list(self._sessions.values()):
            self._end(session)
        writers = []
        for outbox, writer in list(self._sockets.values()):
            outbox.put_nowait(Close(1001, "voice server shutting down"))
            writers.append(writer)
        if writers:
            await asyncio.wait(writers, timeout=within)

    def member_count(self, channel_id: int) -> int:
        room = self._rooms.get(channel_id)
        return len(room.sessions) if room else 0

    def room(self, channel_id: int) -> Room | None:
        return self._rooms.get(channel_id)

    # -- the websocket --

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """aiohttp handler for ``GET /?v=8``."""
        ws = web.WebSocketResponse(max_msg_size=self._max_frame_bytes)
        await ws.prepare(request)
        if self.shutting_down:
            await _close_now(ws, 1001, b"voice server shutting down")
            return ws
        if request.query.get("v") != "8":
            await ws.close(
                code=CloseCode.BAD_REQUEST,
                message=f"unsupported gateway version {request.query.get('v')!r}; "
                "use ?v=8".encode(),
            )
            return ws
        outbox: Outbox = asyncio.Queue()
        writer = asyncio.create_task(self._write(ws, outbox))
        self._sockets[ws] = (outbox, writer)
        fresh = VoiceGateway(side=Side.SERVER)
        outbox.put_nowait(fresh.hello(self._interval_ms))
        session: Session | None = None
        try:
            session = await self._serve(ws, outbox, fresh)
        finally:
            self._sockets.pop(ws, None)
            if session is not None and session.outbox is outbox:
                self._socket_lost(session, ws.close_code)
            # a Close is queued, or being sent: let the writer finish it (cancelling it while
            # it writes the close frame made clients see 1006)
            if not ws.closed or ws in self._closing:
                grace = 0.5 if self.shutting_down else 2.0
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(writer), grace)
            writer.cancel()
        return ws

    async def _serve(
        self, ws: web.WebSocketResponse, outbox: Outbox, fresh: ServerGateway
    ) -> Session | None:
        """Read frames until the socket closes; returns the session it carried (if any)."""
        session: Session | None = None
        loop = asyncio.get_running_loop()
        grace = self._interval_ms / 1000 * HEARTBEAT_TIMEOUT_FACTOR
        identify_by = loop.time() + self._identify_timeout
        while True:
            wait = grace
            if session is None:
                wait = max(min(grace, identify_by - loop.time()), 0.001)
            try:
                msg = await ws.receive(timeout=wait)
            except TimeoutError:
                # (timers may fire up to the clock's resolution early)
                unidentified = session is None and loop.time() >= identify_by - 0.01
                self._refuse(outbox, session, self._timed_out(unidentified))
                return session
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                return session
            if session is not None and session.outbox is not outbox:
                return None  # taken over by a resume on another socket
            try:
                session = self._feed_checked(session, fresh, outbox, msg.data)
            except _Refused as e:
                self._refuse(outbox, session, e)
                return session
            except Exception:  # our bug: 4015 "voice server crashed" lets the client resume
                log.exception("voice gateway: internal error")
                outbox.put_nowait(Close(CloseCode.VOICE_SERVER_CRASHED, "internal error"))
                return session

    def _timed_out(self, unidentified: bool) -> _Refused:
        if unidentified:
            why = f"Not authenticated: no Identify or Resume within {self._identify_timeout:g}s"
            return _Refused(CloseCode.NOT_AUTHENTICATED, why)
        return _Refused(CloseCode.SESSION_TIMEOUT)

    def _feed_checked(
        self, session: Session | None, fresh: ServerGateway, outbox: Outbox, data: str | bytes
    ) -> Session | None:
        """:meth:`_feed`, with bad input turned into :class:`_Refused` (bugs pass through)."""
        try:
            return self._feed(session, fresh, outbox, data)
        except GatewayError as e:
            raise _Refused(e.close_code, str(e)) from None
        except RecursionError:  # msgspec's depth guard: bad input, not our bug
            why = "Failed to decode payload: JSON nested too deeply"
            raise _Refused(CloseCode.DECODE_ERROR, why) from None

    def _feed(
        self, session: Session | None, fresh: ServerGateway, outbox: Outbox, data: str | bytes
    ) -> Session | None:
        gw = fresh if session is None else session.gw
        for event in gw.feed(data):
            if isinstance(event, Heartbeat):
                (session.post if session else outbox.put_nowait)(gw.heartbeat_ack(event.t))
            elif isinstance(event, Identify):
                session = self._identify(event, fresh, outbox)
            elif isinstance(event, Resume):
                session = self._resume(event, outbox)
            elif session is not None:
                self._room_of(session).handle(session, event)
        return session

    def _refuse(self, outbox: Outbox, session: Session | None, e: _Refused) -> None:
        log.info("closing voice socket: %d %s", e.code, e.reason)
        if session is not None and session.outbox is outbox:
            session.close(e.code, e.reason[:120])
            self._end(session)
        else:
            outbox.put_nowait(Close(e.code, e.reason[:120]))

    async def _write(self, ws: web.WebSocketResponse, outbox: Outbox) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while True:
                item = await outbox.get()
                if isinstance(item, Close):
                    self._closing.add(ws)
                    try:
                        await ws.close(code=item.code, message=item.reason.encode())
                    finally:
                        self._closing.discard(ws)
                    return
                if isinstance(item, str):
                    await ws.send_str(item)
                else:
                    await ws.send_bytes(item)

    # -- identify and resume (steps 2 and 9) --

    def _identify(self, ev: Identify, gw: ServerGateway, outbox: Outbox) -> Session:
        for name in ("server_id", "user_id"):
            if not is_snowflake(getattr(ev, name)):
                why = f"Authentication failed: `{name}` is not a snowflake (1-20 ASCII digits)"
                raise _Refused(CloseCode.AUTHENTICATION_FAILED, why)
        state = self._registry.authenticate(ev.server_id, ev.user_id, ev.session_id, ev.token)
        if state is None:
            raise _Refused(CloseCode.AUTHENTICATION_FAILED)
        channel = self._registry.channel(state.channel_id)
        code = identify_close_code(
            ev.max_dave_protocol_version, dave_required=channel.dave_required
        )
        if code is not None:
            raise _Refused(code)
        old = self._sessions.get(state.key)
        if old is not None:  # the same voice state identifies again: the old session is over
            old.close(CloseCode.SESSION_NO_LONGER_VALID, "replaced by a new identify")
            self._end(old)
        ssrc = self._new_ssrc()
        member = Member(
            ssrc,
            state.user_id,
            state.channel_id,
            can_send=not (state.mute or state.suppress),
            can_hear=not state.deaf,
        )
        session = Session(state, gw, ssrc, member, outbox=outbox)
        self._sessions[state.key] = session
        ip, port = self._udp_address()
        room = self._room_for(state.channel_id)
        room.join(session, gw.ready(ssrc, ip, port, MODES))
        return session

    def _resume(self, ev: Resume, outbox: Outbox) -> Session:
        session = self._find_session(ev)
        replay = None if session is None else session.gw.resume_connection(ev.seq_ack)
        if session is None or replay is None:
            raise _Refused(CloseCode.SESSION_NO_LONGER_VALID)
        if session.outbox is not None:  # a half-open socket still holds it
            session.close(CloseCode.SESSION_NO_LONGER_VALID, "resumed on another socket")
        if session.grace is not None:
            session.grace.cancel()
            session.grace = None
        session.outbox = outbox
        for frame in replay:
            outbox.put_nowait(frame)
        session.log.info("resumed after seq %d: %d messages replayed", ev.seq_ack, len(replay) - 1)
        return session

    def _find_session(self, ev: Resume) -> Session | None:
        for s in self._sessions.values():
            if (
                str(s.state.server_id) == ev.server_id
                and hmac.compare_digest(s.state.session_id.encode(), ev.session_id.encode())
                and hmac.compare_digest(s.state.token.encode(), ev.token.encode())
                and self._registry.is_current(s.state)
            ):
                return s
        return None

    # -- session lifetime --

    def _socket_lost(self, session: Session, code: int | None) -> None:
        session.outbox = None
        if code == 1000:
            self._end(session)
            return
        session.log.info("socket lost (code %s): resumable for %.0fs", code, RESUME_GRACE)
        loop = asyncio.get_running_loop()
        session.grace = loop.call_later(RESUME_GRACE, self._grace_over, session)

    def _grace_over(self, session: Session) -> None:
        session.grace = None
        if session.outbox is None:
            session.log.info("not resumed in time")
            self._end(session)

    def _end(self, session: Session) -> None:
        if self._sessions.get(session.state.key) is session:
            del self._sessions[session.state.key]
        room = self._rooms.get(session.state.channel_id)
        if room is not None:
            room.leave(session)

    def _room_for(self, channel_id: int) -> Room:
        room = self._rooms.get(channel_id)
        if room is None:
            room = self._rooms[channel_id] = Room(channel_id, self._forwarder, self._room_empty)
        return room

    def _room_of(self, session: Session) -> Room:
        return self._rooms[session.state.channel_id]

    def _room_empty(self, room: Room) -> None:
        if self._rooms.get(room.channel_id) is room:
            del self._rooms[room.channel_id]
            self._forwarder.drop_channel(room.channel_id)

    def _new_ssrc(self) -> int:
        while True:
            ssrc = secrets.randbits(32)
            if ssrc and not self._forwarder.has_ssrc(ssrc):
                return ssrc


async def _close_now(ws: web.WebSocketResponse, code: int, reason: bytes) -> None:
    """Send the close frame and wait at most a moment for the peer's reply."""
    with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
        await asyncio.wait_for(ws.close(code=code, message=reason), 0.5)
