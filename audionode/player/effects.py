"""The player's checks and effects: what each step of the table (``player/table.py``) does.

:class:`Effects` is the half of :class:`audionode.player.player.GuildPlayer` that the table
names (``_check_<name>`` may refuse a command before anything changes; ``_do_<name>`` changes
state and emits typed events and engine commands), with the helpers and views they share.
The other half (``player.py``) classifies inputs and feeds the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from audionode.control import events as ev
from audionode.control.commands import Filters, RepeatMode
from audionode.control.views import CurrentView, EntryView, PlayerState
from audionode.engine import messages as msg
from audionode.errors import Conflict, Unprocessable
from audionode.player.queue import Entry, Queue, QueueChange
from audionode.types import GuildId


@dataclass(frozen=True, slots=True)
class OpenRequest:
    """Ask the service to open ``entry`` for the engine; ``preload`` = as the next track."""

    serial: int
    entry: Entry[Any]
    preload: bool


@dataclass(slots=True)
class Playing:
    serial: int
    entry: Entry[Any]
    position: float = 0.0
    """Seconds into the track at :attr:`as_of` (wall clock)."""
    as_of: float = 0.0
    end_reason: ev.EndReason | None = None  # what the player asked for (skip/stop/replace)
    near_end: bool = False  # NeedNext came before its first frame was sent (a short track)
    end_at: float | None = None  # an end set while it plays (checked at position reports)
    start: float | None = None
    """Where it starts when not at its entry's ``start_position``: re-opened where it was,
    after an engine or node restart. Such a track is shown as current while it opens."""
    handed: bool = False
    """Its ``Play`` went to the engine (a seek while it opens must then reach the engine)."""

    @property
    def start_at(self) -> float:
        return self.entry.start_position if self.start is None else self.start


@dataclass(slots=True)
class Callbacks:
    """Where a player's outputs go (see the module docstring)."""

    emit: Callable[[ev.ControlEvent], None]
    command: Callable[[msg.Command], None]
    open: Callable[[OpenRequest], None]
    describe: Callable[[Entry[Any]], EntryView]
    clock: Callable[[], float]


