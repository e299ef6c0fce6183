"""How loaded a node is, from its ``GET /status`` (``docs/API.md``), as one number.

The pool puts a new player on the node with the lowest :func:`penalty`. The formula is
Lavalink's load balancer's, so operators who know it can read ours:

- one point per player on the node;
- CPU: ``1.05 ** cpu_percent * 10 - 10`` (0 when idle, 1.3k at 100 %), the machine's CPU
  (``cpu.system``, which the node samples itself and reports as a 10 s mean), since several
  node processes may share it;
- frames the engine could not send in time (``deficit``) or sent as silence because nothing
  was ready (``nulled``), per player and per minute of the 3000 frames a player sends:
  ``1.03 ** (500 * deficit_share) * 600 - 600`` and twice ``1.03 ** (500 * nulled_share) *
  300 - 300``: a node that already drops frames gets no new players while another does not.

Pure functions: the pool feeds them the status it polls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

FRAMES_PER_MINUTE = 3000
"""20 ms frames in a minute: what one playing player sends."""


@dataclass(frozen=True, slots=True)
class NodeStats:
    """The figures of a node's ``/status`` that matter for placing players."""

    players: int = 0
    cpu_percent: float = 0.0
    """The machine's CPU use, 0-100 (the node's mean over its last 10 s)."""
    deficit_per_minute: float = 0.0
    nulled_per_minute: float = 0.0
    engine_players: int = 0
    """Players the engine counted frames for (the divisor of the frame figures)."""

    @classmethod
    def from_status(cls, body: Any) -> NodeStats:
        """Read ``GET /status``; missing or odd figures count as zero (an old node)."""
        if not isinstance(body, dict):
            return cls()
        cpu = _dict(body.get("cpu"))
        engine = _dict(body.get("engine"))
        rates = _dict(engine.get("frames_per_minute"))
        return cls(
            players=int(_number(body.get("players"))),
            cpu_percent=_number(cpu.get("system")),
            deficit_per_minute=_number(rates.get("deficit")),
            nulled_per_minute=_number(rates.get("nulled")),
            engine_players=len(_dict(engine.get("players"))),
        )


def penalty(stats: NodeStats, placed: int = 0) -> float:
    """The node's load as one number (lower is better); ``placed`` counts players the pool put
    on the node since ``stats`` was read, so a burst of joins spreads before the next poll."""
    cpu = math.pow(1.05, min(max(stats.cpu_percent, 0.0), 100.0)) * 10 - 10
    share = FRAMES_PER_MINUTE * max(stats.engine_players, 1)
    deficit = min(stats.deficit_per_minute / share, 1.0)
    nulled = min(stats.nulled_per_minute / share, 1.0)
    frames = (math.pow(1.03, 500 * max(deficit, 0.0)) * 600 - 600) + 2 * (
        math.pow(1.03, 500 * max(nulled, 0.0)) * 300 - 300
    )
    return stats.players + placed + cpu + frames


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)
