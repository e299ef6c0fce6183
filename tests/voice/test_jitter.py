"""The jitter buffer: reordering, loss, duplicates, late packets, bounded delay, talk spurts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from audionode.voice.jitter import Conceal, JitterBuffer, Play


def frame(i: int) -> bytes:
    return b"\xfc" + i.to_bytes(4, "big")


def drain(jb: JitterBuffer, ticks: int) -> list[Play | Conceal | None]:
    return [jb.pop() for _ in range(ticks)]


def test_holds_the_delay_then_plays_in_order_across_the_sequence_wrap() -> None:
    jb = JitterBuffer(delay=3)
    seqs = [65534, 65535, 0, 1, 2]
    jb.push(seqs[0], frame(0))
    jb.push(seqs[1], frame(1))
    assert jb.pop() is None and not jb.playing, "60 ms before a spurt starts"
    for i, s in enumerate(seqs[2:], 2):
        jb.push(s, frame(i))
    out = drain(jb, 5)
    assert out == [Play(frame(i), s) for i, s in enumerate(seqs)]


def test_reordered_packets_are_put_back_in_order() -> None:
    jb = JitterBuffer(delay=3)
    for s in (10, 12, 11, 14, 13):
        jb.push(s, frame(s))
    assert [p.sequence for p in drain(jb, 5) if isinstance(p, Play)] == [10, 11, 12, 13, 14]


def test_a_lost_packet_is_concealed_with_the_next_one_for_fec() -> None:
    jb = JitterBuffer(delay=2)
    for s in (1, 2, 4, 5):
        jb.push(s, frame(s))
    out = drain(jb, 4)
    assert out[2] == Conceal(3, frame(4)) and out[3] == Play(frame(4), 4)
    assert (jb.stats.played, jb.stats.concealed) == (3, 1)
    jb.push(3, frame(3))  # came after its slot: too late
    assert jb.stats.late == 1 and jb.pop() == Play(frame(5), 5)


def test_duplicates_and_the_end_of_a_spurt() -> None:
    jb = JitterBuffer(delay=1, idle_after=2)
    jb.push(7, frame(7))
    jb.push(7, frame(7))
    assert jb.stats.duplicates == 1
    assert drain(jb, 3) == [Play(frame(7), 7), None, None] and not jb.playing
    jb.push(20, frame(20))  # a new spurt after a pause
    assert jb.pop() == Play(frame(20), 20) and jb.stats.spurts == 2


def test_the_delay_is_bounded_after_a_burst() -> None:
    jb = JitterBuffer(delay=2, max_delay=4)
    jb.push(0, frame(0))
    jb.push(1, frame(1))
    assert jb.pop() == Play(frame(0), 0)
    for s in range(2, 12):  # a stall, then a burst of ten
        jb.push(s, frame(s))
    assert jb.depth == 4 and jb.stats.dropped == 7  # 1..7: the oldest go first
    assert [p.sequence for p in drain(jb, 4) if isinstance(p, Play)] == [8, 9, 10, 11]


@given(
    st.integers(0, 65535),
    st.lists(st.booleans(), min_size=5, max_size=120),
    st.randoms(use_true_random=False),
)
def test_bounded_reordering_and_loss_lose_nothing_else(
    start: int, kept: list[bool], rnd: object
) -> None:
    """Packets displaced by at most the delay come out in order; each sent frame is played
    or (when lost) concealed exactly once; nothing is played twice."""
    import random

    assert isinstance(rnd, random.Random)
    delay = 4
    jb = JitterBuffer(delay=delay, max_delay=16, idle_after=3)
    n = len(kept)
    arrivals = [i for i in range(n) if kept[i]]
    # swap neighbours within the delay window
    for i in range(0, len(arrivals) - 1, 2):
        if rnd.random() < 0.5 and arrivals[i + 1] - arrivals[i] < delay:
            arrivals[i], arrivals[i + 1] = arrivals[i + 1], arrivals[i]
    played: list[int] = []
    feed = iter(arrivals)
    for _tick in range(n + 40):
        nxt = next(feed, None)
        if nxt is not None:
            jb.push((start + nxt) % 65536, frame(nxt))
        slot = jb.pop()
        if isinstance(slot, Play):
            played.append(int.from_bytes(slot.opus[1:], "big"))
    assert played == sorted(set(played)), "in order, none twice"
    assert set(played) <= set(arrivals)
    assert jb.stats.played == len(played) and jb.stats.dropped == 0


@given(
    st.lists(
        st.one_of(st.tuples(st.just("push"), st.integers(0, 65535)), st.just(("pop", 0))),
        max_size=300,
    )
)
def test_any_arrivals_keep_the_buffer_bounded_and_accounted(ops: list[tuple[str, int]]) -> None:
    jb = JitterBuffer(delay=3, max_delay=8)
    played: list[int] = []
    for op, seq in ops:
        if op == "push":
            jb.push(seq, frame(seq))
        elif isinstance(slot := jb.pop(), Play):
            played.append(int.from_bytes(slot.opus[1:], "big"))
        assert jb.depth <= 8
    s = jb.stats
    assert s.received == s.played + s.dropped + jb.depth, "each stored packet is accounted for"
    assert len(played) == s.played
