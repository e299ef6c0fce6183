"""The queue mirror replays the node's QUEUE_EVENTs as list methods (docs/API.md, "Mirroring
the queue"); one that does not fit is reported, a malformed one is refused."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audionode.client import ProtocolError, Queue, Track


def entry(n: int) -> dict[str, Any]:
    return {"_type": "AudioData", "id": f"tone:{n}", "title": f"Tone {n}", "tag": f"t{n}",
            "webpage_url": f"tone:{n}", "encoded": f"sig{n}", "context": {"n": n}}  # fmt: skip


def tags(q: Queue) -> list[str | None]:
    return [t.tag for t in q]


def test_each_list_method_is_replayed() -> None:
    q = Queue("n1")
    assert q.apply("extend", [[entry(1), entry(2)]])
    assert q.apply("append", [entry(3)])
    assert q.apply("insert", [1, entry(4)])
    assert tags(q) == ["t1", "t4", "t2", "t3"]
    assert q.apply("pop", [0]) and q.apply("pop", [])
    assert tags(q) == ["t4", "t2"] and q.find("t2") == 1 and q.find("t9") is None
    assert q[0].node == "n1" and q[0].context == {"n": 4} and q[0].uri == "tone:4"
    assert q.apply("clear", [])
    assert len(q) == 0 and q == []


def test_an_event_that_does_not_fit_is_reported_not_applied() -> None:
    q = Queue()
    q.replace([entry(1)])
    assert not q.apply("pop", [3])
    assert not q.apply("insert", [5, entry(2)])
    assert tags(q) == ["t1"]


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("extend", {"x": 1}, "`args` must be a list"),
        ("sort", [], "unknown list method 'sort'"),
        ("pop", ["0"], "index '0' is not an integer"),
        ("append", [{"id": "x"}], "Object missing required field `title`"),
        ("append", [{"id": "x", "title": 5}], "Expected `str`, got `int` - at `$.title`"),
    ],
)
def test_a_malformed_event_is_refused_naming_what_is_wrong(
    name: str, args: Any, message: str
) -> None:
    q = Queue()
    with pytest.raises(ProtocolError, match=message.replace("$", r"\$")):
        q.apply(name, args)
    assert len(q) == 0


_ops = st.one_of(
    st.tuples(st.just("append"), st.integers(0, 99)),
    st.tuples(st.just("extend"), st.lists(st.integers(0, 99), max_size=4)),
    st.tuples(st.just("insert"), st.integers(-6, 6), st.integers(0, 99)),
    st.tuples(st.just("pop"), st.integers(-6, 6)),
    st.tuples(st.just("clear")),
)


@given(st.lists(_ops, max_size=30))
def test_the_mirror_equals_the_list_it_mirrors(ops: list[tuple[Any, ...]]) -> None:
    model: list[dict[str, Any]] = []
    mirror = Queue()
    for op in ops:
        name, rest = op[0], list(op[1:])
        if name == "append":
            args: list[Any] = [entry(rest[0])]
        elif name == "extend":
            args = [[entry(n) for n in rest[0]]]
        elif name == "insert":
            args = [rest[0], entry(rest[1])]
        else:
            args = rest
        # An index past either end cannot come from the node's own list: it means the mirror
        # missed an event, so it is reported rather than clamped as list.insert would.
        fits = name != "insert" or -len(model) <= args[0] <= len(model)
        try:
            if fits:
                getattr(model, name)(*args)
        except IndexError:
            fits = False
        assert mirror.apply(name, args) is fits
        assert list(mirror) == [Track.from_wire(e) for e in model]
