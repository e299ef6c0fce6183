"""The admission policy (``engine/admission.py``): a pure function of measured loads."""

from __future__ import annotations

import msgspec
import pytest

from audionode.config import AdmissionConfig, ConfigError
from audionode.engine.admission import (
    MIN_FRAMES,
    TICK_SHARE_FROM,
    Admit,
    Placer,
    Refuse,
    WorkerLoad,
    decide,
    regroup,
    room,
)
from audionode.engine.messages import EngineStats, FrameCounters
from audionode.engine.stats import StatsBook
from audionode.errors import Unavailable
from tests.conftest import make_config

LIMITS = AdmissionConfig()


def test_the_least_loaded_worker_takes_the_player() -> None:
    loads = [
        WorkerLoad(slot=0, placed=10, measured=10, cpu=0.40, tick_ms=2.0),
        WorkerLoad(slot=1, placed=10, measured=10, cpu=0.20, tick_ms=4.0),
        WorkerLoad(slot=2, placed=10, measured=10, cpu=0.30, tick_ms=1.0),
    ]
    # with one more: slot 0 0.403 cores / 0.85 = 0.474; slot 1 4.4 ms / 10 = 0.44;
    # slot 2 0.303 / 0.85 = 0.356 (its 1.1 ms ticks are 0.11 of their limit)
    decision = decide(loads, LIMITS)
    assert decision == Admit(slot=2, load=pytest.approx(0.303 / 0.85))


def test_players_placed_since_the_last_report_are_charged_the_stream_cost() -> None:
    # Slot 0 measured 10 playing at 0.40 cores but holds 20 now: 0.40 + 11 x 0.003 = 0.433.
    loads = [
        WorkerLoad(slot=0, placed=20, measured=10, cpu=0.40),
        WorkerLoad(slot=1, placed=0, measured=0, cpu=0.02),
    ]
    assert decide(loads, LIMITS) == Admit(slot=1, load=pytest.approx(0.023 / 0.85))
    full = [WorkerLoad(slot=0, placed=30, measured=10, cpu=0.80)]  # 0.80 + 21 x 0.003 = 0.863
    refusal = decide(full, LIMITS)
    assert isinstance(refusal, Refuse)
    assert "worker 0: 0.86 cores" in refusal.reason and "max_cpu" in refusal.reason


def test_idle_players_are_not_charged_the_process_fixed_cost() -> None:
    # One stream measured in a process whose control plane costs 0.10 cores: a hundred more
    # players (voice clients not connected yet) are 100 x 0.003, not 100 x 0.10.
    loads = [WorkerLoad(slot=0, placed=100, measured=1, cpu=0.10, tick_ms=0.05)]
    assert decide(loads, LIMITS) == Admit(slot=0, load=pytest.approx(0.40 / 0.85))


def test_an_unmeasured_worker_is_charged_the_configured_stream_cost() -> None:
    limits = AdmissionConfig(stream_cost=0.1)
    assert isinstance(decide([WorkerLoad(slot=0, placed=6, cpu=0.05)], limits), Admit)  # 0.75
    # 0.05 + 9 x 0.1 = 0.95 > 0.85
    assert isinstance(decide([WorkerLoad(slot=0, placed=8, cpu=0.05)], limits), Refuse)


def test_tick_time_over_its_budget_refuses() -> None:
    loads = [WorkerLoad(slot=0, placed=9, measured=9, cpu=0.1, tick_ms=6.6)]
    refusal = decide(loads, LIMITS)  # 10 / 9 x 6.6 = 7.3 ms > 7 (the default)
    assert isinstance(refusal, Refuse) and "7.3 ms ticks" in refusal.reason
    assert isinstance(decide(loads, AdmissionConfig(max_tick_ms=7.5)), Admit)


def test_a_burst_is_charged_the_tick_of_the_players_not_measured_yet() -> None:
    # 500 measured at 5 ms ticks (0.01 ms each); 200 more placed since the report: with one
    # more, 5 + 201 x 0.01 = 7.01 ms > 7. Charging the new player alone (5.01 ms) let a burst
    # of joins take the worker's tick 19 % past its limit.
    limits = AdmissionConfig(stream_cost=0.001)  # the CPU charge (0.50 cores) has room
    burst = [WorkerLoad(slot=0, placed=700, measured=500, cpu=0.30, tick_ms=5.0)]
    refusal = decide(burst, limits)
    assert isinstance(refusal, Refuse) and "7.0 ms ticks" in refusal.reason
    calm = [WorkerLoad(slot=0, placed=600, measured=500, cpu=0.30, tick_ms=5.0)]
    assert isinstance(decide(calm, limits), Admit)  # 5 + 101 x 0.01 = 6.01 ms
    # below TICK_SHARE_FROM measured streams the share is the tick's fixed cost: not extrapolated
    few = [WorkerLoad(slot=0, placed=600, measured=TICK_SHARE_FROM - 1, cpu=0.01, tick_ms=1.0)]
    assert isinstance(decide(few, limits), Admit)


