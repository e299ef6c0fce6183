"""A guild's server-side queue, pure: every mutation returns the QUEUE_EVENTs that mirror it.

Mirroring contract (``QUEUE_EVENT {"name", "args"}``): a client that keeps a plain list and
applies each event as the Python list method of that name with those args (``append``,
``extend``, ``insert``, ``pop``, ``clear``) stays identical to the node's queue. Every event is
JSON-serialisable: indexes are ints, entries are dicts (Discodo once sent a ``slice`` and lost
the event, discodo-reference.md §4.3).
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from audionode.errors import BadRequest, NotFound

T = TypeVar("T")

QueueEvent = tuple[str, list[Any]]
"""``(name, args)`` of one QUEUE_EVENT."""


@dataclass(slots=True, eq=False)
class Entry(Generic[T]):
    """One queued track with its per-track state (Discodo's AudioData fields we own)."""

    track: T
    tag: str = field(default_factory=lambda: uuid.uuid4().hex)
    context: dict[str, Any] = field(default_factory=dict)
    start_position: float = 0.0


class Queue(Generic[T]):
    """Ordered entries plus a bounded history of played ones (for ``previous``)."""

    def __init__(self, describe: Callable[[Entry[T]], dict[str, Any]], history: int = 50) -> None:
        self._entries: list[Entry[T]] = []
        self._describe = describe
        self.history: deque[Entry[T]] = deque(maxlen=history)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Any:
        return iter(self._entries)

    def __getitem__(self, index: int) -> Entry[T]:
        return self._entries[index]

    def describe(self) -> list[dict[str, Any]]:
        return [self._describe(e) for e in self._entries]

    # --- lookups ----------------------------------------------------------------------

    def index_of(self, key: int | str) -> int:
        """Resolve an index (negative counts from the end) or a tag to a position."""
        if isinstance(key, int):
            n = len(self._entries)
            if not -n <= key < n:
                raise NotFound(f"queue index {key} out of range (queue has {n} entries)")
            return key % n
        for i, entry in enumerate(self._entries):
            if entry.tag == key:
                return i
        raise NotFound(f"no queue entry with tag {key!r}")

    # --- mutations: each returns the events that mirror it ------------------------------

    def extend(self, entries: Iterable[Entry[T]]) -> list[QueueEvent]:
        new = list(entries)
        self._entries.extend(new)
        return [("extend", [[self._describe(e) for e in new]])] if new else []

    def insert(self, index: int, entry: Entry[T]) -> list[QueueEvent]:
        if not 0 <= index <= len(self._entries):
            raise BadRequest(f"field `index`: expected 0..{len(self._entries)}, got {index}")
        self._entries.insert(index, entry)
        return [("insert", [index, self._describe(entry)])]

    def remove(self, key: int | str) -> tuple[Entry[T], list[QueueEvent]]:
        index = self.index_of(key)
        return self._entries.pop(index), [("pop", [index])]

    def move(self, key: int | str, to: int) -> list[QueueEvent]:
        """Really move the entry (Discodo's re-inserted it where it was)."""
        src = self.index_of(key)
        if not 0 <= to < len(self._entries):
            raise BadRequest(f"field `index`: expected 0..{len(self._entries) - 1}, got {to}")
        entry = self._entries.pop(src)
        self._entries.insert(to, entry)
        return [("pop", [src]), ("insert", [to, self._describe(entry)])]

    def clear(self) -> list[QueueEvent]:
        had = bool(self._entries)
        self._entries.clear()
        return [("clear", [])] if had else []

    def shuffle(self, rng: random.Random | None = None) -> list[QueueEvent]:
        """Shuffle in place; mirrored as clear + extend with the new order."""
        if len(self._entries) < 2:
            return []
        (rng or random.Random()).shuffle(self._entries)
        return [("clear", []), ("extend", [self.describe()])]

    def pop_front(self, count: int = 1) -> tuple[list[Entry[T]], list[QueueEvent]]:
        """Take up to ``count`` entries from the head (next track, skips)."""
        taken = self._entries[:count]
        del self._entries[:count]
        return taken, [("pop", [0]) for _ in taken]

    def push_front(self, entry: Entry[T]) -> list[QueueEvent]:
        return self.insert(0, entry)
