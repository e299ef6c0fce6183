"""``engine.realtime_priority``: the worker's event-loop thread under SCHED_FIFO, and nothing
else of the process (issue 17; docs/decisions/0023-realtime-loop-thread.md).

Whether this machine lets a process take real-time priority (CAP_SYS_NICE or RLIMIT_RTPRIO)
is probed first, with a bare ``os.sched_setscheduler`` on a throwaway thread: where it may,
the priority must be in force; where it may not, the node must run on at normal priority and
say so. Either way the test checks what the kernel reports for each thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from audionode.engine import rtprio
from tests.conftest import NodeFactory

pytestmark = pytest.mark.skipif(not rtprio.supported(), reason="no SCHED_FIFO here (not Linux)")

T = TypeVar("T")


def on_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` on a thread of its own (a scheduling policy dies with its thread, so the
    test process's own threads are never raised)."""
    box: list[T] = []
    t = threading.Thread(target=lambda: box.append(fn()))
    t.start()
    t.join()
    return box[0]


def permitted() -> bool:
    def probe() -> bool:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        except PermissionError:
            return False
        return True

    return on_thread(probe)


def policy_of(tid: int) -> tuple[int, int]:
    """(policy without the reset-on-fork flag, priority) of a thread of any process."""
    policy = os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK
    return policy, os.sched_getparam(tid).sched_priority


def test_zero_changes_nothing() -> None:
    def run() -> tuple[rtprio.Outcome, tuple[int, int]]:
        return rtprio.apply(0), policy_of(0)

    outcome, (policy, _) = on_thread(run)
    assert outcome == rtprio.Outcome(0)
    assert policy == os.SCHED_OTHER


def test_out_of_range_is_refused_with_a_reason() -> None:
    outcome = on_thread(lambda: rtprio.apply(100))
    assert outcome.priority == 0 and "outside 1-99" in outcome.reason


def test_the_calling_thread_only_and_not_the_threads_it_makes() -> None:
    may = permitted()

    def run() -> tuple[rtprio.Outcome, tuple[int, int], int, tuple[int, int]]:
        outcome = rtprio.apply(5)
        mine = policy_of(0)
        flags = os.sched_getscheduler(0) & os.SCHED_RESET_ON_FORK
        child = on_thread(lambda: policy_of(0))  # made after: must be back to normal
        return outcome, mine, flags, child

    outcome, mine, flags, child = on_thread(run)
    if may:
        assert outcome == rtprio.Outcome(5)
        assert mine == (os.SCHED_FIFO, 5) and flags
    else:
        assert outcome.priority == 0 and "not permitted" in outcome.reason
        assert mine[0] == os.SCHED_OTHER
    assert child[0] == os.SCHED_OTHER and child[1] == 0
    assert policy_of(0)[0] == os.SCHED_OTHER  # the test's own thread was never touched


async def _status_engine(node: Any, slot: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        status, body = await node.get("/status")
        assert status == 200
        engines: dict[str, Any] = body["engine"]["engines"]
        if slot in engines or loop.time() > deadline:
            return dict(body["engine"], this=engines.get(slot))
        await asyncio.sleep(0.2)


async def test_a_worker_runs_its_loop_thread_at_the_priority_and_reports_it(
    node_factory: NodeFactory,
) -> None:
    may = permitted()
    async with node_factory(engine={"workers": 1, "realtime_priority": 7}) as node:
        engine = await _status_engine(node, "0")
        assert engine["this"] is not None, "the worker never reported"
        assert engine["this"]["realtime"] == (7 if may else 0)
        (pid,) = [p["pid"] for p in engine["processes"]]
        threads = {int(t) for t in os.listdir(f"/proc/{pid}/task")}
        assert pid in threads and len(threads) > 1  # the producer and vitals threads at least
        assert policy_of(pid) == ((os.SCHED_FIFO, 7) if may else (os.SCHED_OTHER, 0))
        for tid in threads - {pid}:  # every other thread of the worker stays normal
            assert policy_of(tid)[0] == os.SCHED_OTHER, tid


async def test_off_by_default(node_factory: NodeFactory) -> None:
    async with node_factory(engine={"workers": 1}) as node:
        engine = await _status_engine(node, "0")
        assert engine["this"] is not None and engine["this"]["realtime"] == 0
        (pid,) = [p["pid"] for p in engine["processes"]]
        assert policy_of(pid)[0] == os.SCHED_OTHER
