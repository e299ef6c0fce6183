"""One player per guild: queue, what plays next, and the events the bot sees.

The player is a sans-I/O state machine of the control plane (its transitions are the table in
``player/table.py``). Inputs are commands (from the service, already validated) and engine
events; outputs go to the callbacks given at construction:

- ``emit(event)``: a typed event of ``control/events.py`` (never a wire format);
- ``command(cmd)``: a typed message for the engine (``engine/messages.py``);
- ``open(request)``: resolve an entry into something the engine can play. The service does it
  asynchronously and answers with :meth:`GuildPlayer.opened` or :meth:`GuildPlayer.open_failed`;
- ``describe(entry)``: the entry as a typed view (the service signs its track token);
- ``clock()``: wall-clock seconds, for positions a client can extrapolate.

Event order for a track (docs/API.md): ``TrackStarted`` when its first frame is sent, then
``PositionChanged`` about every second, then ``TrackEnded`` with its reason. With a crossfade
the next track's ``TrackStarted`` comes before the previous one's ``TrackEnded``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from audionode.control import events as ev
from audionode.control.commands import Filters, RepeatMode
from audionode.control.views import CurrentView, EntryView, PlayerState
from audionode.engine import messages as msg
from audionode.errors import Conflict, Unprocessable
from audionode.player.queue import Entry, Queue, QueueChange
from audionode.player.table import COMMANDS, REFUSALS, TABLE, In, Phase
from audionode.types import ChannelId, GuildId


@dataclass(slots=True)
class VoiceCredentials:
    """What the bot forwarded from its gateway: VOICE_STATE_UPDATE + VOICE_SERVER_UPDATE."""

    session_id: str | None = None
    channel_id: ChannelId | None = None
    token: str | None = None
    endpoint: str | None = None

    @property
    def complete(self) -> bool:
        """True when a voice connection can be attempted (docs/discord-voice.md §1.2)."""
        return bool(self.session_id and self.channel_id and self.token and self.endpoint)


@dataclass(frozen=True, slots=True)
class OpenRequest:
    """Ask the service to open ``entry`` for the engine; ``preload`` = as the next track."""

    serial: int
    entry: Entry[Any]
    preload: bool


@dataclass(slots=True)
class _Playing:
    serial: int
    entry: Entry[Any]
    position: float = 0.0
    """Seconds into the track at :attr:`as_of` (wall clock)."""
    as_of: float = 0.0
    end_reason: ev.EndReason | None = None  # what the player asked for (skip/stop/replace)
    near_end: bool = False  # NeedNext came before its first frame was sent (a short track)
    end_at: float | None = None  # an end set while it plays (checked at position reports)


@dataclass(slots=True)
class Callbacks:
    """Where a player's outputs go (see the module docstring)."""

    emit: Callable[[ev.ControlEvent], None]
    command: Callable[[msg.Command], None]
    open: Callable[[OpenRequest], None]
    describe: Callable[[Entry[Any]], EntryView]
    clock: Callable[[], float]


_SLOTS = ("_opening", "_next")


