"""One player per guild: queue, what plays next, and the events the bot sees.

The player is a sans-I/O state machine of the control plane. Inputs are control calls (from
REST and the control socket, through NodeService) and engine events; outputs go to the
callbacks given at construction:

- ``emit(op, d)``: an event for the bot (``QUEUE_EVENT``, ``SOURCE_START``...), ``d`` always
  carries ``guild_id``;
- ``command(cmd)``: a typed message for the engine (``engine/messages.py``);
- ``open(request)``: resolve an entry into something the engine can play. The service does it
  asynchronously and answers with :meth:`GuildPlayer.track_opened` or
  :meth:`GuildPlayer.track_failed`.

Event order for a track (docs/API.md): ``SOURCE_START`` when its first frame is sent, then
``PLAYER_UPDATE`` every few seconds, then ``SOURCE_STOP`` with its reason. With a crossfade the
next track's ``SOURCE_START`` comes before the previous one's ``SOURCE_STOP``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from audionode.engine import messages as msg
from audionode.errors import Conflict
from audionode.player.queue import Entry, Queue, QueueEvent
from audionode.player.state import PlayerState
from audionode.protocol.discodo import snowflake
from audionode.types import ChannelId, GuildId

RepeatMode = Literal["off", "track", "queue"]


@dataclass(slots=True)
class VoiceCredentials:
    """What the bot forwarded from its gateway: VOICE_STATE_UPDATE + VOICE_SERVER_UPDATE."""

    session_id: str | None = None
    channel_id: ChannelId | None = None
    token: str | None = None
    endpoint: str | None = None

    @property
    def complete(self) -> bool:
        """True when a voice connection can be attempted (discord-voice.md §1.2)."""
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
    position_ms: int = 0
    end_reason: str | None = None  # what the player asked for (skip/previous/stop)
    near_end: bool = False  # NeedNext came before its first frame was sent (a short track)


@dataclass(slots=True)
class Callbacks:
    """Where a player's outputs go (see the module docstring)."""

    emit: Callable[[str, dict[str, Any]], None]
    command: Callable[[msg.Command], None]
    open: Callable[[OpenRequest], None]
    describe: Callable[[Entry[Any]], dict[str, Any]]