def test_missed_frame_slots_refuse_once_enough_frames_were_sent() -> None:
    missed = WorkerLoad(slot=0, placed=5, measured=5, cpu=0.05, sent=MIN_FRAMES, deficit=200)
    refusal = decide([missed], LIMITS)
    assert isinstance(refusal, Refuse) and "2.0 % of its frame slots" in refusal.reason
    few = WorkerLoad(slot=0, placed=1, measured=1, sent=MIN_FRAMES - 1, deficit=500)
    assert isinstance(decide([few], LIMITS), Admit)  # one stall of a small worker says little
    assert isinstance(decide([missed], AdmissionConfig(max_missed=0.05)), Admit)


def test_the_per_worker_cap_and_the_reason_of_every_worker() -> None:
    limits = AdmissionConfig(max_players_per_worker=2)
    loads = [WorkerLoad(slot=0, placed=2), WorkerLoad(slot=1, placed=1)]
    assert decide(loads, limits) == Admit(slot=1, load=1.0)
    loads = [WorkerLoad(slot=0, placed=2), WorkerLoad(slot=1, placed=2)]
    refusal = decide(loads, limits)
    assert isinstance(refusal, Refuse)
    assert refusal.reason == (
        "worker 0: 2 players (engine.admission.max_players_per_worker 2); "
        "worker 1: 2 players (engine.admission.max_players_per_worker 2)"
    )


def test_admission_off_places_on_the_least_loaded_but_never_refuses() -> None:
    limits = AdmissionConfig(enabled=False, max_players_per_worker=1)
    loads = [WorkerLoad(slot=0, placed=3), WorkerLoad(slot=1, placed=2)]
    assert decide(loads, limits) == Admit(slot=1, load=3.0)


def test_a_worker_being_replaced_takes_players_only_when_no_live_one_can() -> None:
    down = WorkerLoad(slot=0, up=False, placed=0)
    busy = WorkerLoad(slot=1, placed=50, measured=50, cpu=0.5)
    assert decide([down, busy], LIMITS).slot == 1  # type: ignore[union-attr]
    full = WorkerLoad(slot=1, placed=90, measured=90, cpu=0.85)
    assert decide([down, full], LIMITS).slot == 0  # type: ignore[union-attr]


def test_the_placer_keeps_a_player_on_its_worker_and_frees_its_place() -> None:
    placer = Placer(2, AdmissionConfig(max_players_per_worker=1))
    book = StatsBook()
    assert placer.admit(1, placer.loads(book, [True, True])) == 0
    assert placer.admit(2, placer.loads(book, [True, True])) == 1
    assert placer.admit(1, placer.loads(book, [True, True])) == 0  # already placed: same slot
    with pytest.raises(Unavailable) as err:
        placer.admit(3, placer.loads(book, [True, True]))
    assert err.value.code == "NODE_AT_CAPACITY" and err.value.status == 503
    assert err.value.retry_after == 10 and "max_players_per_worker 1" in err.value.message
    status = placer.status(placer.loads(book, [True, True]))
    assert status["at_capacity"] is True and status["refused"] == 1
    placer.release(1)
    assert placer.status(placer.loads(book, [True, True]))["at_capacity"] is False
    assert placer.admit(3, placer.loads(book, [True, True])) == 0
    # A key never admitted (a restored player) is placed at its first command, never refused.
    assert placer.slot_of(99) == 1 and placer.slot_of(98) == 0
    assert (placer.placed(0), placer.placed(1)) == (2, 2)


def test_loads_come_from_the_engines_reports() -> None:
    book = StatsBook()

    def report(sent: int, deficit: int) -> EngineStats:
        players = {k: FrameCounters(sent=1) for k in range(4)}
        totals = FrameCounters(sent=sent, deficit=deficit)
        return EngineStats(
            player=0, totals=totals, players=players, ticks=1, resyncs=0,
            late_max_ms=0.0, tick_max_ms=3.0, cpu=0.2, tick_mean_ms=1.5,
        )  # fmt: skip

    book.add(1, report(1000, 0), 0.0)
    book.add(1, report(21000, 300), 20.0)
    placer = Placer(2, LIMITS)
    loads = placer.loads(book, [True, False])
    assert loads[0] == WorkerLoad(slot=0, up=True)
    assert loads[1] == WorkerLoad(
        slot=1, up=False, placed=0, measured=4, cpu=0.2, tick_ms=1.5, sent=20000, deficit=300
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [("max_cpu", 0), ("max_tick_ms", 25), ("max_missed", 1.5), ("max_players_per_worker", -1),
     ("retry_after", 0), ("stream_cost", 0), ("bogus", 1)],
)  # fmt: skip
def test_admission_keys_are_validated(key: str, value: object) -> None:
    with pytest.raises((ConfigError, msgspec.ValidationError)) as err:
        make_config(engine={"workers": 0, "admission": {key: value}})
    assert key in str(err.value)


