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
from dataclasses import dataclass, field
from typing import Any

from audionode.control import events as ev
from audionode.control.commands import Filters, RepeatMode
from audionode.control.views import EntryView
from audionode.engine import messages as msg
from audionode.errors import Conflict
from audionode.player.effects import Callbacks as Callbacks
from audionode.player.effects import Effects, Playing
from audionode.player.effects import OpenRequest as OpenRequest
from audionode.player.queue import Entry, Queue
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


_SLOTS = ("_opening", "_next")


@dataclass(eq=False)
class GuildPlayer(Effects):
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
    voice_mode: str | None = None
    """The encryption mode of the last voice connection (``/metrics``)."""
    dave_version: int = 0
    """The DAVE protocol version of the last voice connection (0: none)."""
    paused: bool = False
    """The one copy of "paused" in the control plane; the engine is told on every change."""
    phase: Phase = Phase.IDLE
    current: Playing | None = None
    queue: Queue[Any] = field(init=False)
    _next: Playing | None = None  # opened or being opened as the follow-up
    _fading: Playing | None = None  # the previous track, still audible during a crossfade
    _opening: Playing | None = None  # being opened to play now
    _near_end: bool = False  # the current track is within the preload window of its end
    _unwanted: Entry[Any] | None = None  # its preload failed during this current track
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
            playing: Playing | None = getattr(self, slot)
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
                self._feed(In.POSITION, (event.position_ms, event.held_ms))
                self._check_end()
        elif isinstance(event, msg.NeedNext):
            if self.current is not None and self.current.serial == event.serial:
                self._feed(In.NEAR_END)
            elif (slot := self._slot_of(event.serial)) is not None:
                self._feed(In.PENDING_NEAR_END, slot)  # a short track, not started yet
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
            self.voice_mode, self.dave_version = event.mode, event.dave_protocol_version
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

    def opening_view(self) -> EntryView | None:
        """The entry being opened to play now (before its first frame is sent)."""
        return None if self._opening is None else self.cb.describe(self._opening.entry)

    # --- node restart (service/persist.py) ------------------------------------------------------

    def resumable(self) -> tuple[Entry[Any], float] | None:
        """What a restart would resume: the current (or opening) entry and its position now
        (extrapolated, not clamped to the track's end), or None."""
        if self._opening is not None:  # it replaces whatever is current
            return self._opening.entry, self._opening.start_at
        if self.current is None:
            return None
        return self.current.entry, self._elapsed(self.current, self.cb.clock())

    @property
    def advancing(self) -> bool:
        """:meth:`resumable`'s position moves with the wall clock (the current track plays,
        unpaused, with voice): ``position + (later - now)`` is where it will be ``later``."""
        # the condition under which _elapsed extrapolates the current track
        return (
            self._opening is None
            and self.current is not None
            and not self.paused
            and self.connected
        )

    def resume_from(self, entry: Entry[Any] | None, position: float, stopped: bool) -> None:
        """Rebuild after a node restart. The service has set the stored state (options, queue,
        paused, voice) on this fresh player and sent Connect; as after an engine loss, the
        engine is given the options, then ``entry`` from ``position`` (paused stays paused)."""
        if stopped:
            self.phase = Phase.STOPPED
        elif entry is not None:
            self.current = Playing(self._new_serial(), entry, position, self.cb.clock())
            self.phase = Phase.PLAYING
        self.restore()

    def queue_entries(self) -> tuple[EntryView, ...]:
        return self.queue.describe()
