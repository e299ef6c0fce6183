"""The CPU figures of ``GET /status``: sampled by the node at a fixed interval, averaged over a
window, so that every reader gets the same meaningful figure.

psutil's ``cpu_percent(None)`` measures the time since its previous call. Called for each
request, two reads a few milliseconds apart covered those milliseconds and said 0 % or 100 %.
Here a timer on the control loop takes one sample every :data:`INTERVAL` seconds (two reads of
``/proc`` counters, about 0.1 ms; it runs between the sender's 20 ms ticks, never in one) and
``/status`` reports the mean of the samples of the last :data:`WINDOW` seconds. The first
sample comes :data:`FIRST` seconds after the start, so a node that has just started (about
when it begins to listen) does not report an idle 0 %.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import psutil

INTERVAL = 2.0
"""Seconds between two samples."""
WINDOW = 10.0
"""Seconds the reported means cover (once the node has run that long)."""
FIRST = 0.5
"""Seconds from the start to the first sample."""

Reader = Callable[[], tuple[float, float]]
"""One sample: (this process's CPU %, the machine's CPU %) since the previous sample."""


def _psutil_reader() -> Reader:
    process = psutil.Process()
    process.cpu_percent(None)  # the first reading only sets the baseline
    psutil.cpu_percent(None)
    return lambda: (process.cpu_percent(None), psutil.cpu_percent(None))


class CpuSampler:
    """:meth:`start` inside a running loop, read :meth:`figures`, :meth:`close` at the end.

    ``cpu_percent(None)`` of the whole machine keeps its baseline in psutil's module: nothing
    else in the node may call it, or the samples would cover less than their interval.
    """

    def __init__(
        self, interval: float = INTERVAL, window: float = WINDOW, read: Reader | None = None
    ) -> None:
        self.interval = interval
        self._read = read
        self._samples: deque[tuple[float, float, float]] = deque(
            maxlen=max(1, round(window / interval))
        )
        """(process %, system %, seconds covered), oldest first."""
        self._timer: asyncio.TimerHandle | None = None
        self._cores = psutil.cpu_count() or 1

    def start(self) -> None:
        if self._read is None:
            self._read = _psutil_reader()
        first = min(FIRST, self.interval)
        self._timer = asyncio.get_running_loop().call_later(first, self._sample, first)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sample(self, seconds: float) -> None:
        assert self._read is not None
        self._samples.append((*self._read(), seconds))
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.interval, self._sample, self.interval)

    def figures(self) -> dict[str, float]:
        """``process`` (this process, % of one core), ``system`` (the machine, 0-100): means
        over the last ``window`` seconds (0 before the first sample); ``cores``."""
        window = sum(s[2] for s in self._samples)
        process = sum(s[0] * s[2] for s in self._samples) / window if window else 0.0
        system = sum(s[1] * s[2] for s in self._samples) / window if window else 0.0
        return {
            "process": round(process, 2),
            "system": round(system, 2),
            "cores": self._cores,
            "window": round(window, 3),
        }
