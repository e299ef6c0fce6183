"""Test-only fault injection for the watchdog tests (``messages.Fault``).

Off unless the engine's process was started with ``AUDIONODE_TEST_FAULTS=1`` in its
environment; no route or op builds a ``Fault``, so a bot cannot reach it either way. The
faults are those a watchdog must catch: a producer turn that never returns (a libav call
stuck with the GIL released: the event loop goes on, every guild of the process is silent),
a blocked event loop, and a C call holding the GIL (the whole process stops).
"""

from __future__ import annotations

import os
import time

from audionode.engine import messages as msg
from audionode.errors import BadRequest, Conflict
from audionode.media.producer import shared as shared_producer

ENV = "AUDIONODE_TEST_FAULTS"


class _Stall:
    """A producer item whose one turn sleeps (the GIL released, as libav does)."""

    background = False

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def step(self) -> float | None:
        time.sleep(self.seconds)
        return None


def inject(command: msg.Fault) -> None:
    """Apply ``command`` if fault injection is enabled; raise otherwise."""
    if os.environ.get(ENV) != "1":
        raise Conflict(f"fault injection is disabled (set {ENV}=1 in the engine's environment)")
    if command.kind == "stall-producer":
        producer = shared_producer()
        stall = _Stall(command.seconds)
        producer.tag(stall, command.player)
        producer.schedule(stall)
    elif command.kind == "stall-loop":
        time.sleep(command.seconds)
    elif command.kind == "hold-gil":
        # One C call that never lets the GIL go (summing a range runs no bytecode): every
        # thread of the process stops, the watchdog's publisher included. ~1e8 a second.
        sum(range(int(command.seconds * 1e8)))
    else:
        raise BadRequest(f"unknown fault {command.kind!r}")
