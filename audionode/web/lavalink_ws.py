"""``/v4/websocket``: the Lavalink websocket, a thin Sanic driver over
``protocol/lavalink_session.py``.

The handshake is checked before the upgrade (Lavalink's answers: 401 for a missing or wrong
``Authorization``, 400 for a missing ``User-Id``). A ``Session-Id`` naming one of the user's
resumable sessions resumes it (``ready`` with ``resumed: true``, the events it missed, a
``playerUpdate`` per player); anything else starts a new session, resumable only once the
client says so (``PATCH /v4/sessions/{id}``). Frames leave through a queue bounded in bytes
(``control.max_outbound_bytes``): a peer that stops reading is closed with 4008 and its session
keeps what it never got. The REST driver reaches a live socket through :func:`sockets_of`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import string
import time
from typing import Any

from sanic import Blueprint, Request, Sanic
from sanic.response import HTTPResponse
from sanic.server.websockets.impl import WebsocketImplProtocol
from websockets.exceptions import ConnectionClosed

from audionode.control import commands as c
from audionode.control.events import CloseReason, ControlEvent
from audionode.control.views import PlayerView
from audionode.errors import AudionodeError, BadRequest, NotFound, Unauthorized, for_peer
from audionode.protocol.lavalink import snowflake
from audionode.protocol.lavalink_session import LavalinkSession
from audionode.service import NodeService
from audionode.web.context import service_of
from audionode.web.lavalink_errors import lavalink_error
from audionode.web.outbox import Outbox

log = logging.getLogger(__name__)
bp = Blueprint("lavalink_ws")
bp.exception(Exception)(lavalink_error)

CLOSE_NOT_READING = 4008
_CLOSES = {CloseReason.TAKEN_OVER: 4000, CloseReason.SHUTTING_DOWN: 1001}
_ID_CHARS = string.ascii_lowercase + string.digits


def sockets_of(app: Sanic) -> dict[str, LavalinkSocket]:  # type: ignore[type-arg]
    """Live Lavalink sockets by session id (the REST driver tells them of player updates)."""
    found: dict[str, LavalinkSocket] | None = getattr(app.ctx, "lavalink_sockets", None)
    if found is None:
        found = app.ctx.lavalink_sockets = {}
    return found


class Sink:
    """The socket's EventSink: a session event becomes its frames in the outbox. Events that
    come before ``ready`` went out are held until :meth:`release`."""

    def __init__(self, outbox: Outbox[ControlEvent], session: LavalinkSession) -> None:
        self.outbox = outbox
        self.session = session
        self.held: list[ControlEvent] | None = []

    def deliver(self, event: ControlEvent) -> bool:
        if self.outbox.closed:
            return False
        if self.held is not None:
            self.held.append(event)
            return True
        for i, text in enumerate(self.session.event(event, time.monotonic())):
            self.outbox.put(text, event if i == 0 else None)
        return True

    def close(self, reason: CloseReason) -> None:
        self.outbox.close(_CLOSES.get(reason, 1000), reason.value)

    def release(self, kept: list[ControlEvent]) -> None:
        """``ready`` is out: the kept events, then those that came meanwhile."""
        held, self.held = self.held or [], None
        for event in [*kept, *held]:
            self.deliver(event)

    def unsent(self) -> list[ControlEvent]:
        return [*self.outbox.unsent(), *(self.held or [])]


class LavalinkSocket:
    """One Lavalink client socket: its session, its schedules, its outbox."""

    def __init__(self, service: NodeService, ws: WebsocketImplProtocol, ref: c.SessionRef):
        cfg = service.config
        self.service = service
        self.ws = ws
        self.ref = ref
        assert ref.session_id is not None
        self.session = LavalinkSession(
            ref.session_id,
            update_interval=cfg.lavalink.player_update_interval,
            stats_interval=cfg.lavalink.stats_interval,
            stuck_threshold=cfg.lavalink.track_stuck_threshold,
            cleanup_threshold=cfg.lavalink.cleanup_threshold,
            now=time.monotonic(),
        )
        self.outbox: Outbox[ControlEvent] = Outbox(
            ws, cfg.control.max_outbound_bytes, CLOSE_NOT_READING
        )
        self.sink = Sink(self.outbox, self.session)

    def observe(self, view: PlayerView, refresh: bool) -> None:
        """A REST update of one of this session's players."""
        text = self.session.observe(view, time.monotonic(), _now_ms(), refresh)
        if text is not None:
            self.outbox.put(text)

    async def start(self, resumed: bool, kept: list[ControlEvent]) -> None:
        self.outbox.put(self.session.ready(resumed))
        if resumed:
            players = await self.service.players(self.ref, c.GetPlayers())
            self.session.seed(players, time.monotonic())
        self.sink.release(kept)

    async def run(self) -> None:
        writer = asyncio.create_task(self.outbox.run())
        try:
            while not self.outbox.closed:
                wait = max(0.0, min(1.0, self.session.next_due() - time.monotonic()))
                try:
                    data = await self.ws.recv(timeout=wait)
                except ConnectionClosed:
                    return
                if data is not None:  # Lavalink v4 takes nothing over the socket
                    log.debug("Lavalink session %s sent a frame; ignored", self.ref.session_id)
                try:
                    await self._tick()
                except Exception:  # our bug: logged, and the socket lives on
                    log.exception("Lavalink session %s: schedules failed", self.ref.session_id)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer), timeout=5)
        finally:
            writer.cancel()

    async def _tick(self) -> None:
        due = self.session.due(time.monotonic())
        for text in due.frames:
            self.outbox.put(text)
        if due.stats:
            status = await self.service.status(None, c.GetStatus())
            frames = await self.service.frame_stats(self.ref, c.GetFrameStats())
            self.outbox.put(self.session.stats(status, frames))
        for guild_id in due.cleanups:  # a track nobody can hear: stopped, ends `cleanup`
            with contextlib.suppress(AudionodeError):
                await self.service.stop(self._player(guild_id), c.Stop())
                await self.service.clear(self._player(guild_id), c.Clear())
        for guild_id in due.updates:
            try:
                view = await self.service.state(self._player(guild_id), c.GetState())
            except NotFound:
                continue  # destroyed meanwhile
            self.outbox.put(self.session.player_update(view, _now_ms()))

    def _player(self, guild_id: int) -> c.PlayerRef:
        user, session_id = self.ref.user_id, self.ref.session_id
        return c.PlayerRef(user_id=user, guild_id=guild_id, session_id=session_id)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _new_id(service: NodeService) -> str:
    while True:
        sid = "".join(secrets.choice(_ID_CHARS) for _ in range(16))
        with contextlib.suppress(NotFound):
            service.named_session(sid)
            continue
        return sid


