"""The watchdog's verdicts, the beacon a worker publishes through, and what the in-process
host (``engine.workers = 0``) can do: notice and report, not restart."""

from __future__ import annotations

import asyncio
import multiprocessing
import time

import pytest

from audionode.engine import messages as m
from audionode.engine.engine import Engine
from audionode.engine.faults import ENV
from audionode.engine.host import LocalHost
from audionode.engine.watchdog import SLOW_TURN, Beacon, Publisher, Stall, Vitals, verdict
from audionode.media.producer import Producer
from tests.conftest import NodeFactory, eventually, make_config

T = 1.5


def vitals(now: float, **ages: float) -> Vitals:
    at = {k: now - ages.get(k, 0.0) for k in ("published", "loop", "producer")}
    return Vitals(
        busy_since=now - ages["busy"] if "busy" in ages else 0.0,
        owner=7 if "busy" in ages else None,
        producer_alive=ages.get("dead", 0) == 0,
        **at,
    )


def test_verdicts_name_the_part_that_stalled() -> None:
    now = 1024.0  # ages below are exact in binary, so the stalls compare equal
    assert verdict(vitals(now), now, T) is None
    assert verdict(Vitals(0, 0, 0, 0, None, False), now, T) is None  # not started yet
    assert verdict(vitals(now, published=2, loop=2, producer=2), now, T) == Stall("process", 2)
    # The whole process stopped 1.25 s ago, its producer's last turn began just before: not
    # yet a stall, and never the producer's (the beats are judged as last published).
    assert verdict(vitals(now, published=1.25, producer=1.625), now, T) is None
    assert verdict(vitals(now, producer=1.625), now, T) == Stall("producer", 1.625)
    assert verdict(vitals(now, producer=0.125, dead=1), now, T) == Stall("producer", 0.125)
    assert verdict(vitals(now, loop=1.75), now, T) == Stall("loop", 1.75)
    assert str(Stall("loop", 1.7)) == "the event loop made no progress for 1.7 s"


def test_a_stall_is_blamed_on_the_player_of_the_stuck_turn_only_when_one_runs() -> None:
    now = 1000.0
    stuck = vitals(now, producer=2, busy=2)
    assert Stall("producer", 2).suspect(stuck, now) == 7
    assert Stall("producer", 2).suspect(vitals(now, producer=2), now) is None
    assert Stall("loop", 2).suspect(stuck, now) is None
    # a death mid-turn: only a turn that ran unusually long names a suspect
    assert vitals(now, busy=SLOW_TURN).suspect(now) == 7
    assert vitals(now, busy=0.001).suspect(now) is None


def test_a_death_is_judged_as_of_the_beacons_last_write_not_when_it_was_noticed() -> None:
    # A SIGKILL from outside while an ordinary turn ran, noticed 600 ms later on a loaded
    # machine: the turn had run 2 ms at the last write before the death. Judged at the moment
    # of noticing it looked slow, and a popular track was quarantined at the second outside kill.
    published = 1000.0
    v = Vitals(published, published, published, published - 0.002, 7, True)
    assert v.suspect(published + 0.6) == 7  # what the pool used to conclude
    assert v.death_suspect() is None
    slow = Vitals(published, published, published, published - SLOW_TURN, 7, True)
    assert slow.death_suspect() == 7  # a turn already slow before the death is still named


async def test_the_beacon_carries_a_running_producer_turn_and_its_owner() -> None:
    beacon = Beacon(multiprocessing.get_context("spawn"))
    producer = Producer("beacon-test")
    publisher = Publisher(beacon, producer)
    publisher.start(asyncio.get_running_loop())
    entered = asyncio.Event()
    loop = asyncio.get_running_loop()

    class Slow:
        background = False

        def step(self) -> float | None:
            loop.call_soon_threadsafe(entered.set)
            time.sleep(1.0)
            return None

    slow = Slow()
    producer.tag(slow, 42)
    try:
        producer.schedule(slow)
        await entered.wait()
        await asyncio.sleep(0.7)
        v = beacon.read()
        now = time.monotonic()
        assert v.started and v.producer_alive and v.owner == 42
        assert 0.65 < now - v.busy_since < 1.0 and now - v.loop < 0.25
        assert v.suspect(now) == 42 and v.death_suspect() == 42
        await asyncio.sleep(0.6)
        assert beacon.read().owner is None and beacon.read().busy_since == 0
    finally:
        publisher.close()


async def test_in_process_the_watchdog_reports_a_stalled_producer_and_its_recovery(
    node_factory: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "1")
    async with node_factory(engine={"workers": 0}) as node:
        host = node.node.service.engine
        assert isinstance(host, LocalHost)
        status, body = await node.get("/status")
        assert status == 200 and body["engine"]["producer_alive"] is True
        host.send(m.Fault(player=1, kind="stall-producer", seconds=2.5))
        await asyncio.sleep(1.9)
        status, body = await node.get("/status")
        engine = body["engine"]
        assert (
            status == 200 and engine["producer_alive"] is False and engine["producer_idle_s"] > 1.5
        )
        await eventually(lambda: host.watch.producer_stalls == 1, timeout=1)
        await eventually(lambda: host.stats()["producer_alive"], timeout=3)
        # the event loop itself was never blocked by the stalled thread
        assert host.stats()["loop_stalls"] == 0


def test_fault_injection_is_refused_unless_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    events: list[m.Event] = []
    engine = Engine(make_config(), events.append)
    began = time.monotonic()
    engine.handle(m.Fault(player=1, kind="stall-loop", seconds=60))
    assert time.monotonic() - began < 1
    (failed,) = events
    assert isinstance(failed, m.CommandFailed) and "fault injection is disabled" in failed.message


async def test_an_engine_clock_beats_for_the_loop_instead_of_a_timer() -> None:
    beacon = Beacon(multiprocessing.get_context("spawn"))
    publisher = Publisher(beacon, Producer("beacon-clock-test"))
    publisher.start(asyncio.get_running_loop(), timer=False)
    try:
        await asyncio.sleep(0.45)  # the loop runs, but nothing beats: the beat ages
        assert time.monotonic() - beacon.read().loop > 0.3
        publisher.beat()  # what the engine's sender does every tick
        await asyncio.sleep(0.25)  # a publish or two later
        assert time.monotonic() - beacon.read().loop < 0.3
    finally:
        publisher.close()


async def test_a_real_worker_beats_every_tick(node_factory: NodeFactory) -> None:
    async with node_factory(engine={"workers": 1}) as node:
        seen = 0
        for _ in range(40):
            status, body = await node.get("/status")
            assert status == 200
            (process,) = body["engine"]["processes"]
            if process.get("started"):
                # ticks every 20 ms, a publish every 0.1 s: far from the 1.5 s timeout
                assert process["alive"] and process["loop_idle_s"] < 0.3, process
                seen += 1
                if seen == 5:
                    return
            await asyncio.sleep(0.2)
        raise AssertionError(f"the worker reported {seen} times")
