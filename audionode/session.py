"""A bot's session on the control websocket: identity, players, and events kept while away.

Sessions are keyed by ``(user_id, shard_id)`` (seed 002 "Resumed"). A session outlives its
socket for ``vc_timeout`` seconds; meanwhile events are kept, bounded, oldest dropped first,
and handed to the next socket that identifies with the same key.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from audionode.player.player import GuildPlayer
from audionode.types import GuildId, SessionKey, UserId


class EventSink(Protocol):
    """Where a session's outbound frames go: one per attached websocket."""

    def send(self, op: str, d: Any) -> bool:
        """Queue a frame without waiting; False when the sink is closed (the frame is kept)."""

    def close(self, code: int, reason: str) -> None:
        """Ask the socket to close; pending frames are flushed first."""


def session_key(user_id: int, shard_id: int | None) -> SessionKey:
    """``"<user_id>"`` or ``"<user_id>-<shard_id>"``, as Discodo tagged its managers."""
    return SessionKey(str(user_id) if shard_id is None else f"{user_id}-{shard_id}")


@dataclass(eq=False)
class Session:
    """State of one identified bot (user, shard)."""

    user_id: UserId
    shard_id: int | None
    max_kept: int
    players: dict[GuildId, GuildPlayer] = field(default_factory=dict)
    sink: EventSink | None = None
    kept: deque[tuple[str, Any]] = field(default_factory=deque)
    dropped: int = 0
    expiry: asyncio.TimerHandle | None = None

    @property
    def key(self) -> SessionKey:
        return session_key(self.user_id, self.shard_id)

    def emit(self, op: str, d: Any) -> None:
        """Send an event now, or keep it for the next socket."""
        if self.sink is not None and self.sink.send(op, d):
            return
        self.kept.append((op, d))
        self._trim()

    def attach(self, sink: EventSink) -> tuple[list[tuple[str, Any]], int]:
        """Bind a socket; returns the kept events (oldest first) and how many were dropped."""
        self.sink = sink
        kept, dropped = list(self.kept), self.dropped
        self.kept.clear()
        self.dropped = 0
        return kept, dropped

    def detach(self, sink: EventSink, unsent: list[tuple[str, Any]]) -> bool:
        """Unbind ``sink`` if it is still the current one; frames it never sent are kept in
        order ahead of anything emitted since. Returns True if the session is now unattended."""
        if self.sink is not sink:
            return False
        self.sink = None
        self.kept.extendleft(reversed(unsent))
        self._trim()
        return True

    def _trim(self) -> None:
        while len(self.kept) > self.max_kept:
            self.kept.popleft()
            self.dropped += 1