async def _check_handshake(request: Request) -> HTTPResponse | None:
    """Before the upgrade: Lavalink answers 401 to bad credentials, 400 without a user id."""
    if request.headers.get("authorization") is None:
        raise Unauthorized("missing Authorization header")
    user = request.headers.get("user-id")
    if user is None:
        raise BadRequest("missing User-Id header")
    snowflake(user, "header `User-Id`")
    return None


bp.on_request(_check_handshake)


async def lavalink_socket(request: Request, ws: WebsocketImplProtocol) -> None:
    service = service_of(request)
    user_id = snowflake(request.headers.get("user-id", ""), "header `User-Id`")
    wanted = request.headers.get("session-id")
    ref = c.SessionRef(user_id=user_id, session_id=wanted) if wanted else None
    # A resumable session still attached is taken over (its socket is closed with 4000): only
    # its client knows the id, and a socket the client dropped may look open here for a while.
    resumed = ref is not None and service.has_session(ref)
    if ref is not None and resumed:
        resumed = (await service.configure_session(ref, c.ConfigureSession())).resumable
    if ref is None or not resumed:
        ref = c.SessionRef(user_id=user_id, session_id=_new_id(service))
    sock = LavalinkSocket(service, ws, ref)
    try:
        identified, kept = await service.identify(ref, sock.sink)
        if not resumed:
            timeout = service.config.lavalink.resume_timeout
            cmd = c.ConfigureSession(resumable=False, timeout=timeout)
            await service.configure_session(ref, cmd)
    except Exception as e:
        err = for_peer(e, "Lavalink websocket")
        await ws.close(1008, err.message[:120])
        return
    name = request.headers.get("client-name") or "a client without Client-Name"
    log.info("Lavalink session %s (%s) %s", ref.session_id, name, _verb(identified.resumed))
    sockets: dict[str, Any] = sockets_of(request.app)
    assert ref.session_id is not None
    sockets[ref.session_id] = sock
    try:
        await sock.start(identified.resumed, kept)
        await sock.run()
    finally:
        if sockets.get(ref.session_id) is sock:
            del sockets[ref.session_id]
        service.disconnect(ref, sock.sink, sock.sink.unsent())


def _verb(resumed: bool) -> str:
    return "resumed" if resumed else "opened"


bp.add_websocket_route(lavalink_socket, "/v4/websocket")
