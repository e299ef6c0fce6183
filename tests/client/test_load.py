"""The load figure the pool places players by, read from a node's ``GET /status``."""

from __future__ import annotations

import asyncio
from typing import Any

from audionode.client import NodeStats, penalty
from tests.conftest import NodeFactory

STATUS: dict[str, Any] = {
    "version": "0.1.0", "uptime": 12.5,
    "cpu": {"process": 0.4, "system": 30.0, "cores": 2},
    "memory": {"rss": 1, "system_total": 2, "system_used": 1},
    "sessions": 1, "connected_sessions": 1, "players": 7,
    "engine": {"workers": 0, "frames": {}, "frames_per_minute": {"sent": 9000.0,
               "nulled": 30.0, "deficit": 60.0}, "players": {"1": {}, "2": {}, "3": {}}},
}  # fmt: skip


def test_status_is_read() -> None:
    assert NodeStats.from_status(STATUS) == NodeStats(
        players=7,
        cpu_percent=30.0,
        deficit_per_minute=60.0,
        nulled_per_minute=30.0,
        engine_players=3,
    )


def test_odd_or_missing_figures_count_as_zero() -> None:
    assert NodeStats.from_status(None) == NodeStats()
    odd = {"players": True, "cpu": {"system": "high"}, "engine": {"frames_per_minute": []}}
    assert NodeStats.from_status(odd) == NodeStats()


def test_each_figure_raises_the_penalty() -> None:
    idle = NodeStats()
    assert penalty(idle) == 0.0
    assert penalty(NodeStats(players=3)) == 3.0
    assert penalty(idle, placed=2) == 2.0
    assert 6.0 < penalty(NodeStats(cpu_percent=10.0)) < 6.5  # Lavalink's 1.05^x * 10 - 10
    assert penalty(NodeStats(cpu_percent=100.0)) == penalty(NodeStats(cpu_percent=250.0))
    # 1 % of one player's frames late (or nulled) costs more than 50 more players
    late = NodeStats(players=1, engine_players=1, deficit_per_minute=30.0)
    nulled = NodeStats(players=1, engine_players=1, nulled_per_minute=30.0)
    assert penalty(late) == penalty(nulled) > penalty(NodeStats(players=51))
    # the frame figures are per player: the same total over more players weighs less
    spread = NodeStats(players=10, engine_players=10, deficit_per_minute=30.0)
    assert penalty(spread) - 10 < penalty(late) - 1


async def test_two_status_reads_in_a_row_give_the_same_cpu(node_factory: NodeFactory) -> None:
    """The node samples its CPU itself (every 2 s, 10 s means): a read right after another
    gives the same figures, not the CPU of the few milliseconds between them."""
    async with node_factory() as node:

        async def cpu() -> dict[str, Any]:
            status, body = await node.get("/status")
            assert status == 200
            figures: dict[str, Any] = body["cpu"]
            return figures

        for _ in range(50):  # the first sample comes 0.5 s after the start
            if (await cpu())["window"] > 0:
                break
            await asyncio.sleep(0.2)
        for _ in range(3):  # a sample may fall between two reads (at most once in 2 s)
            first, second = await cpu(), await cpu()
            if first == second:
                break
        assert first == second, (first, second)
        assert 0.0 <= first["system"] <= 100.0 and first["window"] > 0
        print(f"\n/status cpu, twice in a row: {first}")
