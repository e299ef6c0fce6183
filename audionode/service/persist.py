"""The service's side of persistence: what changed goes to the store; at start-up, back.

:class:`Keeper` is told what changed (a player, its queue, a session) and hands typed records
(``store/records.py``) to the :class:`~audionode.store.Store`, whose writer thread does the
disk work. Changes are batched: a changed player is written :data:`DIRTY_DELAY` later (once,
however often it changed meanwhile), and every ``state.checkpoint_interval`` a checkpoint
writes the time (the node's ``alive_at``) and the position of every track that did not keep
time since it was written (a seek, a pause, a stall): a track playing on is stored once as
"at ``position`` at ``position_at``, moving", and start-up moves it on to ``alive_at``
(docs/PERSISTENCE.md). The functions at the bottom turn live state into records and back.
Without a state file the keeper does nothing. :class:`VoiceHold` keeps a restored voice client
from connecting before its bot had its say.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from audionode.control import events as ev
from audionode.control.commands import SessionRef
from audionode.player.player import GuildPlayer, VoiceCredentials
from audionode.player.queue import Entry
from audionode.player.table import Phase
from audionode.service.tracks import Claimed
from audionode.session import Session
from audionode.sources.api import Track
from audionode.store import Store
from audionode.store import records as r
from audionode.tasks import cancel_and_wait
from audionode.types import ChannelId

DIRTY_DELAY = 0.05
"""Seconds a change waits for others before it is written (one write for a burst)."""
KEEPS_TIME = 0.01
"""Seconds a moving track may drift from its written position, moved on at the wall clock's
pace, before a checkpoint writes it again."""
RESTORED_VOICE_HOLD = 0.5
"""Seconds a restored voice client waits, once its bot identified again, for the bot to say
something about it (or destroy it) before it reconnects voice anyway (:class:`VoiceHold`)."""

Live = Callable[[], Iterable[tuple[Session, GuildPlayer]]]


def session_key(ref: SessionRef) -> str:
    """The session's key in the state file: ``<user>/<shard>`` (``-`` for no shard), then
    ``/<name>`` for a session a front named."""
    key = f"{ref.user_id}/{'-' if ref.shard_id is None else ref.shard_id}"
    return key if ref.session_id is None else f"{key}/{ref.session_id}"


class Keeper:
    """Create with the store (or None) and the checkpoint interval; :meth:`start` once the
    restored state is in place, :meth:`close` before the sessions are closed at shutdown."""

    def __init__(self, store: Store | None, interval: float, clock: Callable[[], float]) -> None:
        self.store = store
        self.interval = interval
        self.clock = clock
        self._players: dict[int, tuple[Session, GuildPlayer]] = {}
        self._queues: set[int] = set()
        self._sessions: dict[SessionRef, Session] = {}
        self._detached_at: dict[SessionRef, float] = {}
        self._positions: dict[int, tuple[float, float | None]] = {}
        """Per player: the position last written and since when it moved on (None: still)."""
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._live: Live = tuple

    @property
    def enabled(self) -> bool:
        return self.store is not None

    # --- what changed -------------------------------------------------------------------------

    def player_changed(self, session: Session, player: GuildPlayer, queue: bool = False) -> None:
        if self.store is None:
            return
        self._players[player.key] = (session, player)
        if queue:
            self._queues.add(player.key)
        self._soon()

    def session_changed(self, session: Session, soon: bool = True) -> None:
        """The session was attached, detached or kept events; ``soon=False`` leaves the write
        to the next checkpoint (kept events come often and weigh up to ``max_kept_bytes``)."""
        if self.store is None:
            return
        if session.sink is None:
            self._detached_at.setdefault(session.ref, self.clock())
        else:
            self._detached_at.pop(session.ref, None)
        self._sessions[session.ref] = session
        if soon:
            self._soon()

    def event(self, session: Session, player: GuildPlayer | None, event: ev.ControlEvent) -> None:
        """A player emitted ``event``: what it changed is written (positions have their own
        checkpoints; a detached session keeps the event, written at the next checkpoint)."""
        if self.store is None:
            return
        if session.sink is None:
            self.session_changed(session, soon=False)
        if player is not None and not isinstance(event, ev.PositionChanged):
            queue = isinstance(event, ev.QueueChanged | ev.TrackEnded)  # TrackEnded: history
            self.player_changed(session, player, queue)

    def player_gone(self, session: Session, player: GuildPlayer) -> None:
        if self.store is None:
            return
        self._players.pop(player.key, None)
        self._queues.discard(player.key)
        self._positions.pop(player.key, None)
        self.store.drop_player(session_key(session.ref), player.guild_id)

    def session_gone(self, session: Session) -> None:
        self._sessions.pop(session.ref, None)
        self._detached_at.pop(session.ref, None)
        self.forget_session(session_key(session.ref))

    def forget_session(self, key: str) -> None:
        """Drop a stored session (with its players) that will not come back."""
        if self.store is not None:
            self.store.drop_session(key)

    def forget_player(self, session: str, guild_id: int) -> None:
        if self.store is not None:
            self.store.drop_player(session, guild_id)

    # --- writing ------------------------------------------------------------------------------

    def _soon(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(DIRTY_DELAY, self.flush)

    def flush(self) -> None:
        """Hand every changed player, queue and session to the store (returns at once)."""
        self._timer = None
        store = self.store
        if store is None:
            return
        now = self.clock()
        for key, (session, player) in self._players.items():
            record, position = player_record(player)
            at = now if position is not None and player.advancing else None
            store.put_player(session_key(session.ref), record, position, at)
            if position is None:
                self._positions.pop(key, None)
            else:
                self._positions[key] = (position, at)
            if key in self._queues:
                store.put_queue(session_key(session.ref), player.guild_id, queue_record(player))
        for ref, session in self._sessions.items():
            store.put_session(session_key(ref), self.session_record(session))
        self._players.clear()
        self._queues.clear()
        self._sessions.clear()

    def checkpoint(self) -> None:
        """Flush, write the time, then the position of every track that is not where its
        written position, moved on since if it was moving, puts it."""
        self.flush()
        store = self.store
        if store is None:
            return
        now = self.clock()
        store.put_alive(now)
        written = self._positions
        for session, player in self._live():
            found = player.resumable()
            if found is None:
                continue
            position = _clamped(found[0].track, found[1])
            at = now if player.advancing else None
            last = written.get(player.key)
            if last is not None and (last[1] is None) == (at is None):
                then = last[0] if last[1] is None else last[0] + (now - last[1])
                then = _clamped(found[0].track, then)
                if abs(then - position) < (0.001 if at is None else KEEPS_TIME):
                    continue  # still where it was, or moving on in time
            written[player.key] = (position, at)
            store.put_position(session_key(session.ref), player.guild_id, position, at)

    def session_record(self, session: Session) -> r.SessionRecord:
        return r.SessionRecord(
            user_id=session.ref.user_id,
            shard_id=session.ref.shard_id,
            session_id=session.ref.session_id,
            resumable=session.resumable,
            resume_timeout=session.resume_timeout,
            detached_at=self._detached_at.get(session.ref) if session.sink is None else None,
            kept=tuple(e for e, _ in session.kept),
            dropped=session.dropped,
        )

    # --- life ---------------------------------------------------------------------------------

    def start(self, live: Live) -> None:
        """Start the checkpoints; ``live`` lists every (session, player) of the node."""
        if self.store is None:
            return
        self._live = live
        self.store.start()
        self._task = asyncio.get_running_loop().create_task(self._checkpoints())

    async def _checkpoints(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.checkpoint()

    def restored(self, session: Session, detached_at: float | None) -> None:
        """A session rebuilt from the store: remember since when it has had no connection."""
        if self.store is not None:
            self._detached_at[session.ref] = self.clock() if detached_at is None else detached_at

    async def close(self) -> None:
        """The last checkpoint (exact positions), then the store is closed; later changes (the
        shutdown closing connections and voice) are not written."""
        store = self.store
        if store is None:
            return
        self.checkpoint()
        self.store = None
        if self._timer is not None:
            self._timer.cancel()
        await cancel_and_wait(self._task)
        await asyncio.to_thread(store.close)

    def status(self) -> dict[str, Any]:
        """For ``/status``: the store's figures, or that nothing is kept."""
        if self.store is None:
            return {"enabled": False}
        return {"enabled": True, **self.store.stats()}


