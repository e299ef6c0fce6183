"""A bot's session: identity, players, and events kept while no connection is attached.

Sessions are keyed by ``(user_id, shard_id)`` (seed 002 "Resumed"). A session outlives its
connection for ``vc_timeout`` seconds; meanwhile its events are kept, bounded by count
(``max_kept_events``) and by encoded size (``control.max_kept_bytes``), oldest dropped first,
and handed to the next connection that identifies with the same key. Events are kept typed
(``control/events.py``): whichever front door resumes the session maps them to its own wire.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from audionode.control.commands import SessionRef
from audionode.control.events import CloseReason, ControlEvent
from audionode.player.player import GuildPlayer
from audionode.types import GuildId

_size_encoder = msgspec.json.Encoder()


class EventSink(Protocol):
    """Where a session's events go: one per attached front-door connection."""

    def deliver(self, event: ControlEvent) -> bool:
        """Queue an event without waiting; False when the sink is closed (the event is kept)."""

    def close(self, reason: CloseReason) -> None:
        """Ask the connection to close; pending frames are flushed first."""


def event_size(event: ControlEvent) -> int:
    """The event's encoded size in bytes (the measure of the kept-events bound)."""
    return len(_size_encoder.encode(event))


@dataclass(eq=False)
class Session:
    """State of one identified bot (user, shard)."""

    ref: SessionRef
    max_kept: int
    max_kept_bytes: int
    players: dict[GuildId, GuildPlayer] = field(default_factory=dict)
    sink: EventSink | None = None
    kept: deque[tuple[ControlEvent, int]] = field(default_factory=deque)
    kept_bytes: int = 0
    dropped: int = 0
    expiry: asyncio.TimerHandle | None = None
    resumable: bool = True
    """False: the session ends (its voice clients destroyed) as its connection closes."""
    resume_timeout: float | None = None
    """Seconds it outlives its connection; None: ``vc_timeout``."""

    def emit(self, event: ControlEvent) -> None:
        """Send an event now, or keep it for the next connection."""
        if self.sink is not None and self.sink.deliver(event):
            return
        self._keep(event)
        self._trim()

    def _keep(self, event: ControlEvent, left: bool = False) -> None:
        size = event_size(event)
        if left:
            self.kept.appendleft((event, size))
        else:
            self.kept.append((event, size))
        self.kept_bytes += size

    def attach(self, sink: EventSink) -> tuple[list[ControlEvent], int]:
        """Bind a connection; returns the kept events (oldest first) and how many were dropped."""
        self.sink = sink
        kept, dropped = [e for e, _ in self.kept], self.dropped
        self.kept.clear()
        self.kept_bytes = self.dropped = 0
        return kept, dropped

    def detach(self, sink: EventSink, unsent: list[ControlEvent]) -> bool:
        """Unbind ``sink`` if it is still the current one; events it never sent are kept in
        order ahead of anything emitted since. Returns True if the session is now unattended."""
        if self.sink is not sink:
            return False
        self.sink = None
        for event in reversed(unsent):
            self._keep(event, left=True)
        self._trim()
        return True

    def _trim(self) -> None:
        while self.kept and (
            len(self.kept) > self.max_kept or self.kept_bytes > self.max_kept_bytes
        ):
            self.kept_bytes -= self.kept.popleft()[1]
            self.dropped += 1