def test_the_in_process_engine_is_not_judged_by_its_process_cpu() -> None:
    book = StatsBook()
    busy = EngineStats(
        player=0, totals=FrameCounters(), players={1: FrameCounters()}, ticks=1, resyncs=0,
        late_max_ms=0.0, tick_max_ms=0.1, cpu=1.5, tick_mean_ms=0.05,
    )  # fmt: skip
    book.add(0, busy, 0.0)
    assert isinstance(decide(Placer(1, LIMITS).loads(book, [True]), LIMITS), Refuse)
    assert isinstance(decide(Placer(1, LIMITS, cpu=False).loads(book, [True]), LIMITS), Admit)


# --- grouping the players of one live source (regroup) -----------------------------------------


def test_a_live_play_moves_to_the_worker_that_encodes_it_when_it_has_room() -> None:
    loads = [
        WorkerLoad(slot=0, placed=5, measured=5, cpu=0.30),
        WorkerLoad(slot=1, placed=1, measured=1, cpu=0.05),
    ]
    # placed on slot 1 (least loaded); slot 0 encodes the source for 4 players already
    assert regroup(1, {0: 4}, loads, LIMITS) == 0


def test_the_worker_with_the_most_members_wins_and_the_current_one_wins_ties() -> None:
    loads = [WorkerLoad(slot=s, placed=3, measured=3, cpu=0.1) for s in range(3)]
    assert regroup(0, {1: 2, 2: 5}, loads, LIMITS) == 2
    assert regroup(0, {0: 2, 1: 2}, loads, LIMITS) == 0  # a tie: no move
    assert regroup(2, {0: 3, 2: 1}, loads, LIMITS) == 0


def test_a_sharing_worker_without_room_is_passed_over_for_the_next_or_the_current() -> None:
    limits = AdmissionConfig(max_players_per_worker=4)
    loads = [
        WorkerLoad(slot=0, placed=4),  # full: the cap
        WorkerLoad(slot=1, placed=2),
        WorkerLoad(slot=2, placed=1),
    ]
    assert regroup(2, {0: 4, 1: 2}, loads, limits) == 1
    full = [WorkerLoad(slot=0, placed=4), WorkerLoad(slot=1, placed=4), WorkerLoad(slot=2)]
    assert regroup(2, {0: 4, 1: 2}, full, limits) == 2  # stays where admission put it
    cpu_full = [WorkerLoad(slot=0, placed=9, measured=9, cpu=0.85), WorkerLoad(slot=1)]
    assert regroup(1, {0: 9}, cpu_full, LIMITS) == 1


def test_a_worker_being_replaced_is_not_moved_to() -> None:
    loads = [WorkerLoad(slot=0, up=False, placed=3), WorkerLoad(slot=1, placed=1)]
    assert regroup(1, {0: 3}, loads, LIMITS) == 1
    assert regroup(1, {}, loads, LIMITS) == 1  # nobody shares it: the placement stands


def test_the_placer_moves_a_player_with_its_count() -> None:
    placer = Placer(2, LIMITS)
    placer.place(7, [WorkerLoad(slot=0), WorkerLoad(slot=1, placed=0, cpu=0.1)])
    assert (placer.slot_of(7), placer.placed(0), placer.placed(1)) == (0, 1, 0)
    placer.move(7, 1)
    assert (placer.slot_of(7), placer.placed(0), placer.placed(1)) == (1, 0, 1)
    placer.release(7)
    assert (placer.placed(0), placer.placed(1)) == (0, 0)


def test_room_is_what_each_worker_takes_before_a_limit_summed() -> None:
    limits = AdmissionConfig(max_players_per_worker=10)
    loads = [WorkerLoad(slot=0, placed=4), WorkerLoad(slot=1, placed=10), WorkerLoad(slot=2)]
    assert room(loads, limits) == 6 + 0 + 10
    # measured: 0.45 cores for 10 players, 0.25 per further one up to 1.4: 3 more (1.2 cores)
    limits = AdmissionConfig(max_cpu=1.4, stream_cost=0.25)
    assert room([WorkerLoad(slot=0, placed=10, measured=10, cpu=0.45)], limits) == 3
    assert room(loads, AdmissionConfig(enabled=False)) is None
    assert room([], LIMITS) == 0