class VoiceHold:
    """Restored voice clients whose voice connection waits for their bot (docs/PERSISTENCE.md,
    "Voice: after the bot is back").

    The stored credentials may have been handed to another node while this one was down (the
    bot's client moved the player when the node did not come back in time), and connecting
    with them would take that node's voice session. So a restored voice client connects once
    its bot, identified again, says anything about its guild (:meth:`release`), or
    :data:`RESTORED_VOICE_HOLD` seconds after the bot identified if it said nothing; never if
    the bot destroys it first (:meth:`forget`). ``connect`` connects the player of a key.
    """

    def __init__(self, connect: Callable[[int], None], hold: float = RESTORED_VOICE_HOLD) -> None:
        self._connect = connect
        self._hold = hold
        self._held: dict[int, asyncio.TimerHandle | None] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._held

    def __bool__(self) -> bool:
        return bool(self._held)

    def hold(self, key: int) -> None:
        self._held[key] = None

    def identified(self, keys: Iterable[int]) -> None:
        """The bot of these players identified again: each connects after the hold at most."""
        loop = asyncio.get_running_loop()
        for key in keys:
            if key in self._held and self._held[key] is None:
                self._held[key] = loop.call_later(self._hold, self.release, key)

    def release(self, key: int) -> None:
        """Connect now (the bot spoke of the player, or the hold ran out)."""
        if key in self._held:
            self.forget(key)
            self._connect(key)

    def forget(self, key: int) -> None:
        """The player is gone: it never connects."""
        handle = self._held.pop(key, None)
        if handle is not None:
            handle.cancel()


