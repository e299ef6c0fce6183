"""The engine watchdog: signs of life a worker publishes, and the verdict the pool draws.

One stuck libav call on a worker's shared producer thread silences every guild of that
worker, and a stuck event loop stops its sender; neither kills the process, so neither is
noticed by waiting for the process to exit. Each worker therefore publishes its vitals into a
few shared float64 slots (:class:`Beacon`, created by the pool and inherited at spawn):

- ``published``: when the worker's publisher thread last wrote (every 0.1 s). Stale means
  the whole process stalled: a C call holding the GIL, a stopped or swapped-out process;
- ``loop``: the worker event loop's last beat (every sender tick, 20 ms, when the engine
  has a sender clock; else a callback every 0.1 s);
- ``producer``: the producer thread's :attr:`~audionode.media.producer.Producer.beat` (its
  last wake-up or turn start; an idle thread wakes at least every 0.5 s);
- ``busy_since`` / ``owner``: when the running producer turn began and the player it serves
  (the one a stall or a crash mid-turn is blamed on).

The pool reads them (a few loads, no system call) every :data:`CHECK_EVERY` seconds and
:func:`verdict` says whether the worker must be killed and restarted: noticed at most
``timeout`` + :data:`PUBLISH_EVERY` + :data:`CHECK_EVERY` after the stall began. All times are
``time.monotonic()``, which is the same clock in every process of the machine.

With ``engine.workers = 0`` there is no process to restart: :class:`LocalWatch` (run by the
in-process host) can only notice and report a stalled producer thread (``/status``, the log);
the thread itself cannot be stopped and the event loop it would report from is the one that
stalls. docs/SECURITY.md ("Engine") says what to use instead: workers.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol


class Producer(Protocol):
    """What the watchdog reads of a producer thread (``audionode.media.producer.Producer``).

    A protocol rather than the class, so the control process, which runs this module's
    checks, never imports ``media/``."""

    beat: float
    busy: Any

    @property
    def alive(self) -> bool: ...

    def owner_of(self, item: Any) -> int | None: ...

log = logging.getLogger(__name__)

PUBLISH_EVERY = 0.1
"""Seconds between two writes of a worker's vitals (and between two loop beats)."""
CHECK_EVERY = 0.25
"""Seconds between two checks of every worker by the pool."""
SLOW_TURN = 0.5
"""A producer turn running this long when the worker died makes its player the suspect (a
turn normally takes well under a frame, 20 ms). Not less: on a loaded machine an ordinary
turn preempted mid-way runs for a few hundred milliseconds of wall time (senders there woke up
to 370 ms late), and a wrong suspect costs a popular track its quarantine everywhere."""
_PUBLISHED, _LOOP, _PRODUCER, _BUSY_SINCE, _OWNER, _ALIVE = range(6)


@dataclass(frozen=True, slots=True)
class Vitals:
    """One reading of a worker's beacon (``time.monotonic()`` seconds)."""

    published: float
    loop: float
    producer: float
    busy_since: float
    """0 when no producer turn runs."""
    owner: int | None
    """The player the running producer turn serves, if known."""
    producer_alive: bool

    @property
    def started(self) -> bool:
        return self.published > 0

    def suspect(self, now: float) -> int | None:
        """The player blamed for a death now: the owner of a producer turn that has been
        running for :data:`SLOW_TURN` or longer, else nobody in particular."""
        if self.busy_since and now - self.busy_since >= SLOW_TURN:
            return self.owner
        return None

    def death_suspect(self) -> int | None:
        """The player blamed for a death: :meth:`suspect` as of the beacon's last write, the
        latest moment known to precede the death. Judged at the moment the pool noticed, an
        ordinary turn that began just before a SIGKILL looked slow whenever the pool noticed
        late (a loaded machine: 100 ms and more), so outside kills were blamed on whichever
        player's turn ran, and a popular track was quarantined at the second kill (the soak,
        docs/PERFORMANCE.md). A turn that holds the GIL from before the last write until the
        death is not seen this way: the death is then blamed on nobody in particular."""
        return self.suspect(self.published)

    def report(self, now: float) -> dict[str, Any]:
        """The ``/status`` view: liveness and the age of each sign of life."""
        return {
            "producer_alive": self.producer_alive,
            "producer_idle_s": _age(now, self.producer),
            "loop_idle_s": _age(now, self.loop),
            "busy_s": _age(now, self.busy_since) if self.busy_since else 0.0,
        }


def _age(now: float, then: float) -> float:
    return round(max(0.0, now - then), 3)


@dataclass(frozen=True, slots=True)
class Stall:
    """What stopped making progress, and for how long."""

    part: Literal["process", "producer", "loop"]
    seconds: float

    def __str__(self) -> str:
        what = {"process": "worker process", "producer": "producer thread", "loop": "event loop"}
        return f"the {what[self.part]} made no progress for {self.seconds:.1f} s"

    def suspect(self, v: Vitals, now: float) -> int | None:
        """The player the stall is blamed on: the producer turn that never ended serves it;
        a whole-process stall (the GIL held) most likely comes from a long producer turn; a
        stalled event loop runs nothing a track controls."""
        if self.part == "producer":
            return v.owner if v.busy_since else None
        if self.part == "process":
            return v.suspect(now)
        return None