class Effects:
    """Checks, effects and views of a guild player (the state they use is declared here and
    held by :class:`~audionode.player.player.GuildPlayer`)."""

    guild_id: GuildId
    key: int
    cb: Callbacks
    crossfade: float
    volume: float
    filters: Filters | None
    autoplay: bool
    repeat: RepeatMode
    connected: bool
    paused: bool
    current: Playing | None
    queue: Queue[Any]
    _next: Playing | None
    _fading: Playing | None
    _opening: Playing | None
    _near_end: bool
    _unwanted: Entry[Any] | None
    """The entry whose preload as the follow-up failed while the current track plays: not
    preloaded again until another track starts (on repeat track it is the current entry, and
    re-preloading an unreachable source at once was a loop burning CPU until the track's end;
    the repeat itself still tries it once more when the track ends)."""
    _replacing: bool
    _serial: int

    @property
    def state(self) -> PlayerState:
        """What the bot sees (``getState.state``)."""
        if not self.connected:
            return PlayerState.DISCONNECTED
        if self._shown() is None:
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

    def _send_filters(self) -> None:
        if self.filters is not None:
            spec: dict[str, Any] = msgspec.to_builtins(self.filters)
            self.cb.command(msg.SetFilters(player=self.key, filters=spec))

    # --- checks (may refuse; nothing changed yet) --------------------------------------------

    def _check_room(self, arg: tuple[list[Entry[Any]], int | None]) -> None:
        self.queue.room_for(len(arg[0]))

    def _check_history(self, _: object) -> None:
        if not self.queue.history:
            raise Conflict("no previous track", code="NO_PREVIOUS")

    def _check_seekable(self, seconds: float) -> None:
        assert self.current is not None  # the table only seeks in PLAYING
        self._check_seek_in(self.current, seconds)

    def _check_seekable_reopened(self, seconds: float) -> None:
        """A track re-opened where it was (after an engine or node restart) is shown as
        current while it opens, and a player restored paused stays opening until resumed:
        it can be seeked like the current one. Any other opening track cannot."""
        opening = self._opening
        if opening is None or opening.start is None:
            raise Conflict("nothing is playing", code="NOT_PLAYING")  # as table.REFUSALS
        self._check_seek_in(opening, seconds)

    def _check_seek_in(self, playing: Playing, seconds: float) -> None:
        track = self.cb.describe(playing.entry).track
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
        if wanted is not None and wanted is self._unwanted:
            wanted = None
        if self._next is not None and (wanted is None or self._next.entry is not wanted):
            self._cancel_next()
        if wanted is not None and self._next is None:
            self._next = Playing(self._new_serial(), wanted)
            self.cb.open(OpenRequest(self._next.serial, wanted, preload=True))

    def _wanted_next(self) -> Entry[Any] | None:
        if self.repeat == "track" and self.current is not None:
            return self.current.entry
        return self.queue[0] if len(self.queue) else None

    def _do_open_head(self, _: object) -> None:
        entries, changes = self.queue.pop_front(1)
        self._queue_changes(changes)
        self._open_now(entries[0])

    def _open_now(self, entry: Entry[Any], start: float | None = None) -> None:
        self._cancel_next()
        self._opening = Playing(self._new_serial(), entry, position=start or 0.0, start=start)
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

    def _do_seek_reopened(self, seconds: float) -> None:
        opening = self._opening
        assert opening is not None
        opening.start = opening.position = seconds
        opening.as_of = self.cb.clock()
        if opening.handed:  # else its Play starts there
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
        playing: Playing = getattr(self, slot)
        start = round(playing.start_at * 1000)
        end = playing.entry.end_position
        end_ms = None if end is None else round(end * 1000)
        cls = msg.Play if slot == "_opening" else msg.Preload
        playing.handed = True
        self.cb.command(
            cls(
                player=self.key, serial=playing.serial, source=source, start_ms=start, end_ms=end_ms
            )
        )
        if cls is msg.Play and self.paused:  # the engine's Play resumes; paused stays paused
            self.cb.command(msg.Pause(player=self.key))

    def _do_report_failed(self, arg: tuple[str, str]) -> None:
        slot, message = arg
        playing: Playing = getattr(self, slot)
        setattr(self, slot, None)
        if slot == "_next":
            self._unwanted = playing.entry
        self._emit(ev.TrackFailed, entry=self.cb.describe(playing.entry), message=message)
        self._queue_changes(self.queue.discard(playing.entry))

    def _do_promote(self, slot: str) -> None:
        playing: Playing = getattr(self, slot)
        setattr(self, slot, None)
        if slot == "_next" and self.repeat != "track":
            self._queue_changes(self.queue.discard(playing.entry))
        previous, self.current = self.current, playing
        playing.position, playing.as_of = playing.start_at, self.cb.clock()
        self._near_end = self._replacing = False
        self._unwanted = None
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

    def _do_mark_pending_near_end(self, slot: str) -> None:
        playing: Playing = getattr(self, slot)
        playing.near_end = True  # acted on when its first frame is sent

    def _do_position(self, arg: tuple[int, int]) -> None:
        """``(position_ms, held_ms)``: the playhead was there ``held_ms`` ago (the report
        waited in the engine worker, ``engine/wire.py``)."""
        assert self.current is not None
        position_ms, held_ms = arg
        at = self.cb.clock() - held_ms / 1000
        self.current.position, self.current.as_of = position_ms / 1000, at
        self._emit(ev.PositionChanged, position=position_ms / 1000, as_of=at, state=self.state)

    def _do_finish_current(self, arg: tuple[Playing, ev.EndReason, str | None]) -> None:
        self.current = None
        self._replacing = False
        self._finish(*arg)

    def _do_finish_fading(self, arg: tuple[Playing, ev.EndReason, str | None]) -> None:
        self._fading = None
        self._finish(*arg)

    def _do_reopen_finished(self, arg: tuple[Playing, ev.EndReason, str | None]) -> None:
        self._open_now(arg[0].entry)

    def _finish(self, playing: Playing, reason: ev.EndReason, message: str | None) -> None:
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

    def _do_reopen_lost(self, lost: Playing) -> None:
        start = self._position(lost)[0]  # the entry keeps its own start_position
        self._do_forget_tracks(None)
        self._open_now(lost.entry, start)

    # --- views --------------------------------------------------------------------------------

    def _shown(self) -> Playing | None:
        """The track the bot sees as current: the current one, or one re-opened where it was
        (it was current before the restart and, to the bot, still is)."""
        if self.current is None and self._opening is not None and self._opening.start is not None:
            return self._opening
        return self.current

    def _elapsed(self, playing: Playing, now: float) -> float:
        """Seconds into ``playing`` now, extrapolated while audible (not clamped to its end)."""
        if playing is not self.current or self.paused or not self.connected:
            return playing.position
        return playing.position + max(0.0, now - playing.as_of)

    def _position(self, playing: Playing) -> tuple[float, float]:
        """``(position, as_of)`` now: extrapolated while the track is audibly playing."""
        now = self.cb.clock()
        position = self._elapsed(playing, now)
        if position == playing.position:
            return position, now
        duration = self.cb.describe(playing.entry).track.duration
        return (min(position, duration) if duration is not None else position), now

    def current_view(self) -> CurrentView | None:
        """The current track with its position now (``None`` when nothing plays)."""
        shown = self._shown()
        if shown is None:
            return None
        position, as_of = self._position(shown)
        entry = self.cb.describe(shown.entry)
        return CurrentView(
            entry=entry, position=round(position, 3), as_of=as_of, paused=self.paused
        )
