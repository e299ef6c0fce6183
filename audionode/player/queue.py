"""A guild's server-side queue, pure: every mutation returns the changes that mirror it.

Mirroring contract (:class:`audionode.control.events.QueueChanged`): a client that keeps a plain
list and applies each change as the Python list method of that name (``extend``, ``insert``,
``pop``, ``clear``) stays identical to the node's queue. A shuffle is ``clear`` + ``extend``,
a move ``pop`` + ``insert`` (Discodo once sent a ``slice`` and lost the event, docs/discodo.md).
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

from audionode.control.events import QueueOp
from audionode.control.views import EntryView
from audionode.errors import BadRequest, Conflict, NotFound

T = TypeVar("T")


@dataclass(slots=True, eq=False)
class Entry(Generic[T]):
    """One queued track with its per-track state (Discodo's AudioData fields we own)."""

    track: T
    tag: str = field(default_factory=lambda: uuid.uuid4().hex)
    context: dict[str, Any] = field(default_factory=dict)
    start_position: float = 0.0
    end_position: float | None = None
    """Seconds into the track at which it ends (None: its own end)."""


class QueueChange(NamedTuple):
    """One mutation as a list method: see the module docstring."""

    op: QueueOp
    at: int | None = None
    entries: tuple[EntryView, ...] = ()


class Queue(Generic[T]):
    """Ordered entries (at most ``max_length``) plus a bounded history (for ``previous``)."""

    def __init__(
        self,
        describe: Callable[[Entry[T]], EntryView],
        *,
        max_length: int = 10_000,
        history: int = 50,
    ) -> None:
        self._entries: list[Entry[T]] = []
        self._describe = describe
        self.max_length = max_length
        self.history: deque[Entry[T]] = deque(maxlen=history)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries)

    def __getitem__(self, index: int) -> Entry[T]:
        return self._entries[index]

    def __contains__(self, entry: object) -> bool:
        return any(e is entry for e in self._entries)

    def describe(self) -> tuple[EntryView, ...]:
        return tuple(self._describe(e) for e in self._entries)

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
        raise NotFound(f"no queue entry with tag {key[:64]!r}")

    def get(self, key: int | str) -> Entry[T]:
        return self._entries[self.index_of(key)]

    def room_for(self, count: int) -> None:
        """Raise :class:`Conflict` (``QUEUE_FULL``) unless ``count`` more entries fit."""
        if len(self._entries) + count > self.max_length:
            raise Conflict(
                f"the queue is full: {len(self._entries)} entries + {count} would exceed "
                f"{self.max_length} (control.max_queue)",
                code="QUEUE_FULL",
            )

    # --- mutations: each returns the changes that mirror it ------------------------------

    def extend(self, entries: Iterable[Entry[T]]) -> list[QueueChange]:
        new = list(entries)
        self._entries.extend(new)
        return [QueueChange("extend", entries=tuple(map(self._describe, new)))] if new else []

    def insert(self, index: int, entry: Entry[T]) -> list[QueueChange]:
        if not 0 <= index <= len(self._entries):
            raise BadRequest(f"field `index`: expected 0..{len(self._entries)}, got {index}")
        self._entries.insert(index, entry)
        return [QueueChange("insert", index, (self._describe(entry),))]

    def remove(self, key: int | str) -> tuple[Entry[T], list[QueueChange]]:
        index = self.index_of(key)
        return self._entries.pop(index), [QueueChange("pop", index)]

    def discard(self, entry: Entry[T]) -> list[QueueChange]:
        """Remove ``entry`` if it is still queued (no error when it is not)."""
        for i, e in enumerate(self._entries):
            if e is entry:
                del self._entries[i]
                return [QueueChange("pop", i)]
        return []

    def move(self, key: int | str, to: int) -> list[QueueChange]:
        """Really move the entry (Discodo's re-inserted it where it was)."""
        src = self.index_of(key)
        if not 0 <= to < len(self._entries):
            raise BadRequest(f"field `index`: expected 0..{len(self._entries) - 1}, got {to}")
        entry = self._entries.pop(src)
        self._entries.insert(to, entry)
        return [QueueChange("pop", src), QueueChange("insert", to, (self._describe(entry),))]

    def clear(self) -> list[QueueChange]:
        had = bool(self._entries)
        self._entries.clear()
        return [QueueChange("clear")] if had else []

    def shuffle(self, rng: random.Random | None = None) -> list[QueueChange]:
        """Shuffle in place; mirrored as clear + extend with the new order."""
        if len(self._entries) < 2:
            return []
        (rng or random.Random()).shuffle(self._entries)
        return [QueueChange("clear"), QueueChange("extend", entries=self.describe())]

    def pop_front(self, count: int = 1) -> tuple[list[Entry[T]], list[QueueChange]]:
        """Take up to ``count`` entries from the head (next track, skips)."""
        taken = self._entries[:count]
        del self._entries[:count]
        return taken, [QueueChange("pop", 0) for _ in taken]

    def push_front(self, entry: Entry[T]) -> list[QueueChange]:
        return self.insert(0, entry)
