"""The queue and its mirroring contract: replaying QUEUE_EVENTs on a plain list matches."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audionode.control.events import QueueChanged
from audionode.control.views import EntryView, TrackView
from audionode.errors import BadRequest, NotFound
from audionode.player.queue import Entry, Queue, QueueChange
from audionode.protocol import discodo_map


def describe(e: Entry[str]) -> EntryView:
    track = TrackView(source="test", id=e.track, title=e.track)
    return EntryView(track=track, tag=e.tag, context=e.context)


def wire(q: Queue[str]) -> list[dict[str, Any]]:
    return discodo_map.entries(q.describe())


class Mirror:
    """What a client does: apply each QUEUE_EVENT as the list method of that name."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def apply(self, changes: list[QueueChange]) -> None:
        for change in changes:
            event = QueueChanged(guild_id=1, op=change.op, index=change.at, entries=change.entries)
            name, args = event.op, discodo_map.queue_args(event)
            name, args = json.loads(json.dumps([name, args]))  # must survive the wire
            getattr(self.items, name)(*args)


def fresh(*tracks: str) -> tuple[Queue[str], Mirror]:
    q: Queue[str] = Queue(describe)
    m = Mirror()
    m.apply(q.extend(Entry(t) for t in tracks))
    return q, m


def test_move_really_moves() -> None:
    q, m = fresh("a", "b", "c", "d")
    m.apply(q.move(0, 2))
    assert [e.track for e in q] == ["b", "c", "a", "d"]
    m.apply(q.move(q[3].tag, 0))
    assert [e.track for e in q] == ["d", "b", "c", "a"]
    assert m.items == wire(q)


def test_lookups_by_index_and_tag() -> None:
    q, _ = fresh("a", "b")
    assert q.index_of(-1) == 1 and q.index_of(q[1].tag) == 1
    with pytest.raises(NotFound, match="out of range"):
        q.index_of(2)
    with pytest.raises(NotFound, match="no queue entry with tag"):
        q.index_of("nope")
    with pytest.raises(BadRequest, match="`index`"):
        q.move(0, 5)
    with pytest.raises(BadRequest, match="`index`"):
        q.insert(3, Entry("x"))


ops = st.lists(
    st.tuples(
        st.sampled_from(["extend", "insert", "remove", "move", "clear", "shuffle", "pop"]),
        st.integers(0, 6),
        st.integers(0, 6),
    ),
    max_size=25,
)


@given(ops, st.integers(0, 2**32))
def test_any_sequence_of_mutations_mirrors_exactly(
    sequence: list[tuple[str, int, int]], seed: int
) -> None:
    q, m = fresh("a", "b", "c")
    rng = random.Random(seed)
    for name, x, y in sequence:
        try:
            if name == "extend":
                m.apply(q.extend(Entry(f"t{x}") for _ in range(y % 3)))
            elif name == "insert":
                m.apply(q.insert(x, Entry(f"i{y}")))
            elif name == "remove":
                m.apply(q.remove(x)[1])
            elif name == "move":
                m.apply(q.move(x, y))
            elif name == "clear":
                m.apply(q.clear())
            elif name == "shuffle":
                m.apply(q.shuffle(rng))
            else:
                m.apply(q.pop_front(x)[1])
        except (BadRequest, NotFound):
            pass
        assert m.items == wire(q)
