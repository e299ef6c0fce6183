"""NodeService: the one place commands enter, whichever front door they came through.

One typed async method per command (``control/commands.py``), addressed by a typed key
(:class:`SessionRef` or :class:`PlayerRef`), taking an already-validated command and returning a
typed result (``control/views.py``). Players report through typed events
(``control/events.py``) that the session hands to whichever front is attached. Errors are
:class:`audionode.errors.AudionodeError` (each front maps them to its wire in one place).

The service never imports a wire format, a web framework or PyAV: filters are validated at the
edge (``protocol/filters.py``) and the engine reports a filter graph it cannot build as a
``CommandFailed`` for that player.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, get_type_hints

import psutil

from audionode import __version__
from audionode.config import Config
from audionode.control import commands as c
from audionode.control import events as ev
from audionode.control.views import (
    CurrentView,
    EntryView,
    Found,
    Identified,
    NodeStatus,
    OptionsView,
    PlayerState,
    PlayerView,
    PositionView,
    Queued,
    QueueView,
    Removed,
)
from audionode.engine import messages as msg
from audionode.engine.host import EngineHost
from audionode.errors import AudionodeError, Conflict
from audionode.logs import guild_scope
from audionode.player.player import Callbacks, GuildPlayer, OpenRequest
from audionode.player.queue import Entry
from audionode.service import overview, persist
from audionode.service.cpu import CpuSampler
from audionode.service.direct import DirectMethods, player_view
from audionode.service.hearing import HearingService
from audionode.service.persist import Keeper
from audionode.service.sessions import Sessions
from audionode.service.state import NodeState, fresh_state
from audionode.service.tracks import Claimed, TrackBook, check_start
from audionode.session import EventSink, Session
from audionode.sources.loader import SourceManager
from audionode.store import Store
from audionode.store.records import Snapshot, StoredPlayer
from audionode.types import ChannelId, GuildId

log = logging.getLogger(__name__)

Ref = c.SessionRef | c.PlayerRef | None


class NodeService(DirectMethods):
    """Sessions and players. Create inside a running event loop; with a state file, call
    :meth:`restore` once the engine and sources are attached; call :meth:`close` last."""

    def __init__(
        self,
        config: Config,
        clock: Callable[[], float] = time.time,
        state: NodeState | None = None,
        store: Store | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.tracks = TrackBook(state or fresh_state(), config.control.token_ttl, clock)
        self.keeper = Keeper(store, config.state.checkpoint_interval, clock)
        """Hands what changes to the state file (``service/persist.py``); inert without one."""
        self.sessions = Sessions(
            config, self._new_player, self._release_player, self.keeper.session_gone
        )
        self.held = persist.VoiceHold(self._connect_key)
        """Restored voice clients waiting for their bot before they connect voice."""
        self.started = time.monotonic()
        self.engine: EngineHost | None = None
        """The data plane; attached by the server right after construction."""
        self._keys = itertools.count(1)
        self._by_key: dict[int, tuple[Session, GuildPlayer]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._process = psutil.Process()
        self.cpu = CpuSampler()
        """The CPU figures of ``/status``, sampled every 2 s (``service/cpu.py``)."""
        self.cpu.start()
        self.hearing = HearingService(self)
        """Recordings, layers and VDP channels (issue 15)."""
        self.voice_links: dict[int, overview.VoiceLink] = {}
        """Each player's voice connection (mode, DAVE version) for the dashboard."""
        self._handlers = _handlers(self)

    @property
    def sources(self) -> SourceManager | None:
        """Resolves queries and opens tracks; attached by the server at start-up."""
        return self.tracks.sources

    @sources.setter
    def sources(self, value: SourceManager | None) -> None:
        self.tracks.sources = value

    async def execute(self, ref: Ref, command: Any) -> Any:
        """Run ``command`` with the method of its type (for table-driven fronts)."""
        handler = self._handlers.get(type(command))
        if handler is None:
            raise TypeError(f"no service method takes {type(command).__name__}")
        if self.held and not isinstance(command, c.Destroy):
            player = self._target(ref, command)[1]
            if player is not None:  # its bot spoke of it: it still wants it here
                self.held.release(player.key)
        guild = ref.guild_id if isinstance(ref, c.PlayerRef) else getattr(command, "guild_id", None)
        with guild_scope(guild):  # its log lines name the guild (docs/OPERATIONS.md)
            result = await handler(ref, command)
        if self.keeper.enabled and not isinstance(command, _READS):
            self._touched(ref, command)
        return result

    def _touched(self, ref: Ref, command: Any) -> None:
        """A command changed state: the keeper writes the player (and the session) it named."""
        session, player = self._target(ref, command)
        if session is not None and player is not None:
            self.keeper.player_changed(session, player, queue=isinstance(command, _QUEUE_EDITS))
        if session is not None and session.sink is None:
            self.keeper.session_changed(session)  # it kept events the command caused

    def _target(self, ref: Ref, command: Any) -> tuple[Session | None, GuildPlayer | None]:
        """The session and the player a command names (None: none, or not found)."""
        session: Session | None = None
        player: GuildPlayer | None = None
        if isinstance(ref, c.PlayerRef):
            with contextlib.suppress(AudionodeError):  # destroyed: already dropped
                session, player = self.sessions.find(ref)
        elif isinstance(ref, c.SessionRef):
            session = self.sessions.by_ref.get(ref)
            guild = getattr(command, "guild_id", None)
            player = None if session is None or guild is None else session.players.get(guild)
        return session, player

    # --- sessions -----------------------------------------------------------------------------

    async def identify(
        self, ref: c.SessionRef, sink: EventSink
    ) -> tuple[Identified, list[ev.ControlEvent]]:
        """Bind a front's connection to the session; returns the kept events to send next."""
        result = self.sessions.identify(ref, sink)
        session = self.sessions.by_ref[ref]
        self.keeper.session_changed(session)
        self.held.identified(p.key for p in session.players.values())
        return result

    def disconnect(self, ref: c.SessionRef, sink: EventSink, unsent: list[ev.ControlEvent]) -> None:
        """A connection closed: its session lives on for ``vc_timeout`` (events kept)."""
        session = self.sessions.by_ref.get(ref)
        if session is not None:
            self.sessions.disconnect(session, sink, unsent)
            self.keeper.session_changed(session)

    async def voice_state(self, ref: c.SessionRef, cmd: c.VoiceState) -> None:
        """The bot's own voice state: creates the voice client, follows channel moves."""
        session = self.sessions.session(ref)
        guild_id = GuildId(cmd.guild_id)
        if guild_id not in session.players and cmd.channel_id is None:
            return  # leaving a guild we hold nothing for
        player = self.sessions.ensure_player(session, guild_id)
        channel = None if cmd.channel_id is None else ChannelId(cmd.channel_id)
        changed = player.voice.channel_id != channel
        if changed and player.voice.channel_id is not None and channel is not None:
            # A move comes with a new token (docs/discord-voice.md §1.2): wait for it rather
            # than knocking on the new channel with the old one.
            player.voice.token = None
        player.voice.session_id = cmd.session_id
        player.voice.channel_id = channel
        if changed:
            session.emit(ev.VoiceChannelChanged(guild_id=guild_id, channel_id=channel))
        if channel is None:
            self.send_engine(msg.Disconnect(player=player.key))
        else:
            self._maybe_connect(session, player)

    async def voice_server(self, ref: c.SessionRef, cmd: c.VoiceServer) -> None:
        session = self.sessions.session(ref)
        player = self.sessions.ensure_player(session, GuildId(cmd.guild_id))
        player.voice.token = cmd.token
        player.voice.endpoint = cmd.endpoint  # None: wait for the next update (§1.2)
        self._maybe_connect(session, player)

    async def ignore(self, ref: c.SessionRef, cmd: c.Ignored) -> None:
        """A forwarded dispatch the node has no use for: checked to be identified, dropped."""
        self.sessions.session(ref)

    async def destroy(self, ref: c.PlayerRef, cmd: c.Destroy) -> None:
        """Drop the guild's voice client (``VoiceClientDestroyed`` follows)."""
        session, _ = self.sessions.find(ref)
        self.sessions.drop_player(session, GuildId(ref.guild_id))

    # --- reads ------------------------------------------------------------------------------

    def _player(self, ref: c.PlayerRef) -> GuildPlayer:
        return self.sessions.find(ref)[1]

    async def state(self, ref: c.PlayerRef, cmd: c.GetState) -> PlayerView:
        return player_view(self._player(ref))

    async def queue(self, ref: c.PlayerRef, cmd: c.GetQueue) -> QueueView:
        return _queue(self._player(ref))

    async def entry(self, ref: c.PlayerRef, cmd: c.GetEntry) -> EntryView:
        return self.tracks.entry_view(self._player(ref).queue.get(cmd.key))

    async def options(self, ref: c.PlayerRef, cmd: c.GetOptions) -> OptionsView:
        return _options(self._player(ref))

    async def repeat(self, ref: c.PlayerRef, cmd: c.GetRepeat) -> c.RepeatMode:
        return self._player(ref).repeat

    async def context(self, ref: c.PlayerRef, cmd: c.GetContext) -> c.Context:
        return self._player(ref).context

    async def current(self, ref: c.PlayerRef, cmd: c.GetCurrent) -> CurrentView | None:
        return self._player(ref).current_view()

    async def position(self, ref: c.PlayerRef, cmd: c.GetPosition) -> PositionView:
        cur = self._player(ref).current_view()
        if cur is None:
            return PositionView()
        return PositionView(
            duration=cur.entry.track.duration, position=cur.position, remain=cur.remain
        )

    # --- tracks and the queue -------------------------------------------------------------------

    async def search(self, ref: None, cmd: c.Search) -> Found:
        """Resolve a query without queueing; ``first_only`` keeps a search's best match."""
        _, found = await self.tracks.search(cmd.query)
        if cmd.first_only and not found.playlist:
            return Found(tracks=found.tracks[:1])
        return found

    async def load(self, ref: c.PlayerRef, cmd: c.Load) -> Queued:
        """Resolve and queue (a playlist queues every track, anything else its first)."""
        self._player(ref)  # refuse an unknown voice client before a slow resolve
        result, found = await self.tracks.search(cmd.query)
        player = self._player(ref)  # it may have been destroyed meanwhile
        tracks = result.tracks if found.playlist else result.tracks[:1]
        entries: list[Entry[Any]] = [Entry(t) for t in tracks]
        player.enqueue(entries)
        return Queued(entries=tuple(map(self.tracks.entry_view, entries)), as_list=found.playlist)

    async def put(self, ref: c.PlayerRef, cmd: c.Put) -> Queued:
        player = self._player(ref)
        entries: list[Entry[Any]] = list(self.tracks.entries(cmd.tracks))
        player.enqueue(entries, cmd.index)
        return Queued(entries=tuple(map(self.tracks.entry_view, entries)), as_list=cmd.as_list)

    async def update_entry(self, ref: c.PlayerRef, cmd: c.UpdateEntry) -> EntryView:
        player = self._player(ref)
        entry = player.queue.get(cmd.key)
        if cmd.start_position is not None:
            check_start(entry.track, cmd.start_position)
        if cmd.index is not None:
            player.move(entry.tag, cmd.index)
        if cmd.context is not None:
            entry.context = cmd.context
        if cmd.start_position is not None:
            entry.start_position = cmd.start_position
        return self.tracks.entry_view(entry)

    async def remove_entry(self, ref: c.PlayerRef, cmd: c.RemoveEntry) -> Removed:
        player = self._player(ref)
        removed = player.remove(cmd.key)
        return Removed(removed=self.tracks.entry_view(removed), queue=_queue(player))

    async def shuffle(self, ref: c.PlayerRef, cmd: c.Shuffle) -> QueueView:
        player = self._player(ref)
        player.shuffle()
        return _queue(player)

    async def clear(self, ref: c.PlayerRef, cmd: c.Clear) -> QueueView:
        player = self._player(ref)
        player.clear()
        return _queue(player)

    # --- playback -------------------------------------------------------------------------------

    async def skip(self, ref: c.PlayerRef, cmd: c.Skip) -> None:
        self._player(ref).skip(cmd.count)

    async def previous(self, ref: c.PlayerRef, cmd: c.Previous) -> None:
        self._player(ref).previous()

    async def seek(self, ref: c.PlayerRef, cmd: c.Seek) -> None:
        """Seek the current track; a live one or a position past its end is refused (4xx)."""
        self._player(ref).seek(cmd.position)

    async def pause(self, ref: c.PlayerRef, cmd: c.Pause) -> None:
        self._player(ref).pause()

    async def resume(self, ref: c.PlayerRef, cmd: c.Resume) -> None:
        self._player(ref).resume()

    async def stop(self, ref: c.PlayerRef, cmd: c.Stop) -> None:
        self._player(ref).stop()

    async def set_options(self, ref: c.PlayerRef, cmd: c.SetOptions) -> OptionsView:
        """Volume, crossfade, autoplay, filters (the engine refusing a filter graph is
        reported as a ``PlayerError`` event and the previous filters stay)."""
        player = self._player(ref)
        player.set_options(cmd.volume, cmd.crossfade, cmd.autoplay, cmd.filters)
        return _options(player)

    async def set_repeat(self, ref: c.PlayerRef, cmd: c.SetRepeat) -> c.RepeatMode:
        player = self._player(ref)
        player.set_repeat(cmd.mode)
        return player.repeat

    async def set_context(self, ref: c.PlayerRef, cmd: c.SetContext) -> c.Context:
        player = self._player(ref)
        player.context = cmd.context
        return player.context

    async def set_current_context(self, ref: c.PlayerRef, cmd: c.SetCurrentContext) -> CurrentView:
        player = self._player(ref)
        if player.current is None:
            raise Conflict("nothing is playing", code="NOT_PLAYING")
        player.current.entry.context = cmd.context
        view = player.current_view()
        assert view is not None
        return view

    # --- the node -------------------------------------------------------------------------------

    async def status(self, ref: None, cmd: c.GetStatus) -> NodeStatus:
        """Uptime, CPU (means over the last 10 s, ``service/cpu.py``), memory, sessions,
        players, engine figures."""
        mem = psutil.virtual_memory()
        rss = self._process.memory_info().rss
        by_ref = self.sessions.by_ref
        return NodeStatus(
            version=__version__,
            uptime=round(time.monotonic() - self.started, 3),
            cpu=self.cpu.figures(),
            memory={"rss": rss, "system_total": mem.total, "system_used": mem.used},
            sessions=len(by_ref),
            connected_sessions=sum(1 for s in by_ref.values() if s.sink is not None),
            players=self.sessions.players,
            engine=self.engine.stats() if self.engine is not None else {},
            state=self.keeper.status(),
            playing=sum(
                p.state is PlayerState.PLAYING for s in by_ref.values() for p in s.players.values()
            ),
        )

    async def overview(self) -> overview.NodeOverview:
        """The dashboard's view (``service/overview.py``)."""
        return overview.overview(self, await self.status(None, c.GetStatus()))

    async def close(self) -> None:
        """Shut down: the last checkpoint to the state file, then close every connection and
        free every session (what the state file holds survives them)."""
        self.cpu.close()
        await self.keeper.close()
        self.sessions.close_all()

    # --- node restart ---------------------------------------------------------------------------

    def restore(self, snapshot: Snapshot) -> None:
        """Rebuild what the state file held (docs/PERSISTENCE.md), then start keeping: every
        session unattended until its bot identifies again (``vc_timeout`` after the restart,
        or after its connection had closed), every voice client's track re-opened where it was
        and its voice reconnected with its stored credentials once its bot is back
        (``persist.VoiceHold``). Call once the engine and the sources are attached, before the
        fronts accept connections."""
        players: dict[str, list[StoredPlayer]] = {}
        for stored in snapshot.players:
            players.setdefault(stored.session, []).append(stored)
        now = self.clock()
        for key, rec in snapshot.sessions.items():
            timeout = self.config.vc_timeout if rec.resume_timeout is None else rec.resume_timeout
            left = timeout - (now - rec.detached_at) if rec.detached_at is not None else timeout
            if left <= 0 or not rec.resumable:
                continue  # expired while the node was down, or ends with its connection
            ref = c.SessionRef(
                user_id=rec.user_id, shard_id=rec.shard_id, session_id=rec.session_id
            )
            session = self.sessions.adopt(ref, rec.kept, rec.dropped, left, rec.resume_timeout)
            self.keeper.restored(session, rec.detached_at)
            for stored in players.pop(key, []):
                self._restore_player(session, stored, snapshot.alive_at)
            log.info("session %s restored with %d voice clients", key, len(session.players))
        self.keeper.start(lambda: list(self._by_key.values()))
        kept = {persist.session_key(ref) for ref in self.sessions.by_ref}
        for key in snapshot.sessions.keys() - kept:
            self.keeper.forget_session(key)
        for orphans in players.values():  # a player without its session: never resumed
            for stored in orphans:
                self.keeper.forget_player(stored.session, stored.record.guild_id)

    def _restore_player(
        self, session: Session, stored: StoredPlayer, alive_at: float | None
    ) -> None:
        guild_id = GuildId(stored.record.guild_id)
        player = self._new_player(session, guild_id, admit=False)
        session.players[guild_id] = player
        persist.apply_record(player, stored)
        self.held.hold(player.key)  # voice connects once its bot is back (VoiceHold)
        current = stored.record.current
        position = persist.restored_position(stored, alive_at)
        if current is not None and position is None:
            position = current.start_position
        entry = None if current is None else persist.entry_of(current)
        player.resume_from(entry, position or 0.0, stopped=stored.record.stopped)

    # --- players and the engine -----------------------------------------------------------------

    def _new_player(self, session: Session, guild_id: GuildId, admit: bool = True) -> GuildPlayer:
        """A new player, placed on an engine worker by load; ``admit`` False (a player restored
        from the state file) is never refused. Raises ``Unavailable`` (``NODE_AT_CAPACITY``)
        when every worker is at its budget (``engine/admission.py``)."""
        key = next(self._keys)
        if admit and self.engine is not None:
            self.engine.admit(key)

        def emit(event: ev.ControlEvent) -> None:
            session.emit(event)
            overview.voice_link(self.voice_links, key, event)
            found = self._by_key.get(key)
            self.keeper.event(session, None if found is None else found[1], event)

        callbacks = Callbacks(
            emit=emit,
            command=self.send_engine,
            open=lambda req: self._open(key, req),
            describe=self.tracks.entry_view,
            clock=self.clock,
        )
        player = GuildPlayer(
            guild_id,
            key,
            callbacks,
            crossfade=self.config.engine.crossfade,
            max_queue=self.config.control.max_queue,
        )
        self._by_key[key] = (session, player)
        return player

    def _release_player(self, player: GuildPlayer) -> None:
        self.held.forget(player.key)
        self.voice_links.pop(player.key, None)
        found = self._by_key.pop(player.key, None)
        if found is not None:
            self.keeper.player_gone(found[0], player)
        self.hearing.release(player.key)
        self.send_engine(msg.Disconnect(player=player.key))
        if self.engine is not None:
            self.engine.release(player.key)

    def _open(self, key: int, request: OpenRequest) -> None:
        found = self._by_key.get(key)
        with guild_scope(None if found is None else found[1].guild_id):  # the task inherits it
            task = asyncio.get_running_loop().create_task(self._open_task(key, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open_task(self, key: int, request: OpenRequest) -> None:
        try:
            if isinstance(request.entry.track, Claimed):  # a client's description: resolve it
                request.entry.track = await self.tracks.recall(request.entry.track)
            source = await self.tracks.open(request.entry.track)
        except AudionodeError as e:
            found = self._by_key.get(key)
            if found is not None:
                found[1].open_failed(request.serial, e.message)
        else:
            found = self._by_key.get(key)
            if found is not None:
                found[1].opened(request.serial, source)

    def _connect_key(self, key: int) -> None:
        found = self._by_key.get(key)
        if found is not None:
            self._maybe_connect(*found)

    def send_engine(self, command: msg.Command) -> None:
        """Hand a command to the data plane (never blocks)."""
        if self.engine is None:
            raise RuntimeError("NodeService used before an engine was attached")
        self.engine.send(command)

    def _maybe_connect(self, session: Session, player: GuildPlayer) -> None:
        """Both voice updates are known: (re)connect (docs/discord-voice.md §1.2)."""
        v = player.voice
        if not v.complete or player.key in self.held:
            return
        assert v.channel_id and v.session_id and v.token and v.endpoint
        self.send_engine(
            msg.Connect(
                player=player.key,
                guild_id=player.guild_id,
                user_id=session.ref.user_id,
                channel_id=v.channel_id,
                session_id=v.session_id,
                token=v.token,
                endpoint=v.endpoint,
            )
        )

    def on_engine_event(self, event: msg.Event) -> None:
        """Route one engine event to its player (events of destroyed players are dropped)."""
        if self.hearing.on_engine_event(event):
            return
        found = self._by_key.get(event.player)
        if found is not None:
            with guild_scope(found[1].guild_id):
                found[1].on_engine_event(event)

    def on_worker_lost(self, slot: int, keys: set[int]) -> None:
        """An engine worker died: tell each affected bot, then rebuild its player's engine state
        on the replacement worker (connection first, then the track at its last position)."""
        for key in keys:
            found = self._by_key.get(key)
            if found is None:
                continue
            session, player = found
            with guild_scope(player.guild_id):
                log.warning("player %d lost engine worker %d", key, slot)
                self.hearing.engine_lost(key)
                player.engine_lost()
                self._maybe_connect(session, player)
                player.restore()


_READS = (
    c.GetState, c.GetQueue, c.GetEntry, c.GetOptions, c.GetRepeat, c.GetContext, c.GetCurrent,
    c.GetPosition, c.GetStatus, c.Search, c.Ignored, c.Resolve, c.GetSources, c.GetPlayers,
    c.GetFrameStats,
)  # fmt: skip
"""Commands that change nothing the state file holds."""
_QUEUE_EDITS = (c.Load, c.Put, c.UpdateEntry, c.RemoveEntry, c.Shuffle, c.Clear, c.Previous)
"""Commands that may change the queue or its history without a ``QueueChanged`` event."""


def _options(p: GuildPlayer) -> OptionsView:
    return OptionsView(
        autoplay=p.autoplay, volume=p.volume, crossfade=p.crossfade, filters=p.filters
    )


def _queue(p: GuildPlayer) -> QueueView:
    return QueueView(guild_id=p.guild_id, entries=p.queue_entries())


Handler = Callable[[Any, Any], Awaitable[Any]]


def _handlers(s: NodeService) -> dict[type[Any], Handler]:
    """Command type -> the service method that takes it (one method per command)."""
    methods: list[Handler] = [
        s.voice_state, s.voice_server, s.ignore, s.destroy, s.state, s.queue, s.entry,
        s.options, s.repeat, s.context, s.current, s.position, s.search, s.load, s.put,
        s.update_entry, s.remove_entry, s.shuffle, s.clear, s.skip, s.previous, s.seek,
        s.pause, s.resume, s.stop, s.set_options, s.set_repeat, s.set_context,
        s.set_current_context, s.status,
        s.play, s.set_end, s.ensure_player, s.resolve, s.source_names, s.configure_session,
        s.players, s.frame_stats,
        s.hearing.record, s.hearing.add_layer, s.hearing.remove_layer, s.hearing.layers,
        s.hearing.open_vdp, s.hearing.set_vdp_peer, s.hearing.close_vdp,
    ]  # fmt: skip
    return {get_type_hints(m)["cmd"]: m for m in methods}