@dataclass(eq=False)
class GuildPlayer:
    """A guild's voice client as the bot sees it (Discodo's ``DiscordVoiceClient``)."""

    guild_id: GuildId
    key: int
    """Node-unique key of this player in engine messages."""
    cb: Callbacks
    crossfade: float = 0.0
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    voice: VoiceCredentials = field(default_factory=VoiceCredentials)
    volume: float = 1.0
    filters: dict[str, Any] = field(default_factory=dict)
    autoplay: bool = False
    repeat: RepeatMode = "off"
    context: dict[str, Any] = field(default_factory=dict)
    connected: bool = False
    paused: bool = False
    stopped: bool = False
    current: _Playing | None = None
    queue: Queue[Any] = field(init=False)
    _next: _Playing | None = None  # opened or being opened as the follow-up
    _fading: _Playing | None = None  # the previous track, still audible during a crossfade
    _opening: _Playing | None = None  # being opened to play now
    _near_end: bool = False
    _serial: int = 0

    def __post_init__(self) -> None:
        self.queue = Queue(self.cb.describe)

    # --- state --------------------------------------------------------------------------

    @property
    def state(self) -> PlayerState:
        if not self.connected:
            return PlayerState.DISCONNECTED
        if self.current is None:
            return PlayerState.STOPPED
        return PlayerState.PAUSED if self.paused else PlayerState.PLAYING

    def _emit(self, op: str, **d: Any) -> None:
        self.cb.emit(op, {"guild_id": snowflake(self.guild_id), **d})

    def _queue_events(self, events: list[QueueEvent]) -> None:
        for name, args in events:
            self._emit("QUEUE_EVENT", name=name, args=args)

    def _new_serial(self) -> int:
        self._serial += 1
        return self._serial

    def describe_current(self) -> dict[str, Any] | None:
        if self.current is None:
            return None
        d = self.cb.describe(self.current.entry)
        d["position"] = self.current.position_ms / 1000
        return d

    # --- queue mutations (each followed by _advance) ---------------------------------------

    def enqueue(self, entries: list[Entry[Any]], index: int | None = None) -> None:
        """Append (or insert at ``index``) and start playing if idle."""
        if index is None:
            self._queue_events(self.queue.extend(entries))
        else:
            for offset, entry in enumerate(entries):
                self._queue_events(self.queue.insert(index + offset, entry))
        self.stopped = False
        self._advance()

    def remove(self, key: int | str) -> Entry[Any]:
        entry, events = self.queue.remove(key)
        self._queue_events(events)
        self._advance()
        return entry

    def move(self, key: int | str, to: int) -> None:
        self._queue_events(self.queue.move(key, to))
        self._advance()

    def clear(self) -> None:
        self._queue_events(self.queue.clear())
        self._advance()

    def shuffle(self) -> None:
        self._queue_events(self.queue.shuffle())
        self._advance()

    # --- playback control ----------------------------------------------------------------

    def skip(self, count: int = 1) -> None:
        """Skip the current track and ``count - 1`` queued ones."""
        if self.current is None:
            raise Conflict("nothing is playing", code="NOT_PLAYING")
        _, events = self.queue.pop_front(count - 1)
        self._queue_events(events)
        self.current.end_reason = "skipped"
        self._advance()  # the preload may have to change after dropping entries
        self.cb.command(msg.Skip(player=self.key))

    def previous(self) -> None:
        """Play the last played track again; the current one goes back to the queue's head."""
        if not self.queue.history:
            raise Conflict("no previous track", code="NO_PREVIOUS")
        entry = self.queue.history.pop()
        if self.current is not None:
            self._queue_events(self.queue.push_front(self.current.entry))
            self.current.end_reason = "replaced"
        self._open_now(entry)

    def stop(self) -> None:
        """Stop the current track; the queue stays. ``resume`` (or an enqueue) starts it again."""
        self.stopped = True
        self._cancel_next()
        if self.current is not None:
            self.current.end_reason = "stopped"
            self.cb.command(msg.Stop(player=self.key))

    def pause(self) -> None:
        self.paused = True
        self.cb.command(msg.Pause(player=self.key))

    def resume(self) -> None:
        self.paused = False
        self.stopped = False
        self.cb.command(msg.Resume(player=self.key))
        self._advance()

    def seek(self, seconds: float) -> None:
        if self.current is None:
            raise Conflict("nothing is playing", code="NOT_PLAYING")
        self.current.position_ms = int(seconds * 1000)
        self.cb.command(msg.Seek(player=self.key, position_ms=int(seconds * 1000)))

    def set_options(
        self,
        volume: float | None,
        crossfade: float | None,
        autoplay: bool | None,
        filters: dict[str, Any] | None,
    ) -> None:
        """Apply option changes; filters must have been validated by the caller."""
        if volume is not None:
            self.volume = volume
            self.cb.command(msg.SetVolume(player=self.key, volume=volume))
        if crossfade is not None:
            self.crossfade = crossfade
            self.cb.command(msg.SetCrossfade(player=self.key, seconds=crossfade))
        if autoplay is not None:
            self.autoplay = autoplay
        if filters is not None:
            self.filters = filters
            self.cb.command(msg.SetFilters(player=self.key, filters=filters))

    def set_repeat(self, mode: RepeatMode) -> None:
        self.repeat = mode
        self._advance()

    # --- what plays next ------------------------------------------------------------------

    def _wanted_next(self) -> Entry[Any] | None:
        if self.repeat == "track" and self.current is not None:
            return self.current.entry
        return self.queue[0] if len(self.queue) else None

    def _advance(self) -> None:
        """Start the head if idle, or keep the preloaded follow-up equal to what should follow."""
        if self.current is None and self._opening is None and self._next is None:
            if not self.stopped and len(self.queue):
                entries, events = self.queue.pop_front(1)
                self._queue_events(events)
                self._open_now(entries[0])
            return
        if not self._near_end:
            return
        wanted = self._wanted_next()
        if self._next is not None and (wanted is None or self._next.entry is not wanted):
            self._cancel_next()
        if wanted is not None and self._next is None:
            self._next = _Playing(self._new_serial(), wanted)
            self.cb.open(OpenRequest(self._next.serial, wanted, preload=True))

    def _open_now(self, entry: Entry[Any]) -> None:
        self._cancel_next()
        self._opening = _Playing(self._new_serial(), entry)
        self.cb.open(OpenRequest(self._opening.serial, entry, preload=False))

    def _cancel_next(self) -> None:
        if self._next is not None:
            self._next = None
            self.cb.command(msg.CancelPreload(player=self.key))

    # --- answers from the service ------------------------------------------------------------

    def track_opened(self, serial: int, source: Any) -> None:
        """The service opened the entry of ``serial``; hand it to the engine if still wanted."""
        for playing, cls in ((self._opening, msg.Play), (self._next, msg.Preload)):
            if playing is not None and playing.serial == serial:
                start = int(playing.entry.start_position * 1000)
                self.cb.command(cls(player=self.key, serial=serial, source=source, start_ms=start))
                return

    def track_failed(self, serial: int, message: str) -> None:
        """Opening failed: report it, drop the entry, go on with the next one."""
        for slot in ("_opening", "_next"):
            playing: _Playing | None = getattr(self, slot)
            if playing is not None and playing.serial == serial:
                setattr(self, slot, None)
                source = self.cb.describe(playing.entry)
                self._emit("SOURCE_TRACEBACK", source=source, traceback=message)
                if playing.entry in self.queue:
                    self._queue_events(self.queue.remove(playing.entry.tag)[1])
                self._advance()
                return

    # --- engine events ---------------------------------------------------------------------

    def on_engine_event(self, event: msg.Event) -> None:
        """Feed one engine event for this player."""
        if isinstance(event, msg.TrackStarted):
            self._started(event.serial)
        elif isinstance(event, msg.TrackEnded):
            self._ended(event.serial, event.reason, event.message)
        elif isinstance(event, msg.TrackPosition):
            if self.current is not None and self.current.serial == event.serial:
                self.current.position_ms = event.position_ms
                position = event.position_ms / 1000
                self._emit("PLAYER_UPDATE", position=position, state=self.state.name)
        elif isinstance(event, msg.NeedNext):
            if self.current is not None and self.current.serial == event.serial:
                self._need_next()
            else:  # a short track: acted on when its first frame is sent
                for waiting in (self._opening, self._next):
                    if waiting is not None and waiting.serial == event.serial:
                        waiting.near_end = True
        else:
            self._voice_event(event)

    def _need_next(self) -> None:
        """The current track ends within the preload window: prepare what follows."""
        self._near_end = True
        if self._wanted_next() is None and self.repeat == "off":
            current = self.describe_current()
            self._emit("REQUIRE_NEXT_SOURCE", current=current, autoplay=self.autoplay)
        self._advance()

    def _voice_event(self, event: msg.Event) -> None:
        if isinstance(event, msg.VoiceConnected):
            self.connected = True
            self._emit(
                "VOICE_CONNECTED",
                ssrc=event.ssrc,
                mode=event.mode,
                dave_protocol_version=event.dave_protocol_version,
            )
        elif isinstance(event, msg.VoiceClosed):
            self.connected = event.will_reconnect and self.connected
            self._emit(
                "VOICE_CLOSED",
                code=event.code,
                reason=event.reason,
                by_remote=event.by_remote,
                will_reconnect=event.will_reconnect,
            )
        elif isinstance(event, msg.CommandFailed):
            self._emit("PLAYER_TRACEBACK", traceback=f"{event.command}: {event.message}")

    def _started(self, serial: int) -> None:
        for slot in ("_opening", "_next"):
            playing: _Playing | None = getattr(self, slot)
            if playing is not None and playing.serial == serial:
                setattr(self, slot, None)
                if slot == "_next" and self.repeat != "track" and playing.entry in self.queue:
                    self._queue_events(self.queue.remove(playing.entry.tag)[1])
                previous, self.current = self.current, playing
                self._near_end = False
                self._emit("SOURCE_START", source=self.describe_current())
                if previous is not None:  # crossfading: it ends when the engine says so
                    self._fading = previous
                if playing.near_end:
                    self._need_next()
                return

    def _ended(self, serial: int, reason: str, message: str | None) -> None:
        if self._fading is not None and self._fading.serial == serial:
            playing, self._fading = self._fading, None
            self._finish(playing, playing.end_reason or reason, message)
        elif self.current is not None and self.current.serial == serial:
            playing, self.current = self.current, None
            self._finish(playing, playing.end_reason or reason, message)
            self._advance()
        elif reason == "error":  # the track being opened or preloaded failed in the engine
            self.track_failed(serial, message or "the track could not be decoded")

    def _finish(self, playing: _Playing, reason: str, message: str | None) -> None:
        source = self.cb.describe(playing.entry)
        extra = {"message": message} if message else {}
        self._emit("SOURCE_STOP", source=source, reason=reason, **extra)
        if reason == "error":
            self._emit("SOURCE_TRACEBACK", source=source, traceback=message or "decode error")
        if reason != "replaced":
            self.queue.history.append(playing.entry)
        if self.repeat == "queue" and reason in ("finished", "skipped"):
            self._queue_events(self.queue.extend([playing.entry]))
        elif self.repeat == "track" and reason == "finished" and self._next is None:
            self._open_now(playing.entry)

    # --- engine loss ------------------------------------------------------------------------

    def engine_lost(self) -> None:
        """The engine serving this player died: report it; :meth:`restore` rebuilds its state."""
        self._emit("PLAYER_TRACEBACK", traceback="the engine worker serving this player died")
        self.connected = False

    def restore(self) -> None:
        """Re-send everything a fresh engine must know, after the Connect: options, then the
        current track from its last known position (the follow-up is preloaded again later)."""
        lost = self.current or self._opening
        self.current = self._fading = self._next = self._opening = None
        self._near_end = False
        self.set_options(self.volume, self.crossfade, None, self.filters)
        if self.paused:
            self.cb.command(msg.Pause(player=self.key))
        if lost is not None:
            lost.entry.start_position = lost.position_ms / 1000
            self._open_now(lost.entry)
        else:
            self._advance()

    # --- replies -------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The ``getState`` reply (discodo-reference.md §2.3); never the voice token."""
        cur = self.describe_current()
        duration = cur.get("duration") if cur else None
        position = cur["position"] if cur else None
        remain = None if duration is None or position is None else max(0.0, duration - position)
        return {
            "id": self.id,
            "guild_id": snowflake(self.guild_id),
            "channel_id": snowflake(self.voice.channel_id),
            "state": int(self.state),
            "state_name": self.state.name,
            "current": cur,
            "duration": duration,
            "position": position,
            "remain": remain,
            "remainQueue": len(self.queue),
            "repeat": self.repeat,
            "options": self.options(),
            "context": self.context,
            "voice": {
                "session_id": self.voice.session_id,
                "endpoint": self.voice.endpoint,
                "has_token": self.voice.token is not None,
            },
        }

    def options(self) -> dict[str, Any]:
        """The ``GET /options`` reply."""
        return {
            "autoplay": self.autoplay,
            "volume": self.volume,
            "crossfade": self.crossfade,
            "filter": self.filters,
        }

    def describe_queue(self) -> dict[str, Any]:
        """The ``getQueue`` reply."""
        return {"guild_id": snowflake(self.guild_id), "entries": self.queue.describe()}
