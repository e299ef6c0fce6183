"""The sessions of every front door: identify, resume, takeover, ``vc_timeout``, lookups.

A front door's connection identifies as a :class:`SessionRef`; commands then name a player by
:class:`PlayerRef`. Bounds (``control.max_sessions_per_user``, ``control.max_players``) are
enforced here, when a session or a player would be created.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable, Iterable

from audionode.config import Config
from audionode.control import events as ev
from audionode.control.commands import PlayerRef, SessionRef
from audionode.control.events import CloseReason, ControlEvent
from audionode.control.views import Identified, VoiceClientView
from audionode.errors import BadRequest, Conflict, Forbidden, NotFound
from audionode.player.player import GuildPlayer
from audionode.session import EventSink, Session
from audionode.types import GuildId

log = logging.getLogger(__name__)

PlayerFactory = Callable[[Session, GuildId], GuildPlayer]
Dropper = Callable[[GuildPlayer], None]
Gone = Callable[[Session], None]


class Sessions:
    """Every session of the node, keyed by (user, shard)."""

    def __init__(
        self,
        config: Config,
        make_player: PlayerFactory,
        drop: Dropper,
        gone: Gone = lambda session: None,
    ) -> None:
        """``drop`` is called for each player dropped, ``gone`` for each session expired."""
        self.config = config
        self._make_player = make_player
        self._drop = drop
        self._gone = gone
        self.by_ref: dict[SessionRef, Session] = {}
        self.by_name: dict[str, SessionRef] = {}
        """Front-issued session ids (:attr:`SessionRef.session_id`) -> their refs."""

    def __len__(self) -> int:
        return len(self.by_ref)

    @property
    def players(self) -> int:
        return sum(len(s.players) for s in self.by_ref.values())

    # --- identify / resume / takeover / expiry ------------------------------------------------

    def identify(self, ref: SessionRef, sink: EventSink) -> tuple[Identified, list[ControlEvent]]:
        """Bind ``sink`` to the session, resuming (or taking over) one that exists."""
        session = self.by_ref.get(ref)
        if session is None:
            self._room_for_session(ref)
            session = Session(ref, self.config.max_kept_events, self.config.control.max_kept_bytes)
            self.by_ref[ref] = session
            if ref.session_id is not None:
                self.by_name[ref.session_id] = ref
            session.attach(sink)
            log.info("session %s/%s identified", ref.user_id, ref.shard_id)
            return Identified(user_id=ref.user_id, shard_id=ref.shard_id, resumed=False), []
        if session.expiry is not None:
            session.expiry.cancel()
            session.expiry = None
        old = session.sink
        if old is not None and old is not sink:
            old.close(CloseReason.TAKEN_OVER)
        kept, dropped = session.attach(sink)
        log.info("session %s/%s resumed (%d kept, %d dropped)", *ref_parts(ref), len(kept), dropped)
        clients = tuple(
            VoiceClientView(
                guild_id=p.guild_id, voice_client_id=p.id, channel_id=p.voice.channel_id
            )
            for p in session.players.values()
        )
        identified = Identified(
            user_id=ref.user_id,
            shard_id=ref.shard_id,
            resumed=True,
            voice_clients=clients,
            dropped=dropped,
        )
        return identified, kept

    def _room_for_session(self, ref: SessionRef) -> None:
        limit = self.config.control.max_sessions_per_user
        have = sum(1 for r in self.by_ref if r.user_id == ref.user_id)
        if have >= limit:
            raise Conflict(
                f"user {ref.user_id} already has {have} sessions "
                f"(control.max_sessions_per_user = {limit})",
                code="TOO_MANY_SESSIONS",
            )

    def disconnect(self, session: Session, sink: EventSink, unsent: list[ControlEvent]) -> None:
        """A connection closed: keep the session for ``vc_timeout`` unless one took over."""
        if not session.detach(sink, unsent) or self.by_ref.get(session.ref) is not session:
            return
        if not session.resumable:
            self._expire(session)
            return
        timeout = self.timeout_of(session)
        log.info("session %s/%s detached; kept for %.1f s", *ref_parts(session.ref), timeout)
        loop = asyncio.get_running_loop()
        session.expiry = loop.call_later(timeout, self._expire, session)

    def timeout_of(self, session: Session) -> float:
        """Seconds ``session`` outlives its connection."""
        timeout = session.resume_timeout
        return self.config.vc_timeout if timeout is None else timeout

    def adopt(
        self,
        ref: SessionRef,
        kept: Iterable[ControlEvent],
        dropped: int,
        expires_in: float,
        resume_timeout: float | None = None,
    ) -> Session:
        """A session rebuilt after a node restart, unattended: it expires in ``expires_in``
        seconds unless a connection identifies as it (which then resumes it)."""
        session = Session(ref, self.config.max_kept_events, self.config.control.max_kept_bytes)
        session.resume_timeout = resume_timeout
        if ref.session_id is not None:
            self.by_name[ref.session_id] = ref
        for event in kept:
            session.emit(event)  # no sink: kept, within the same bounds
        session.dropped += dropped
        self.by_ref[ref] = session
        loop = asyncio.get_running_loop()
        session.expiry = loop.call_later(expires_in, self._expire, session)
        return session

    def _expire(self, session: Session) -> None:
        if self.by_ref.get(session.ref) is not session or session.sink is not None:
            return
        del self.by_ref[session.ref]
        self._unname(session.ref)
        for guild_id in list(session.players):
            self.drop_player(session, guild_id)
        session.kept.clear()
        self._gone(session)
        log.info("session %s/%s expired; its voice clients were destroyed", *ref_parts(session.ref))

    def close_all(self) -> None:
        for session in list(self.by_ref.values()):
            if session.expiry is not None:
                session.expiry.cancel()
            if session.sink is not None:
                session.sink.close(CloseReason.SHUTTING_DOWN)
        self.by_ref.clear()
        self.by_name.clear()

    def _unname(self, ref: SessionRef) -> None:
        if ref.session_id is not None and self.by_name.get(ref.session_id) == ref:
            del self.by_name[ref.session_id]

    # --- lookups ------------------------------------------------------------------------------

    def session(self, ref: SessionRef) -> Session:
        found = self.by_ref.get(ref)
        if found is None:
            raise NotFound(
                f"no session for user {ref.user_id} shard {ref.shard_id}; identify first",
                code="SESSION_NOT_FOUND",
            )
        return found

    def named(self, session_id: str) -> SessionRef:
        """The ref of the session a front issued ``session_id`` for."""
        ref = self.by_name.get(session_id)
        if ref is None:
            raise NotFound(f"no session {session_id[:64]!r}", code="SESSION_NOT_FOUND")
        return ref

    def find(self, ref: PlayerRef) -> tuple[Session, GuildPlayer]:
        """The player ``ref`` names; without a shard, the user's session holding the guild."""
        session = self.session(ref.session) if ref.shard_given else self._by_guild(ref)
        player = session.players.get(GuildId(ref.guild_id))
        if player is None:
            raise NotFound(
                f"no voice client for guild {ref.guild_id}", code="VOICE_CLIENT_NOT_FOUND"
            )
        vc_id = ref.voice_client_id
        if vc_id is not None and not hmac.compare_digest(player.id.encode(), vc_id.encode()):
            raise Forbidden(
                "the voice client id does not match this guild's voice client",
                code="VOICE_CLIENT_ID_MISMATCH",
            )
        return session, player

    def _by_guild(self, ref: PlayerRef) -> Session:
        mine = [
            s
            for r, s in self.by_ref.items()
            if r.user_id == ref.user_id and r.session_id == ref.session_id
        ]
        if len(mine) == 1:
            return mine[0]  # the only session, whatever its shard (Discodo's client)
        holding = [s for s in mine if GuildId(ref.guild_id) in s.players]
        if len(holding) == 1:
            return holding[0]
        if not mine:
            raise NotFound(
                f"no session for user {ref.user_id}; identify first", code="SESSION_NOT_FOUND"
            )
        if not holding:
            raise NotFound(
                f"no voice client for guild {ref.guild_id}", code="VOICE_CLIENT_NOT_FOUND"
            )
        raise BadRequest(
            f"user {ref.user_id} has {len(holding)} sessions holding guild {ref.guild_id}; "
            "name the shard"
        )

    # --- players ------------------------------------------------------------------------------

    def ensure_player(self, session: Session, guild_id: GuildId) -> GuildPlayer:
        """The guild's player, created (``VoiceClientCreated``) on the first voice update."""
        found = session.players.get(guild_id)
        if found is not None:
            return found
        limit = self.config.control.max_players
        if self.players >= limit:
            raise Conflict(
                f"the node holds {limit} voice clients (control.max_players)",
                code="TOO_MANY_PLAYERS",
            )
        player = self._make_player(session, guild_id)
        session.players[guild_id] = player
        session.emit(ev.VoiceClientCreated(guild_id=guild_id, voice_client_id=player.id))
        return player

    def drop_player(self, session: Session, guild_id: GuildId) -> None:
        player = session.players.pop(guild_id, None)
        if player is not None:
            self._drop(player)
        session.emit(ev.VoiceClientDestroyed(guild_id=guild_id))


def ref_parts(ref: SessionRef) -> tuple[int, int | None]:
    return ref.user_id, ref.shard_id
