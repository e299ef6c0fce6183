"""What one DAVE group change costs the node in davey, and whether davey holds the GIL meanwhile
(docs/decisions/0024-mls-steps-in-the-gap-after-a-tick.md).

    python -m bench.dave_steps [--cycles 50]

A node session (user 1) holds a group with one other member, built by the voice server's own
external sender (``voiceserver.mls.ExternalSender``), the way a channel of the built-in voice
server does. Each cycle is what ``bench/streams.py --churn`` makes the node do: the member
leaves (a Remove proposal: the node turns it into a commit, then processes that commit) and a
new member joins (an Add proposal: commit and welcome, the commit processed; the new member
processes the welcome, which is not the node's cost). Prints each step's CPU (process time, one
thread) and, for the GIL, how far a thread counting in a tight loop got during the step: if
davey released the GIL, the counter would run on the other core for the whole step; if it holds
it, the counter gets at most one switch interval (set to 0.5 ms here) around the call.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import davey

from audionode.voiceserver.mls import ExternalSender, group_id_for, proposals_payload

NODE, CHANNEL = 1, 900
APPEND = davey.ProposalsOperationType.append
SWITCH = 0.0005
"""The interpreter's switch interval here: a thread asking for the GIL gets it within this."""
T = TypeVar("T")


class Counter:
    """A thread that counts while ``running``: its progress says who held the GIL."""

    def __init__(self) -> None:
        self.count = 0
        self.running = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self.running:
            self.count += 1

    def stop(self) -> None:
        self.running = False
        self._thread.join()


def timed(
    counter: Counter, into: dict[str, list[float]], name: str, fn: Callable[..., T], *args: object
) -> T:
    """Run ``fn(*args)``; record its CPU ms, the counter's progress (counts) and its wall ms."""
    before, c0, w0 = time.process_time(), counter.count, time.perf_counter()
    out = fn(*args)
    cpu, wall = time.process_time() - before, time.perf_counter() - w0
    into[name].append(cpu * 1e3)
    into[name + " counter"].append(counter.count - c0)
    into[name + " wall"].append(wall * 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=50)
    args = ap.parse_args()
    sys.setswitchinterval(SWITCH)  # a thread that can take the GIL gets it within 0.5 ms

    ext = ExternalSender()
    group = group_id_for(CHANNEL)
    version = davey.DAVE_PROTOCOL_VERSION
    node = davey.DaveSession(version, NODE, CHANNEL)
    node.set_external_sender(ext.package())
    node.get_serialized_key_package()  # the node's own key package, sent on joining
    steps = [f"{n}: commit {how}" for n in ("remove", "add") for how in ("made", "processed")]
    rows: dict[str, list[float]] = {
        f"{step}{part}": [] for step in steps for part in ("", " counter", " wall")
    }
    counter = Counter()
    try:
        idle = counter.count
        time.sleep(0.2)
        free_rate = (counter.count - idle) / 200  # counts per ms while nobody else runs
        epoch, user = 0, 10
        for cycle in range(args.cycles + 1):
            member = davey.DaveSession(version, user, CHANNEL)
            member.set_external_sender(ext.package())
            add = ext.add_proposal(group, epoch, member.get_serialized_key_package())
            # op 27's first byte (the operation type) goes to davey as its own argument
            made = timed(counter, rows, "add: commit made",
                         node.process_proposals, APPEND, proposals_payload(0, [add])[1:])
            assert made is not None and made.welcome is not None
            timed(counter, rows, "add: commit processed", node.process_commit, made.commit)
            member.process_welcome(made.welcome)
            epoch = node.epoch or 0
            leaf = member.own_leaf_index
            assert leaf is not None
            remove = ext.remove_proposal(group, epoch, leaf)
            gone = timed(counter, rows, "remove: commit made",
                         node.process_proposals, APPEND, proposals_payload(0, [remove])[1:])
            assert gone is not None
            timed(counter, rows, "remove: commit processed", node.process_commit, gone.commit)
            epoch = node.epoch or 0
            user += 1
            if cycle == 0:  # the first cycle builds the group: not a steady-state change
                for v in rows.values():
                    v.clear()
    finally:
        counter.stop()
    print(f"davey {davey.__version__ if hasattr(davey, '__version__') else '?'}, "
          f"{args.cycles} cycles (one remove + one add each), epoch at the end {node.epoch}")
    print(f"counter while the main thread sleeps: {free_rate:,.0f} counts/ms; one switch "
          f"interval: {free_rate * SWITCH * 1e3:,.0f} counts")
    print("| step | CPU ms p50 | p90 | max | counter during the step (p50) | the same if davey "
          "let the GIL go |")
    print("|---|---|---|---|---|---|")
    total = 0.0
    for name in steps:
        values = rows[name]
        q = statistics.quantiles(values, n=10, method="inclusive")  # p90 never above max
        total += statistics.mean(values)
        counted = statistics.median(rows[name + " counter"])
        free = free_rate * statistics.median(rows[name + " wall"])
        print(f"| {name} | {statistics.median(values):.2f} | {q[-1]:.2f} | {max(values):.2f} "
              f"| {counted:,.0f} | {free:,.0f} |")
    print(f"one group change (remove + add), mean CPU: {total:.1f} ms")


if __name__ == "__main__":
    main()
