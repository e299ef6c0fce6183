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
from dataclasses import dataclass
from typing import Any

import msgspec
import psutil

from audionode import __version__
from audionode.config import Config
from audionode.engine import messages as msg
from audionode.engine.host import EngineHost
from audionode.errors import AudionodeError, BadRequest, Forbidden, NotFound, Unprocessable
from audionode.media.filtergraph import build_chain
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
from audionode.protocol.filters import parse_filters
from audionode.protocol.track_token import derive_key, sign, verify
from audionode.session import EventSink, Session, session_key
from audionode.sources.api import LoadResult, Track
from audionode.sources.loader import SourceManager
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
        self.engine: EngineHost | None = None
        """The data plane; attached by the server right after construction."""
        self.sources: SourceManager | None = None
        """Resolves queries and opens tracks; attached by the server at start-up."""
        self._track_key = derive_key(config.password)
        self._keys = itertools.count(1)
        self._by_key: dict[int, tuple[Session, GuildPlayer]] = {}
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
                command=self.send_engine,
                open=lambda req: self._open(key, req),
                describe=self.describe_entry,
            )
            found = GuildPlayer(guild_id, key, callbacks, crossfade=self.config.engine.crossfade)
            session.players[guild_id] = found
            self._by_key[key] = (session, found)
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
            self.send_engine(msg.Disconnect(player=player.key))
        session.emit(Op.VC_DESTROYED, {"guild_id": snowflake(guild_id)})

    # --- tracks -------------------------------------------------------------------------

    def validate_filters(self, filters: dict[str, Any]) -> dict[str, Any]:
        """Check a filter set (and build its libavfilter chain once) before any player sees it;
        :class:`FilterError` (a 400) names the filter and parameter."""
        spec = parse_filters(filters)
        build_chain(spec)
        normalized: dict[str, Any] = msgspec.to_builtins(spec)
        return normalized

    def describe_track(self, track: Track) -> dict[str, Any]:
        """A track as the bot sees it: Discodo's AudioData fields plus our signed ``encoded``."""
        return {
            "_type": "AudioData",
            "id": track.id,
            "title": track.title,
            "webpage_url": track.uri,
            "uploader": track.author,
            "duration": None if track.duration_ms is None else track.duration_ms / 1000,
            "is_live": track.is_live,
            "thumbnail": track.artwork,
            "source": track.source,
            "encoded": sign(msgspec.to_builtins(track), self._track_key),
        }

    def describe_entry(self, entry: Entry[Track]) -> dict[str, Any]:
        """A queue entry: the track plus its tag, context and start position."""
        return {
            **self.describe_track(entry.track),
            "tag": entry.tag,
            "context": entry.context,
            "start_position": entry.start_position,
        }

    def track_from_token(self, token: Any, field: str = "encoded") -> Track:
        """A track this node issued (``putSource`` accepts nothing else)."""
        info = verify(token, self._track_key, field)
        try:
            return msgspec.convert(info, Track)
        except msgspec.ValidationError:
            raise BadRequest(
                f"field `{field}`: the track token is from an incompatible node"
            ) from None

    async def load(self, query: str) -> LoadResult:
        """Resolve a query; an unusable result is a 4xx naming why."""
        if self.sources is None:
            raise RuntimeError("NodeService used before sources were attached")
        result = await self.sources.load(query)
        if result.type == "error":
            raise Unprocessable(result.error or "the query could not be loaded", code="LOAD_FAILED")
        if result.type == "empty":
            raise NotFound(f"nothing found for {query!r}", code="NO_RESULTS")
        return result

    def _open(self, key: int, request: OpenRequest) -> None:
        task = asyncio.get_running_loop().create_task(self._open_task(key, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open_task(self, key: int, request: OpenRequest) -> None:
        found = self._by_key.get(key)
        if found is None:
            return
        player = found[1]
        if self.sources is None:
            raise RuntimeError("NodeService used before sources were attached")
        try:
            source = await self.sources.open(request.entry.track)
        except AudionodeError as e:
            player.track_failed(request.serial, e.message)
        else:
            player.track_opened(request.serial, source)

    def send_engine(self, command: msg.Command) -> None:
        """Hand a command to the data plane (never blocks)."""
        if self.engine is None:
            raise RuntimeError("NodeService used before an engine was attached")
        self.engine.send(command)

    def _maybe_connect(self, session: Session, player: GuildPlayer) -> None:
        """Both voice updates are known: (re)connect (discord-voice.md §1.2, issue 4 item 7)."""
        v = player.voice
        if not v.complete:
            return
        assert v.channel_id and v.session_id and v.token and v.endpoint
        self.send_engine(
            msg.Connect(
                player=player.key,
                guild_id=player.guild_id,
                user_id=session.user_id,
                channel_id=v.channel_id,
                session_id=v.session_id,
                token=v.token,
                endpoint=v.endpoint,
            )
        )

    def on_engine_event(self, event: msg.Event) -> None:
        """Route one engine event to its player (events of destroyed players are dropped)."""
        found = self._by_key.get(event.player)
        if found is not None:
            found[1].on_engine_event(event)

    def on_worker_lost(self, slot: int, keys: set[int]) -> None:
        """An engine worker died: tell each affected bot, then rebuild its player's engine state
        on the replacement worker (connection first, then the track at its last position)."""
        for key in keys:
            found = self._by_key.get(key)
            if found is None:
                continue
            session, player = found
            log.warning("player %d (guild %d) lost engine worker %d", key, player.guild_id, slot)
            player.engine_lost()
            self._maybe_connect(session, player)
            player.restore()

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
        if changed and player.voice.channel_id is not None and channel is not None:
            # A move comes with a new token (discord-voice.md §1.2): wait for it rather than
            # knocking on the new channel with the old one.
            player.voice.token = None
        player.voice.session_id = vsu.session_id
        player.voice.channel_id = channel
        if changed:
            session.emit(
                Op.VC_CHANNEL_EDITED,
                {"guild_id": snowflake(guild_id), "channel_id": snowflake(channel)},
            )
        if channel is None:
            self.send_engine(msg.Disconnect(player=player.key))
        else:
            self._maybe_connect(session, player)

    def _voice_server(self, session: Session, vsu: VoiceServerUpdate) -> None:
        player = self._ensure_player(session, GuildId(vsu.guild_id))
        player.voice.token = vsu.token
        player.voice.endpoint = vsu.endpoint  # None: wait for the next update (§1.2)
        self._maybe_connect(session, player)

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
            "engine": self.stats(),
        }

    def stats(self) -> dict[str, Any]:
        """Engine figures for ``/status``."""
        return self.engine.stats() if self.engine is not None else {}

    async def close(self) -> None:
        """Shut down: close every socket (1001) and free every session."""
        for session in list(self.sessions.values()):
            if session.expiry is not None:
                session.expiry.cancel()
            if session.sink is not None:
                session.sink.close(CloseCode.GOING_AWAY, "node shutting down")
        self.sessions.clear()
