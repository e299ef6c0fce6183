"""NodeService: the control plane's one entry point for every front (websocket, REST).

Handlers parse with ``protocol/``, call one method here, and serialise what it returns.
It owns the sessions (identify, resume, takeover, VC_TIMEOUT) and the guild players.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psutil

from audionode import __version__
from audionode.config import Config
from audionode.engine import messages as msg
from audionode.errors import AudionodeError, BadRequest, Forbidden, NotFound
from audionode.player.player import Callbacks, GuildPlayer, OpenRequest
from audionode.player.queue import Entry
from audionode.protocol.discodo import (
    CloseCode,
    DiscordDispatch,
    Op,
    VoiceServerUpdate,
    VoiceStateUpdate,
    parse,
    snowflake,
)
from audionode.session import EventSink, Session, session_key
from audionode.types import ChannelId, GuildId, SessionKey, UserId

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Identified:
    """Result of :meth:`NodeService.identify`."""

    session: Session
    resumed: bool
    kept: list[tuple[str, Any]]
    dropped: int


class NodeService:
    """Sessions and players. Create inside a running event loop; call :meth:`close` last."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.sessions: dict[SessionKey, Session] = {}
        self.started = time.monotonic()
        self.engine_commands: asyncio.Queue[msg.Command] = asyncio.Queue()
        """Commands for the engine; the in-process engine drains it (workers = 0)."""
        self.opener: Callable[[Any], Awaitable[Any]] | None = None
        """Turns a queued track into what the engine plays (set once sources are loaded)."""
        self._keys = itertools.count(1)
        self._by_key: dict[int, GuildPlayer] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # prime: the first reading is always 0.0

    # --- sessions ---------------------------------------------------------------------

    def identify(self, user_id: int, shard_id: int | None, sink: EventSink) -> Identified:
        """Bind ``sink`` to the (user, shard) session, resuming or taking over an existing one."""
        key = session_key(user_id, shard_id)
        session = self.sessions.get(key)
        if session is None:
            session = Session(UserId(user_id), shard_id, self.config.max_kept_events)
            self.sessions[key] = session
            session.attach(sink)
            log.info("session %s identified", key)
            return Identified(session, False, [], 0)
        if session.expiry is not None:
            session.expiry.cancel()
            session.expiry = None
        old = session.sink
        if old is not None and old is not sink:
            old.close(CloseCode.SESSION_TAKEN_OVER, "another connection identified as this session")
        kept, dropped = session.attach(sink)
        log.info("session %s resumed (%d kept events, %d dropped)", key, len(kept), dropped)
        return Identified(session, True, kept, dropped)

    def disconnect(self, session: Session, sink: EventSink, unsent: list[tuple[str, Any]]) -> None:
        """A socket closed: keep the session for ``vc_timeout`` seconds unless one took over."""
        if not session.detach(sink, unsent) or self.sessions.get(session.key) is not session:
            return
        timeout = self.config.vc_timeout
        log.info("session %s detached; kept for %.1f s", session.key, timeout)
        loop = asyncio.get_running_loop()
        session.expiry = loop.call_later(timeout, self._expire, session)

    def _expire(self, session: Session) -> None:
        if self.sessions.get(session.key) is not session or session.sink is not None:
            return
        del self.sessions[session.key]
        for guild_id in list(session.players):
            self._drop_player(session, GuildId(guild_id))
        session.kept.clear()
        log.info(
            "session %s expired after vc_timeout; its voice clients were destroyed", session.key
        )

    def voice_clients(self, session: Session) -> list[list[str | None]]:
        """``RESUMED.voice_clients``: ``[[guild_id, channel_id or null], ...]`` (seed 002)."""
        return [
            [snowflake(p.guild_id), snowflake(p.voice.channel_id)] for p in session.players.values()
        ]

    # --- players ----------------------------------------------------------------------

    def resolve(
        self, user_id: int, shard_id: int | None, guild_id: int, voice_client_id: str
    ) -> tuple[Session, GuildPlayer]:
        """Find the player a REST request names by its headers (discodo-reference.md §3.1)."""
        session = self.sessions.get(session_key(user_id, shard_id))
        if session is None:
            raise NotFound(
                f"no session for user {user_id} shard {shard_id}; IDENTIFY on /ws first",
                code="SESSION_NOT_FOUND",
            )
        player = self.player(session, guild_id)
        if not hmac.compare_digest(player.id.encode(), voice_client_id.encode()):
            raise Forbidden(
                "header `VoiceClient-ID` does not match this guild's voice client",
                code="VOICE_CLIENT_ID_MISMATCH",
            )
        return session, player

    def player(self, session: Session, guild_id: int) -> GuildPlayer:
        """The guild's player or :class:`NotFound`."""
        found = session.players.get(GuildId(guild_id))
        if found is None:
            raise NotFound(f"no voice client for guild {guild_id}", code="VOICE_CLIENT_NOT_FOUND")
        return found

    def _ensure_player(self, session: Session, guild_id: GuildId) -> GuildPlayer:
        found = session.players.get(guild_id)
        if found is None:
            key = next(self._keys)
            callbacks = Callbacks(
                emit=session.emit,
                command=self.engine_commands.put_nowait,
                open=lambda req: self._open(key, req),
                describe=self.describe_entry,
            )
            found = GuildPlayer(guild_id, key, callbacks, crossfade=self.config.engine.crossfade)
            session.players[guild_id] = found
            self._by_key[key] = found
            session.emit(Op.VC_CREATED, {"guild_id": snowflake(guild_id), "id": found.id})
        return found

    def destroy_player(self, session: Session, guild_id: int) -> None:
        """``VC_DESTROY``: drop the guild's voice client and emit ``VC_DESTROYED``."""
        self.player(session, guild_id)
        self._drop_player(session, GuildId(guild_id))

    def _drop_player(self, session: Session, guild_id: GuildId) -> None:
        player = session.players.pop(guild_id, None)
        if player is not None:
            self._by_key.pop(player.key, None)
            self.engine_commands.put_nowait(msg.Disconnect(player=player.key))
        session.emit(Op.VC_DESTROYED, {"guild_id": snowflake(guild_id)})

    def validate_filters(self, filters: dict[str, Any]) -> dict[str, Any]:
        """Check a filter set before any player sees it (BadRequest naming the filter)."""
        if filters:
            raise BadRequest("field `filter`: filters are not available on this node yet")
        return filters

    def describe_entry(self, entry: Entry[Any]) -> dict[str, Any]:
        """A queue entry as the bot sees it (Discodo's AudioData/AudioSource dict)."""
        track = entry.track
        info: dict[str, Any] = dict(track) if isinstance(track, dict) else {"track": str(track)}
        return {
            **info,
            "tag": entry.tag,
            "context": entry.context,
            "start_position": entry.start_position,
        }

    def _open(self, key: int, request: OpenRequest) -> None:
        task = asyncio.get_running_loop().create_task(self._open_task(key, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open_task(self, key: int, request: OpenRequest) -> None:
        player = self._by_key.get(key)
        if player is None:
            return
        if self.opener is None:
            player.track_failed(request.serial, "no source is configured to open tracks")
            return
        try:
            source = await self.opener(request.entry.track)
        except AudionodeError as e:
            player.track_failed(request.serial, e.message)
        else:
            player.track_opened(request.serial, source)

    def on_engine_event(self, event: msg.Event) -> None:
        """Route one engine event to its player (events of destroyed players are dropped)."""
        player = self._by_key.get(event.player)
        if player is not None:
            player.on_engine_event(event)

    # --- Discord events forwarded by the bot -----------------------------------------------

    def discord_event(self, session: Session, payload: Any) -> None:
        """``DISCORD_EVENT``: record the bot's own voice state and voice server (seed 002).

        Other users' voice states and other dispatches are dropped without further parsing.
        """
        dispatch = parse(payload, DiscordDispatch)
        if dispatch.t == "VOICE_STATE_UPDATE":
            if not isinstance(dispatch.d, dict) or str(dispatch.d.get("user_id")) != str(
                session.user_id
            ):
                return
            self._voice_state(session, parse(dispatch.d, VoiceStateUpdate, "d.d"))
        elif dispatch.t == "VOICE_SERVER_UPDATE":
            self._voice_server(session, parse(dispatch.d, VoiceServerUpdate, "d.d"))

    def _voice_state(self, session: Session, vsu: VoiceStateUpdate) -> None:
        guild_id = GuildId(vsu.guild_id)
        existing = session.players.get(guild_id)
        if existing is None and vsu.channel_id is None:
            return  # leaving a guild we hold nothing for
        player = self._ensure_player(session, guild_id)
        channel = None if vsu.channel_id is None else ChannelId(vsu.channel_id)
        changed = player.voice.channel_id != channel
        player.voice.session_id = vsu.session_id
        player.voice.channel_id = channel
        if changed:
            session.emit(
                Op.VC_CHANNEL_EDITED,
                {"guild_id": snowflake(guild_id), "channel_id": snowflake(channel)},
            )

    def _voice_server(self, session: Session, vsu: VoiceServerUpdate) -> None:
        player = self._ensure_player(session, GuildId(vsu.guild_id))
        player.voice.token = vsu.token
        player.voice.endpoint = vsu.endpoint

    # --- node ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``GET /status`` and ``GET_STATUS``: uptime, CPU, memory, sessions, players."""
        mem = psutil.virtual_memory()
        with self._process.oneshot():
            rss = self._process.memory_info().rss
            cpu = self._process.cpu_percent(None)
        return {
            "version": __version__,
            "uptime": round(time.monotonic() - self.started, 3),
            "cpu": {
                "process": cpu,
                "system": psutil.cpu_percent(None),
                "cores": psutil.cpu_count(),
            },
            "memory": {"rss": rss, "system_total": mem.total, "system_used": mem.used},
            "sessions": len(self.sessions),
            "connected_sessions": sum(1 for s in self.sessions.values() if s.sink is not None),
            "players": sum(len(s.players) for s in self.sessions.values()),
        }

    async def close(self) -> None:
        """Shut down: close every socket (1001) and free every session."""
        for session in list(self.sessions.values()):
            if session.expiry is not None:
                session.expiry.cancel()
            if session.sink is not None:
                session.sink.close(CloseCode.GOING_AWAY, "node shutting down")
        self.sessions.clear()
