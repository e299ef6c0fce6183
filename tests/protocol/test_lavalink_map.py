"""Lavalink's JSON shapes (``protocol/lavalink_map.py``): the node's stats."""

from __future__ import annotations

from typing import Any

from audionode.control.views import FrameStats, NodeStatus
from audionode.protocol import lavalink_map as m


def _status(engine: dict[str, Any]) -> NodeStatus:
    return NodeStatus(
        version="1",
        uptime=5.0,
        cpu={"cores": 2, "system": 50.0, "process": 10.0},
        memory={"rss": 100, "system_total": 1000, "system_used": 400},
        sessions=1,
        connected_sessions=1,
        players=3,
        engine=engine,
        playing=2,
    )


def test_frame_stats_are_per_player_minutes_with_lavalinks_integer_division() -> None:
    assert m.frame_stats(None) is None
    assert m.frame_stats(FrameStats(players=0)) is None
    # one player: deficit is what was neither sent nor nulled of its 3000 slots
    assert m.frame_stats(FrameStats(players=1, sent=2990.4, nulled=4.0)) == {
        "sent": 2990,
        "nulled": 4,
        "deficit": 6,
    }
    # three players: totals 8999 sent, 2 nulled -> 2999 / 0 per player; the deficit is taken
    # from the totals (9000 - 9001 = -1, truncated toward zero: 0), not 3000 - 2999 - 0
    assert m.frame_stats(FrameStats(players=3, sent=8999.0, nulled=2.0)) == {
        "sent": 2999,
        "nulled": 0,
        "deficit": 0,
    }
    # two players, one far behind: (6000 - 4500 - 100) / 2 = 700
    assert m.frame_stats(FrameStats(players=2, sent=4500.0, nulled=100.0)) == {
        "sent": 2250,
        "nulled": 50,
        "deficit": 700,
    }
    # more than 3000 a minute (a rate over a short window): a negative deficit, truncated
    assert m.frame_stats(FrameStats(players=2, sent=6003.0, nulled=0.0))["deficit"] == -1  # type: ignore[index]


def test_stats_carry_the_admission_state_under_our_own_key() -> None:
    admission = {"at_capacity": True, "placeable": 0, "refused": 7, "workers": []}
    out = m.stats(_status({"admission": admission}))
    assert out["audionode"] == {"admission": {"atCapacity": True, "placeable": 0, "refused": 7}}
    assert {"players", "playingPlayers", "uptime", "memory", "cpu"} <= set(out)
    off = m.stats(_status({"admission": {"at_capacity": False, "placeable": None, "refused": 0}}))
    assert off["audionode"]["admission"]["placeable"] is None  # admission off: no bound
    assert "audionode" not in m.stats(_status({}))  # no engine, nothing to say
    op = m.stats_op(_status({"admission": admission}), None)
    assert isinstance(op, dict) and op["op"] == "stats" and op["frameStats"] is None
    assert op["audionode"]["admission"]["atCapacity"] is True  # type: ignore[index,call-overload]
