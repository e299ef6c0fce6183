"""Prober: what a source learns about media before queueing it, without loading av here.

The control process never imports PyAV (docs/ARCHITECTURE.md, the layering rules): probing
runs ``audionode.media.probe`` in a process pool of its own (``sources.probe_processes``),
named by string so this module never imports it. A probe reads the media exactly as the engine
will, through the same guard and bounds (``media/container.py``). Probes of one host may hold
only part of the pool (``sources/fairslots.py``), so one slow media server cannot delay another
guild's load; a probe that overruns its timeout has its process killed and replaced.
"""

from __future__ import annotations

import msgspec

from audionode.playable import Playable
from audionode.sources.procpool import ProcessPool

_PROBE = "audionode.media.probe:probe_plain"
_GRACE = 2.0
"""Seconds the pool waits beyond the probe's own I/O timeout before killing the process."""


class ProbeResult(msgspec.Struct, frozen=True):
    """What :func:`audionode.media.probe.probe` found (plain data across the process pipe)."""

    duration_ms: int | None
    is_live: bool
    codec: str
    title: str | None
    artist: str | None


class Prober:
    """Runs probes in ``processes`` worker processes, each within ``timeout`` seconds of I/O."""

    def __init__(self, processes: int = 2, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.pool = ProcessPool(
            processes, timeout + _GRACE, name="probe", preload=("audionode.media.probe",)
        )

    async def probe(self, playable: Playable, key: str | None = None) -> ProbeResult:
        """Probe ``playable``; ``key`` (its host) shares the pool fairly. Raises the probe's
        own error (SourceError, or Forbidden when the policy refused a fetch)."""
        found: dict[str, object] = await self.pool.run(_PROBE, playable, self.timeout, key=key)
        return msgspec.convert(found, ProbeResult)

    async def close(self) -> None:
        await self.pool.close()