# --- live state <-> records ---------------------------------------------------------------------


def restored_position(stored: r.StoredPlayer, alive_at: float | None) -> float | None:
    """Where a stored player's track resumes: its written position, moved on to the node's
    last checkpoint if it was playing, within the track (None: nothing was playing)."""
    current = stored.record.current
    position = r.position_then(stored, alive_at)
    if current is None or position is None:
        return position
    return _clamped(current.track, position)


def _clamped(track: Track, position: float) -> float:
    if track.duration_ms is not None:
        return max(0.0, min(position, track.duration_ms / 1000))
    return max(0.0, position)


def entry_record(entry: Entry[Track]) -> r.EntryRecord:
    track = entry.track
    return r.EntryRecord(
        track=track,
        tag=entry.tag,
        context=entry.context,
        start_position=entry.start_position,
        end_position=entry.end_position,
        claimed=track.field if isinstance(track, Claimed) else None,
    )


def entry_of(record: r.EntryRecord) -> Entry[Track]:
    track = record.track
    if record.claimed is not None:
        track = Claimed(**msgspec.structs.asdict(track), field=record.claimed)
    return Entry(
        track,
        tag=record.tag,
        context=record.context,
        start_position=record.start_position,
        end_position=record.end_position,
    )


def player_record(p: GuildPlayer) -> tuple[r.PlayerRecord, float | None]:
    """The player's record and its current track's position now (None: nothing plays)."""
    found = p.resumable()
    v = p.voice
    record = r.PlayerRecord(
        guild_id=p.guild_id,
        voice_client_id=p.id,
        voice=r.VoiceRecord(
            session_id=v.session_id, channel_id=v.channel_id, token=v.token, endpoint=v.endpoint
        ),
        volume=p.volume,
        crossfade=p.crossfade,
        autoplay=p.autoplay,
        filters=p.filters,
        repeat=p.repeat,
        paused=p.paused,
        context=p.context,
        current=None if found is None else entry_record(found[0]),
        stopped=p.phase is Phase.STOPPED,
    )
    return record, None if found is None else _clamped(found[0].track, found[1])


def queue_record(p: GuildPlayer) -> r.QueueRecord:
    return r.QueueRecord(
        entries=tuple(map(entry_record, p.queue)), history=tuple(map(entry_record, p.queue.history))
    )


def apply_record(p: GuildPlayer, stored: r.StoredPlayer) -> None:
    """Set a fresh player's stored state (before :meth:`GuildPlayer.resume_from`)."""
    rec = stored.record
    v = rec.voice
    p.id = rec.voice_client_id
    channel = None if v.channel_id is None else ChannelId(v.channel_id)
    p.voice = VoiceCredentials(v.session_id, channel, v.token, v.endpoint)
    p.volume, p.crossfade, p.autoplay = rec.volume, rec.crossfade, rec.autoplay
    p.filters, p.repeat, p.paused, p.context = rec.filters, rec.repeat, rec.paused, rec.context
    p.queue.extend(map(entry_of, stored.queue.entries))
    p.queue.history.extend(map(entry_of, stored.queue.history))