def verdict(v: Vitals, now: float, timeout: float) -> Stall | None:
    """What stalled in the worker, or None while it is healthy (or not started yet).

    The loop and producer beats are judged as the publisher saw them (their age at its last
    write), the publisher itself against ``now``: when the whole process stops, every beat
    ages together and only the process is to blame. A dead producer thread counts as stalled
    from its last beat."""
    if not v.started:
        return None
    if now - v.published > timeout:
        return Stall("process", now - v.published)
    if not v.producer_alive or v.published - v.producer > timeout:
        return Stall("producer", now - v.producer)
    if v.published - v.loop > timeout:
        return Stall("loop", now - v.loop)
    return None


class Beacon:
    """Six float64 slots in shared memory: written by one worker, read by the pool.

    Made by the pool before the spawn and passed to the worker as a process argument (a
    ``multiprocessing`` raw array is inherited at spawn, not pickled by value). A float64
    store is a single aligned write, so a reader never sees half of one; the slots are read
    independently, which is all a staleness check needs.
    """

    def __init__(self, ctx: Any) -> None:
        self.slots: Any = ctx.RawArray(ctypes.c_double, 6)

    def read(self) -> Vitals:
        s = self.slots
        owner = s[_OWNER]
        return Vitals(
            published=s[_PUBLISHED],
            loop=s[_LOOP],
            producer=s[_PRODUCER],
            busy_since=s[_BUSY_SINCE],
            owner=None if owner < 0 else int(owner),
            producer_alive=s[_ALIVE] > 0,
        )

    def publish(self, loop_beat: float, producer: Producer) -> None:
        busy = producer.busy
        owner = producer.owner_of(busy)
        s = self.slots
        s[_LOOP] = loop_beat
        s[_PRODUCER] = producer.beat
        s[_BUSY_SINCE] = producer.beat if busy is not None else 0.0
        s[_OWNER] = -1.0 if owner is None else float(owner)
        s[_ALIVE] = 1.0 if producer.alive else 0.0
        s[_PUBLISHED] = time.monotonic()


class Publisher:
    """The worker side: beats on the event loop and a thread that copies the vitals into the
    beacon every :data:`PUBLISH_EVERY` seconds. The thread, not the loop, writes, so a
    stalled loop shows as a stale ``loop`` beat rather than as silence.

    The beats come from the engine's sender clock when it has one (``start(loop,
    timer=False)``, then :meth:`beat` every tick): the loop wakes every 20 ms for the tick
    anyway, and a timer of its own cost ten more wake-ups a second, each about as dear as a
    tick with a few streams on a virtual machine (docs/PERFORMANCE.md, "Fewer wake-ups").
    A clock that stops (a stuck loop, or a tick that raised) stops the beats, which is the
    stall the watchdog is for."""

    def __init__(self, beacon: Beacon, producer: Producer) -> None:
        self._beacon = beacon
        self._producer = producer
        self._loop_beat = time.monotonic()
        self._stop = threading.Event()
        self._handle: asyncio.TimerHandle | None = None
        self._thread = threading.Thread(target=self._run, name="vitals", daemon=True)

    def start(self, loop: asyncio.AbstractEventLoop, timer: bool = True) -> None:
        """Start publishing; ``timer`` False: the caller calls :meth:`beat` from the loop."""
        if timer:
            self._beat(loop)
        else:
            self.beat()
        self._thread.start()

    def beat(self) -> None:
        """The loop is alive (called on the event loop's thread)."""
        self._loop_beat = time.monotonic()

    def close(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()

    def _beat(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop_beat = time.monotonic()
        self._handle = loop.call_later(PUBLISH_EVERY, self._beat, loop)

    def _run(self) -> None:
        while not self._stop.wait(PUBLISH_EVERY):
            self._beacon.publish(self._loop_beat, self._producer)


class LocalWatch:
    """The in-process host's watchdog (``engine.workers = 0``): notices a producer thread
    that stopped making progress and an event loop that was blocked, logs them, and reports
    them in ``/status``. It restarts nothing (see the module docstring)."""

    def __init__(self, producer: Producer, timeout: float) -> None:
        self._producer = producer
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None
        self.stalled = False
        self.producer_stalls = 0
        self.loop_stalls = 0
        self.loop_stall_max_s = 0.0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def check(self, now: float) -> None:
        p = self._producer
        stalled = not p.alive or now - p.beat > self._timeout
        if stalled and not self.stalled:
            self.producer_stalls += 1
            owner = p.owner_of(p.busy)
            log.error(
                "the producer thread made no progress for %.1f s (alive: %s, serving player %s):"
                " every player of this process is silent; restart the node, or run the engine"
                " in worker processes (engine.workers >= 1) so the watchdog can restart it",
                now - p.beat,
                p.alive,
                owner,
            )
        elif self.stalled and not stalled:
            log.warning("the producer thread is making progress again")
        self.stalled = stalled

    async def _run(self) -> None:
        while True:
            due = time.monotonic() + CHECK_EVERY
            await asyncio.sleep(CHECK_EVERY)
            now = time.monotonic()
            late = now - due
            if late > self._timeout:  # only noticed afterwards: this loop was the stalled one
                self.loop_stalls += 1
                self.loop_stall_max_s = max(self.loop_stall_max_s, round(late, 3))
                log.error("the event loop was blocked for %.1f s", late)
            self.check(now)

    def report(self) -> dict[str, Any]:
        p = self._producer
        now = time.monotonic()
        return {
            "producer_alive": p.alive and now - p.beat <= self._timeout,
            "producer_idle_s": _age(now, p.beat),
            "producer_stalls": self.producer_stalls,
            "loop_stalls": self.loop_stalls,
            "loop_stall_max_s": self.loop_stall_max_s,
        }
