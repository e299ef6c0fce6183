"""Real-time scheduling for an engine worker's event-loop thread (``engine.realtime_priority``).

The sender's 20 ms clock runs on the worker's event loop. On a busy machine a tick that is due
waits behind whatever else the kernel chose to run (another worker, the control process, the
bot), and that wait is the tail of the packet gaps (docs/PERFORMANCE.md, "Real-time priority").
``SCHED_FIFO`` lets the loop thread preempt normal threads the moment its timer fires, as audio
servers do. Only that thread: ``SCHED_RESET_ON_FORK`` makes every thread it creates afterwards
(the producer and vitals threads, the executor's, libav's) start at normal priority, and
threads made before keep theirs; so decoding, reading and extraction never run at real-time
priority (docs/decisions/0023-realtime-loop-thread.md).

The kernel's real-time throttling (``/proc/sys/kernel/sched_rt_runtime_us``, 95 % by default)
still leaves the rest of the machine a share should a bug make the loop spin, and the pool's
watchdog (a normal-priority thread of the control process) still restarts a stuck worker.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_PRIORITY = 99
"""Highest ``SCHED_FIFO`` priority on Linux."""


@dataclass(frozen=True)
class Outcome:
    """What :func:`apply` did: ``priority`` is the one in force (0 = normal scheduling), and
    ``reason`` says why a requested priority was not applied ("" when it was, or none was)."""

    priority: int
    reason: str = ""


def supported() -> bool:
    """This platform has ``SCHED_FIFO`` with ``SCHED_RESET_ON_FORK`` (Linux)."""
    return hasattr(os, "SCHED_FIFO") and hasattr(os, "SCHED_RESET_ON_FORK")


def apply(priority: int) -> Outcome:
    """Put the *calling thread* under ``SCHED_FIFO`` at ``priority`` (1-99), with threads it
    creates reset to normal scheduling. 0 changes nothing. Never raises: without the right to
    (``CAP_SYS_NICE`` or an ``RLIMIT_RTPRIO`` of at least ``priority``) or on a platform without
    it, the thread stays at normal priority and the outcome says why."""
    if priority <= 0:
        return Outcome(0)
    if not 1 <= priority <= MAX_PRIORITY:
        return Outcome(0, f"priority {priority} is outside 1-{MAX_PRIORITY}")
    if not supported():
        return Outcome(0, "this platform has no SCHED_FIFO")
    policy = os.SCHED_FIFO | os.SCHED_RESET_ON_FORK
    try:
        # pid 0 is the calling thread on Linux, not the whole process.
        os.sched_setscheduler(0, policy, os.sched_param(priority))
    except PermissionError:
        return Outcome(0, "not permitted (needs CAP_SYS_NICE or RLIMIT_RTPRIO >= the priority)")
    except OSError as e:
        return Outcome(0, e.strerror or str(e))
    return Outcome(priority)


def probe(priority: int) -> Outcome:
    """What :func:`apply` would do in this process, tried on a throwaway thread (a policy ends
    with its thread, so nothing of the caller changes): for ``audionode doctor``."""
    box: list[Outcome] = []
    thread = threading.Thread(target=lambda: box.append(apply(priority)), name="rt-probe")
    thread.start()
    thread.join()
    return box[0]


def apply_logged(priority: int, who: str) -> int:
    """:func:`apply`, logging the outcome (a warning when a requested priority failed);
    returns the priority in force."""
    outcome = apply(priority)
    if outcome.reason:
        log.warning(
            "%s: real-time priority %d not applied (%s); running at normal priority",
            who,
            priority,
            outcome.reason,
        )
    elif outcome.priority:
        log.info("%s: event-loop thread at SCHED_FIFO priority %d", who, outcome.priority)
    return outcome.priority
