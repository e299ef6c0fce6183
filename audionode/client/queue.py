"""The live mirror of a player's queue on the node.

The node describes every change of a queue as a ``QUEUE_EVENT`` naming a Python list method
and its arguments (``docs/API.md``, "Mirroring the queue"): ``append``, ``extend``,
``insert``, ``pop`` and ``clear``. :meth:`Queue.apply` replays them; a change that cannot be
replayed (the mirror missed something) is reported so the player can read the whole queue
again (:meth:`Queue.replace`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

from audionode.client.errors import ProtocolError
from audionode.client.tracks import Track

JSON = Any


class Queue(Sequence[Track]):
    """A read-only sequence of the :class:`Track` s waiting to play, in order.

    It changes only when the node says so; change the queue with the player's commands
    (:meth:`Player.play`, :meth:`Player.remove`, :meth:`Player.shuffle`...).
    """

    def __init__(self, node: str = "") -> None:
        self._items: list[Track] = []
        self.node = node
        """Identifier of the node whose queue this mirrors (tracks carry it)."""

    @overload
    def __getitem__(self, index: int) -> Track: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Track]: ...

    def __getitem__(self, index: int | slice) -> Track | Sequence[Track]:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Track]:
        return iter(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Queue):
            return self._items == other._items
        if isinstance(other, list):
            return self._items == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"<Queue {len(self._items)} tracks>"

    def find(self, tag: str) -> int | None:
        """The index of the entry ``tag`` names, or None."""
        for i, track in enumerate(self._items):
            if track.tag == tag:
                return i
        return None

    # --- fed by the player ------------------------------------------------------------------

    def replace(self, entries: JSON, node: str | None = None) -> None:
        """Take the whole queue from a listing (``GET /queue``/``getQueue`` ``entries``)."""
        if node is not None:
            self.node = node
        if not isinstance(entries, list):
            raise ProtocolError("queue listing: `entries` must be a list")
        self._items = [Track.from_wire(e, self.node) for e in entries]

    def apply(self, name: JSON, args: JSON) -> bool:
        """Replay one ``QUEUE_EVENT``; False when it does not fit the mirror (read it again).

        A malformed event raises :class:`ProtocolError`.
        """
        if not isinstance(args, list):
            raise ProtocolError("QUEUE_EVENT: `args` must be a list")
        try:
            return self._apply(name, args)
        except (IndexError, TypeError, ValueError):
            return False

    def _apply(self, name: JSON, args: list[JSON]) -> bool:
        items = self._items
        if name == "append":
            items.append(Track.from_wire(args[0], self.node))
        elif name == "extend":
            items.extend(Track.from_wire(e, self.node) for e in args[0])
        elif name == "insert":
            index = _index(args[0])
            if not -len(items) <= index <= len(items):
                return False
            items.insert(index, Track.from_wire(args[1], self.node))
        elif name == "pop":
            items.pop(_index(args[0]) if args else -1)
        elif name == "clear":
            items.clear()
        else:
            raise ProtocolError(f"QUEUE_EVENT: unknown list method {name!r}")
        return True


def _index(value: JSON) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError(f"QUEUE_EVENT: index {value!r} is not an integer")
    return value