@dataclass(eq=False)
class GuildPlayer:
    """A guild's voice client as the bot sees it (Discodo's ``DiscordVoiceClient``)."""

    guild_id: GuildId
    key: int
    """Node-unique key of this player in engine messages."""
    cb: Callbacks
    crossfade: float = 0.0
    max_queue: int = 10_000
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    voice: VoiceCredentials = field(default_factory=VoiceCredentials)
    volume: float = 1.0
    filters: Filters | None = None
    autoplay: bool = False
    repeat: RepeatMode = "off"
    context: dict[str, Any] = field(default_factory=dict)
    connected: bool = False
    paused: bool = False
    """The one copy of "paused" in the control plane; the engine is told on every change."""
    phase: Phase = Phase.IDLE
    current: _Playing | None = None
    queue: Queue[Any] = field(init=False)
    _next: _Playing | None = None  # opened or being opened as the follow-up
    _fading: _Playing | None = None  # the previous track, still audible during a crossfade
    _opening: _Playing | None = None  # being opened to play now
    _near_end: bool = False  # the current track is within the preload window of its end
    _filters_before: Filters | None = None  # restored if the engine refuses the new set
    _replacing: bool = False  # a play-now waits to replace the current track
    _serial: int = 0

    def __post_init__(self) -> None:
        self.queue = Queue(self.cb.describe, max_length=self.max_queue)

    # --- the table --------------------------------------------------------------------------

    def _feed(self, inp: In, arg: Any = None) -> None:
        """Run the table's step for ``inp`` (see ``player/table.py``)."""
        step = TABLE.get((self.phase, inp))
        if step is None:
            if inp in COMMANDS:
                code, message = REFUSALS.get(inp, ("CONFLICT", f"cannot {inp.value} now"))
                raise Conflict(message, code=code)
            return  # an event that means nothing in this phase
        for check in step.checks:
            getattr(self, f"_check_{check}")(arg)
        self.phase = step.next
        for effect in step.effects:
            getattr(self, f"_do_{effect}")(arg)
        if self.phase is Phase.IDLE and len(self.queue):
            self._feed(In.HEAD_READY)

    @property
    def has_track(self) -> bool:
        """A track plays or is being opened to play (not stopped, not idle)."""
        return self.phase in (Phase.OPENING, Phase.PLAYING)

    @property
    def state(self) -> PlayerState:
        """What the bot sees (``getState.state``)."""
        if not self.connected:
            return PlayerState.DISCONNECTED
        if self.current is None:
            return PlayerState.STOPPED
        return PlayerState.PAUSED if self.paused else PlayerState.PLAYING

    def _emit(self, event_type: type[ev.ControlEvent], **fields: Any) -> None:
        self.cb.emit(event_type(guild_id=self.guild_id, **fields))

    def _queue_changes(self, changes: list[QueueChange]) -> None:
        for change in changes:
            self._emit(ev.QueueChanged, op=change.op, index=change.at, entries=change.entries)

    def _new_serial(self) -> int:
        self._serial += 1
        return self._serial

    # --- commands -----------------------------------------------------------------------------

    def enqueue(self, entries: list[Entry[Any]], index: int | None = None) -> None:
        """Append (or insert at ``index``) and start playing if idle."""
        self._feed(In.ENQUEUE, (entries, index))

    def remove(self, key: int | str) -> Entry[Any]:
        entry, changes = self.queue.remove(key)
        self._queue_changes(changes)
        self._feed(In.QUEUE_EDITED)
        return entry

    def move(self, key: int | str, to: int) -> None:
        self._queue_changes(self.queue.move(key, to))
        self._feed(In.QUEUE_EDITED)

    def clear(self) -> None:
        self._queue_changes(self.queue.clear())
        self._feed(In.QUEUE_EDITED)

    def shuffle(self) -> None:
        self._queue_changes(self.queue.shuffle())
        self._feed(In.QUEUE_EDITED)

    def skip(self, count: int = 1) -> None:
        """Skip the current track and ``count - 1`` queued ones."""
        self._feed(In.SKIP, count)

    def previous(self) -> None:
        """Play the last played track again; the current one goes back to the queue's head."""
        self._feed(In.PREVIOUS)

    def stop(self) -> None:
        """Stop the current track; the queue stays. ``resume`` (or an enqueue) starts it again."""
        self._feed(In.STOP)

    def play_now(self, entry: Entry[Any], replace: bool = True, paused: bool | None = None) -> bool:
        """Play ``entry`` now, outside the queue; False (nothing changed) when ``replace`` is
        False and a track plays or is being opened. ``paused`` applies to the new track."""
        if not replace and self.has_track:
            return False
        self._feed(In.PLAY_NOW, (entry, paused))
        return True

    def set_end(self, end: float | None) -> None:
        """End the current track (or the one being opened) at ``end`` seconds; None lifts an
        end set while it plays. An end the engine was given with the track can only be moved
        earlier (409 ``END_FIXED``)."""
        if self.current is None:
            if self._opening is not None:
                self._opening.entry.end_position = end
            return
        fixed = self.current.entry.end_position
        if fixed is not None and (end is None or end > fixed):
            raise Conflict(
                f"the current track ends at {fixed:g} s, as given when it started; an end "
                "set while it plays may only come earlier",
                code="END_FIXED",
            )
        self.current.end_at = end
        self._check_end()

    def _check_end(self) -> None:
        cur = self.current
        if cur is None or cur.end_at is None or cur.end_reason is not None:
            return
        if self._position(cur)[0] >= cur.end_at:
            self._feed(In.END_REACHED)

    def pause(self) -> None:
        self._feed(In.PAUSE)

    def resume(self) -> None:
        self._feed(In.RESUME)

    def seek(self, seconds: float) -> None:
        """Seek the current track; a live or unseekable track is refused at once (409)."""
        self._feed(In.SEEK, seconds)

    def set_repeat(self, mode: RepeatMode) -> None:
        self._feed(In.REPEAT, mode)

    def set_options(
        self,
        volume: float | None = None,
        crossfade: float | None = None,
        autoplay: bool | None = None,
        filters: Filters | None = None,
    ) -> None:
        """Apply option changes (validated by the front); the engine hears of each at once."""
        if volume is not None:
            self.volume = volume
            self.cb.command(msg.SetVolume(player=self.key, volume=volume))
        if crossfade is not None:
            self.crossfade = crossfade
            self.cb.command(msg.SetCrossfade(player=self.key, seconds=crossfade))
        if autoplay is not None:
            self.autoplay = autoplay
        if filters is not None:
            self._filters_before, self.filters = self.filters, filters
            self._send_filters()

    def _send_filters(self) -> None:
        if self.filters is not None:
            spec: dict[str, Any] = msgspec.to_builtins(self.filters)
            self.cb.command(msg.SetFilters(player=self.key, filters=spec))

    # --- answers from the service -------------------------------------------------------------

    def opened(self, serial: int, source: Any) -> None:
        """The service opened the entry of ``serial``; hand it to the engine if still wanted."""
        slot = self._slot_of(serial)
        if slot is not None:
            self._feed(In.OPENED, (slot, source))

    def open_failed(self, serial: int, message: str) -> None:
        """Opening (or decoding, before its first frame) failed: report it, drop the entry,
        go on with the next one."""
        slot = self._slot_of(serial)
        if slot is None:
            return
        others = [s for s in _SLOTS if s != slot and getattr(self, s) is not None]
        if slot == "_opening" and self._replacing and self.current is not None:
            self._feed(In.REPLACEMENT_FAILED, (slot, message))
            return
        last = self.current is None and not others
        self._feed(In.LAST_PENDING_FAILED if last else In.PENDING_FAILED, (slot, message))

    def _slot_of(self, serial: int) -> str | None:
        for slot in _SLOTS:
            playing: _Playing | None = getattr(self, slot)
            if playing is not None and playing.serial == serial:
                return slot
        return None

    # --- engine events ------------------------------------------------------------------------

    def on_engine_event(self, event: msg.Event) -> None:
        """Feed one engine event for this player (events about old serials are dropped)."""
        if isinstance(event, msg.TrackStarted):
            slot = self._slot_of(event.serial)
            if slot is not None:
                self._feed(In.OPENING_STARTED if slot == "_opening" else In.NEXT_STARTED, slot)
        elif isinstance(event, msg.TrackEnded):
            self._ended(event.serial, event.reason, event.message)
        elif isinstance(event, msg.TrackPosition):
            if self.current is not None and self.current.serial == event.serial:
                self._feed(In.POSITION, event.position_ms)
                self._check_end()
        elif isinstance(event, msg.NeedNext):
            if self.current is not None and self.current.serial == event.serial:
                self._feed(In.NEAR_END)
            elif self._opening is not None and self._opening.serial == event.serial:
                self._feed(In.OPENING_NEAR_END)
        else:
            self._side_event(event)

    def _ended(self, serial: int, reason: str, message: str | None) -> None:
        fading, current = self._fading, self.current
        if fading is not None and fading.serial == serial:
            self._feed(In.FADING_ENDED, (fading, fading.end_reason or reason, message))
        elif current is not None and current.serial == serial:
            why = current.end_reason or reason
            if why == "finished" and self.repeat == "track" and self._next is None:
                inp = In.CURRENT_REPEATS
            elif self._next is not None or self._opening is not None:
                inp = In.CURRENT_ENDED_FOLLOWED
            else:
                inp = In.CURRENT_ENDED
            self._feed(inp, (current, why, message))
        elif reason == "error":  # the track being opened or preloaded failed in the engine
            self.open_failed(serial, message or "the track could not be decoded")

    def _side_event(self, event: msg.Event) -> None:
        """The voice connection's own two states, and refusals: outside the table."""
        if isinstance(event, msg.VoiceConnected):
            self.connected = True
            self._emit(
                ev.VoiceConnected,
                ssrc=event.ssrc,
                mode=event.mode,
                dave_protocol_version=event.dave_protocol_version,
            )
        elif isinstance(event, msg.VoiceClosed):
            self.connected = event.will_reconnect and self.connected
            self._emit(
                ev.VoiceClosed,
                code=event.code,
                reason=event.reason,
                by_remote=event.by_remote,
                will_reconnect=event.will_reconnect,
            )
        elif isinstance(event, msg.CommandFailed):
            if event.command == "SetFilters":  # the playing filters stay: so does our copy
                self.filters = self._filters_before
            self._emit(ev.PlayerError, message=event.message, command=event.command)

    # --- engine loss ----------------------------------------------------------------------------

    def engine_lost(self) -> None:
        """The engine serving this player died: report it; :meth:`restore` rebuilds its state."""
        self._emit(ev.PlayerError, message="the engine worker serving this player died")
        if self.current is not None:  # where it was when the worker died
            self.current.position, self.current.as_of = self._position(self.current)
        self.connected = False

    def restore(self) -> None:
        """Re-send everything a fresh engine must know, after the Connect: options, then the
        current track from its last known position (the follow-up is preloaded again later)."""
        lost = self.current or self._opening
        self._feed(In.ENGINE_LOST if lost is not None else In.ENGINE_LOST_IDLE, lost)

    # --- checks (may refuse; nothing changed yet) --------------------------------------------

    def _check_room(self, arg: tuple[list[Entry[Any]], int | None]) -> None:
        self.queue.room_for(len(arg[0]))

    def _check_history(self, _: object) -> None:
        if not self.queue.history:
            raise Conflict("no previous track", code="NO_PREVIOUS")

    def _check_seekable(self, seconds: float) -> None:
        assert self.current is not None  # the table only seeks in PLAYING
        track = self.cb.describe(self.current.entry).track
        if not track.seekable:
            what = "a live stream" if track.is_live else "a stream of unknown length"
            raise Conflict(f"the current track is {what} and cannot seek", code="NOT_SEEKABLE")
        if track.duration is not None and seconds > track.duration:
            raise Unprocessable(
                f"seek position {seconds:g} s is past the end of the current track "
                f"({track.duration:g} s)",
                code="SEEK_OUT_OF_RANGE",
            )

    # --- effects ------------------------------------------------------------------------------

    def _do_add(self, arg: tuple[list[Entry[Any]], int | None]) -> None:
        entries, index = arg
        if index is None:
            self._queue_changes(self.queue.extend(entries))
            return
        for offset, entry in enumerate(entries):
            self._queue_changes(self.queue.insert(index + offset, entry))

    def _do_set_repeat(self, mode: RepeatMode) -> None:
        self.repeat = mode

    def _do_refresh_next(self, _: object) -> None:
        """Keep the preloaded follow-up equal to what should follow (once near the end)."""
        if not self._near_end:
            return
        wanted = self._wanted_next()
        if self._next is not None and (wanted is None or self._next.entry is not wanted):
            self._cancel_next()
        if wanted is not None and self._next is None:
            self._next = _Playing(self._new_serial(), wanted)
            self.cb.open(OpenRequest(self._next.serial, wanted, preload=True))

    def _wanted_next(self) -> Entry[Any] | None:
        if self.repeat == "track" and self.current is not None:
            return self.current.entry
        return self.queue[0] if len(self.queue) else None

    def _do_open_head(self, _: object) -> None:
        entries, changes = self.queue.pop_front(1)
        self._queue_changes(changes)
        self._open_now(entries[0])

    def _open_now(self, entry: Entry[Any]) -> None:
        self._cancel_next()
        self._opening = _Playing(self._new_serial(), entry)
        self.cb.open(OpenRequest(self._opening.serial, entry, preload=False))

    def _cancel_next(self) -> None:
        if self._next is not None:
            self._next = None
            self.cb.command(msg.CancelPreload(player=self.key))

    def _do_cancel_next(self, _: object) -> None:
        self._cancel_next()

    def _do_open_given(self, arg: tuple[Entry[Any], bool | None]) -> None:
        entry, paused = arg
        if paused is not None:  # the engine hears it at the hand-over (Play, then Pause)
            self.paused = paused
        self._open_now(entry)

    def _do_mark_replaced(self, _: object) -> None:
        assert self.current is not None
        self.current.end_reason = "replaced"
        self._replacing = True

    def _do_end_replaced(self, _: object) -> None:
        """The track meant to replace the current one failed: the current one goes anyway,
        reported now (the engine's end of it, later, is about a track no longer current)."""
        current, self.current, self._replacing = self.current, None, False
        assert current is not None
        self.cb.command(msg.Stop(player=self.key))
        self._finish(current, "replaced", None)

    def _do_mark_finished(self, _: object) -> None:
        assert self.current is not None
        self.current.end_reason = "finished"

    def _do_drop_skipped(self, count: int) -> None:
        self._queue_changes(self.queue.pop_front(count - 1)[1])

    def _do_mark_skipped(self, _: object) -> None:
        assert self.current is not None
        self.current.end_reason = "skipped"

    def _do_mark_stopped(self, _: object) -> None:
        assert self.current is not None
        self.current.end_reason = "stopped"

    def _do_engine_skip(self, _: object) -> None:
        self.cb.command(msg.Skip(player=self.key))

    def _do_engine_stop(self, _: object) -> None:
        self.cb.command(msg.Stop(player=self.key))

    def _do_open_previous(self, _: object) -> None:
        self._open_now(self.queue.history.pop())

    def _do_requeue_opening(self, _: object) -> None:
        if self._opening is not None:
            self._queue_changes(self.queue.push_front(self._opening.entry))
            self._opening = None

    def _do_requeue_current(self, _: object) -> None:
        assert self.current is not None
        self._queue_changes(self.queue.push_front(self.current.entry))
        self.current.end_reason = "replaced"

    def _do_seek(self, seconds: float) -> None:
        assert self.current is not None
        self.current.position, self.current.as_of = seconds, self.cb.clock()
        self.cb.command(msg.Seek(player=self.key, position_ms=round(seconds * 1000)))

    def _do_pause(self, _: object) -> None:
        if self.current is not None:  # freeze the position where it is now
            self.current.position, self.current.as_of = self._position(self.current)
        self.paused = True
        self.cb.command(msg.Pause(player=self.key))

    def _do_resume(self, _: object) -> None:
        if self.current is not None and self.paused:
            self.current.as_of = self.cb.clock()
        self.paused = False
        self.cb.command(msg.Resume(player=self.key))

    def _do_hand_over(self, arg: tuple[str, Any]) -> None:
        slot, source = arg
        playing: _Playing = getattr(self, slot)
        start = round(playing.entry.start_position * 1000)
        end = playing.entry.end_position
        end_ms = None if end is None else round(end * 1000)
        cls = msg.Play if slot == "_opening" else msg.Preload
        self.cb.command(
            cls(
                player=self.key, serial=playing.serial, source=source, start_ms=start, end_ms=end_ms
            )
        )
        if cls is msg.Play and self.paused:  # the engine's Play resumes; paused stays paused
            self.cb.command(msg.Pause(player=self.key))

    def _do_report_failed(self, arg: tuple[str, str]) -> None:
        slot, message = arg
        playing: _Playing = getattr(self, slot)
        setattr(self, slot, None)
        self._emit(ev.TrackFailed, entry=self.cb.describe(playing.entry), message=message)
        self._queue_changes(self.queue.discard(playing.entry))

    def _do_promote(self, slot: str) -> None:
        playing: _Playing = getattr(self, slot)
        setattr(self, slot, None)
        if slot == "_next" and self.repeat != "track":
            self._queue_changes(self.queue.discard(playing.entry))
        previous, self.current = self.current, playing
        playing.position, playing.as_of = playing.entry.start_position, self.cb.clock()
        self._near_end = self._replacing = False
        view = self.current_view()
        assert view is not None
        self._emit(ev.TrackStarted, current=view)
        if previous is not None:  # crossfading or replaced: it ends when the engine says so
            self._fading = previous
        if playing.near_end:
            self._do_near_end(None)

    def _do_near_end(self, _: object) -> None:
        """The current track ends within the preload window: prepare what follows."""
        self._near_end = True
        if self._wanted_next() is None and self.repeat == "off":
            self._emit(ev.NextWanted, current=self.current_view(), autoplay=self.autoplay)
        self._do_refresh_next(None)

    def _do_mark_opening_near_end(self, _: object) -> None:
        assert self._opening is not None
        self._opening.near_end = True  # acted on when its first frame is sent

    def _do_position(self, position_ms: int) -> None:
        assert self.current is not None
        now = self.cb.clock()
        self.current.position, self.current.as_of = position_ms / 1000, now
        self._emit(ev.PositionChanged, position=position_ms / 1000, as_of=now, state=self.state)

    def _do_finish_current(self, arg: tuple[_Playing, ev.EndReason, str | None]) -> None:
        self.current = None
        self._replacing = False
        self._finish(*arg)

    def _do_finish_fading(self, arg: tuple[_Playing, ev.EndReason, str | None]) -> None:
        self._fading = None
        self._finish(*arg)

    def _do_reopen_finished(self, arg: tuple[_Playing, ev.EndReason, str | None]) -> None:
        self._open_now(arg[0].entry)

    def _finish(self, playing: _Playing, reason: ev.EndReason, message: str | None) -> None:
        view = self.cb.describe(playing.entry)
        self._emit(ev.TrackEnded, entry=view, reason=reason, message=message)
        if reason == "error":
            self._emit(ev.TrackFailed, entry=view, message=message or "decode error")
        if reason != "replaced":
            self.queue.history.append(playing.entry)
        room = len(self.queue) < self.queue.max_length
        if self.repeat == "queue" and reason in ("finished", "skipped") and room:
            self._queue_changes(self.queue.extend([playing.entry]))

    def _do_forget_tracks(self, _: object) -> None:
        self.current = self._fading = self._next = self._opening = None
        self._near_end = False

    def _do_resend_options(self, _: object) -> None:
        self.cb.command(msg.SetVolume(player=self.key, volume=self.volume))
        self.cb.command(msg.SetCrossfade(player=self.key, seconds=self.crossfade))
        self._send_filters()
        if self.paused:
            self.cb.command(msg.Pause(player=self.key))

    def _do_reopen_lost(self, lost: _Playing) -> None:
        lost.entry.start_position = self._position(lost)[0]
        self._do_forget_tracks(None)
        self._open_now(lost.entry)

    # --- views --------------------------------------------------------------------------------

    def _position(self, playing: _Playing) -> tuple[float, float]:
        """``(position, as_of)`` now: extrapolated while the track is audibly playing."""
        now = self.cb.clock()
        if playing is not self.current or self.paused or not self.connected:
            return playing.position, now
        position = playing.position + max(0.0, now - playing.as_of)
        duration = self.cb.describe(playing.entry).track.duration
        return (min(position, duration) if duration is not None else position), now

    def current_view(self) -> CurrentView | None:
        """The current track with its position now (``None`` when nothing plays)."""
        if self.current is None:
            return None
        position, as_of = self._position(self.current)
        entry = self.cb.describe(self.current.entry)
        return CurrentView(
            entry=entry, position=round(position, 3), as_of=as_of, paused=self.paused
        )

    def opening_view(self) -> EntryView | None:
        """The entry being opened to play now (before its first frame is sent)."""
        return None if self._opening is None else self.cb.describe(self._opening.entry)

    def queue_entries(self) -> tuple[EntryView, ...]:
        return self.queue.describe()
