"""Per-source token buckets for the voice server's UDP replies (docs/SECURITY.md "Voice server").

Pure: the caller passes the clock. The table of sources is bounded (least recently seen sources
are forgotten first), so a flood from spoofed addresses cannot grow it without limit; a forgotten
source simply starts again with a full bucket, which is the same allowance a new source gets.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

MAX_SOURCES: Final = 4096
"""Sources remembered at once; each costs a few dozen bytes."""


class RateLimiter:
    """``allow(source, now)``: at most ``rate`` events per second per source, bursts of ``rate``."""

    def __init__(self, rate: float, *, max_sources: int = MAX_SOURCES) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = rate
        self._max_sources = max_sources
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        """source -> (tokens, time of the last refill)."""

    def allow(self, source: str, now: float) -> bool:
        """Take one token from ``source``'s bucket; False when it is empty."""
        tokens, then = self._buckets.pop(source, (self.rate, now))
        tokens = min(self.rate, tokens + (now - then) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[source] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self._max_sources:
            self._buckets.popitem(last=False)
        return allowed

    def __len__(self) -> int:
        return len(self._buckets)
