"""One producer thread per process for every pipeline (issue 7).

A thread per pipeline made every player cost a thread wake-up (and a contended GIL hand-off)
per refill; with hundreds of players those hand-offs, not the audio, took the core, and the
event-loop thread running the real-time sender was preempted mid-tick (measured in
docs/PERFORMANCE.md). Instead, pipelines ask this shared thread for a turn
(:meth:`Producer.schedule`, non-blocking, callable from any thread) when there is work: a
command was posted, a reader delivered data, or the sender drained the frame buffer to its
low-water mark. Each turn the pipeline returns how long it may sleep at most (a recheck while
its input lags, a safety net otherwise); the thread keeps those deadlines in a heap.

libav releases the GIL while it decodes and encodes, so a single thread keeps a core busy;
more cores are used by more engine worker processes, not more threads. The same thread also
reads the tracks that cannot stall (local files, in-memory data): a separate reader thread made
every demuxed packet a GIL hand-off between three threads, which cost more than the reading
(300 DAVE passthrough streams: 1.01 -> 0.94 cores and 1.3 % -> 0.4 % missed deadlines;
30 MP3 -> opus streams: 3.4 % -> 2.8 % of a core each; docs/PERFORMANCE.md).

One thread serving everyone also means one stuck turn (a libav call that never returns)
silences every guild of the process. So the thread leaves signs of life a watchdog reads
(``engine/watchdog.py``): :attr:`Producer.beat` (last wake-up or turn start), :attr:`Producer.busy`
(the item in its turn) and :meth:`Producer.owner_of` (the player that item serves).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import queue
import threading
import time
import weakref
from typing import Protocol

_log = logging.getLogger(__name__)

BACKGROUND_EVERY = 0.1
"""Seconds :meth:`Producer.release` may keep read-ahead and lazy turns back (see there)."""


class Steppable(Protocol):
    background: bool
    """True for read-ahead work (a reader's turn), which yields to frame production."""

    def step(self) -> float | None:
        """Do the pending work; return the longest sleep before the next turn (seconds), or
        None to get a turn only when scheduled."""
        ...


class Producer:
    """The shared producer thread; use :func:`shared` to get the process's instance."""

    def __init__(self, name: str = "producer") -> None:
        self._queue: queue.SimpleQueue[Steppable] = queue.SimpleQueue()
        self._timers: list[tuple[float, int, Steppable]] = []
        self._due: dict[Steppable, float] = {}
        self._order = itertools.count()
        self._holder: int | None = None
        self._held: list[Steppable] = []
        self._lazy: list[Steppable] = []
        """Turns kept back that may wait for the next hand-over (:meth:`release`)."""
        self._handed = 0.0
        """``time.monotonic()`` of the last hand-over by :meth:`release`."""
        self._owners: weakref.WeakKeyDictionary[Steppable, int] = weakref.WeakKeyDictionary()
        self.beat = time.monotonic()
        """``time.monotonic()`` of the thread's last wake-up or turn start (at least every
        0.5 s while it lives and is not stuck in a turn)."""
        self.busy: Steppable | None = None
        """The item whose turn is running, if any."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def schedule(self, item: Steppable, lazy: bool = False) -> None:
        """Give ``item`` a turn soon. Never blocks; safe from any thread. Between
        :meth:`hold` and :meth:`release`, calls from the holding thread are kept back;
        ``lazy`` ones (and read-ahead) may be kept a little longer (see :meth:`release`)."""
        if self._holder is not None and self._holder == threading.get_ident():
            (self._lazy if lazy or item.background else self._held).append(item)
        else:
            self._queue.put(item)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def tag(self, item: Steppable, owner: int) -> None:
        """Remember that ``item`` works for player ``owner`` (whom a stuck turn is blamed on)."""
        self._owners[item] = owner

    def owner_of(self, item: Steppable | None) -> int | None:
        return None if item is None else self._owners.get(item)

    def hold(self) -> None:
        """Keep back the turns this thread asks for until :meth:`release`.

        The sender holds during its tick: every frame it pops may ask for a refill, and a
        producer woken mid-tick contends for the GIL with the tick (the interpreter then
        switches between them every few milliseconds). Released at the end of the tick, the
        refills run while the sender sleeps until its next deadline (issue 7)."""
        self._holder = threading.get_ident()

    def release(self) -> None:
        """Hand over the turns kept back since :meth:`hold`.

        Read-ahead turns (``background``: a reader at its low mark still holds half its
        read-ahead, 1.5 s by default and never under 0.25 s) and ``lazy`` ones (a lane's
        position report, which says how old it is) are kept back further, until
        :data:`BACKGROUND_EVERY` after the last hand-over, so the streams that come due in
        successive ticks share one wake-up of this thread instead of one each: a wake-up
        costs about as much as a refill's work on a virtual machine (docs/PERFORMANCE.md,
        "Fewer wake-ups"). Any other turn (frame production, a lane that closed) goes at
        once and takes them along."""
        self._holder = None
        held, lazy = self._held, self._lazy
        if not held and not lazy:
            return
        now = time.monotonic()
        if not held and now - self._handed < BACKGROUND_EVERY:
            return
        self._handed = now
        self._held, self._lazy = [], []
        for item in held:
            self._queue.put(item)
        for item in lazy:
            self._queue.put(item)

    def _run(self) -> None:
        # Frame production goes first; read-ahead waits in ``backlog`` and gets at least one
        # turn per round, more while no production work is waiting. Served in plain arrival
        # order, the read bursts of hundreds of tracks that started together (a second of
        # audio each) queued ahead of pipelines whose buffers were running out (7.5 % of
        # frames missed by 300 pipelines in bench/pipeline_micro.py); one read turn per round
        # and no more starved the readers of a busy worker (bench/streams.py, issue 7).
        backlog: dict[Steppable, None] = {}
        while True:
            for item in self._wait(block=not backlog):
                if item.background:
                    backlog[item] = None
                else:
                    self._turn(item)
            while backlog:
                item = next(iter(backlog))
                del backlog[item]
                self._turn(item)
                if not self._queue.empty():
                    break

    def _turn(self, item: Steppable) -> None:
        self.busy = item
        self.beat = time.monotonic()
        try:
            delay = item.step()
        except Exception:  # one broken pipeline must not stop everyone's audio
            _log.exception("pipeline step failed")
            delay = None
        self.busy = None
        self._arm(item, delay)

    def _wait(self, block: bool = True) -> dict[Steppable, None]:
        """Items whose turn came (scheduled, or their deadline passed), in order, deduplicated;
        waits for the first one only when ``block``."""
        timeout = 0.5 if block else 0.0
        timers, dues = self._timers, self._due
        # Entries superseded by a later _arm of their item stay in the heap until they come
        # up; dropped here, they never wake the thread for nothing.
        while timers and dues.get(timers[0][2]) != timers[0][0]:
            heapq.heappop(timers)
        if timers:
            timeout = max(0.0, min(timeout, timers[0][0] - time.monotonic()))
        ready: dict[Steppable, None] = {}
        with contextlib.suppress(queue.Empty):
            ready[self._queue.get(timeout=timeout)] = None
        while True:
            try:
                ready[self._queue.get_nowait()] = None
            except queue.Empty:
                break
        now = self.beat = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            due, _, item = heapq.heappop(self._timers)
            if self._due.get(item) == due:
                del self._due[item]
                ready[item] = None
        return ready

    def _arm(self, item: Steppable, delay: float | None) -> None:
        if delay is None:
            self._due.pop(item, None)
            return
        due = time.monotonic() + delay
        self._due[item] = due  # an older deadline of the item becomes stale
        heapq.heappush(self._timers, (due, next(self._order), item))


_shared: dict[str, Producer] = {}
_lock = threading.Lock()


def shared(name: str = "producer") -> Producer:
    """The process's producer thread, started on first use."""
    with _lock:
        if name not in _shared:
            _shared[name] = Producer(name)
        return _shared[name]


def shared_readers() -> Producer:
    """The thread that reads local and in-memory tracks (``media/reader.py``): the producer
    itself (see the module docstring). A read turn is bounded (``reader._BURST`` packets), so
    it delays the next frame by far less than the buffered frames cover; network tracks,
    which can block for seconds, keep threads of their own."""
    return shared()
