"""Issue 12 item 3: a client extrapolates the playhead from ``position`` + ``as_of``; every
``PLAYER_UPDATE`` (and ``SOURCE_START``) must agree with what a listener actually hears to
within 100 ms; also from an engine worker, which holds position reports to write several
at once (engine/wire.py) and says for how long, so ``as_of`` stays where the position was."""

from __future__ import annotations

import time

import pytest

from audionode.voice.packetizer import SILENCE_FRAME
from tests.conftest import NodeFactory
from tests.e2e.chain import EventLog, chain


@pytest.mark.parametrize("workers", [0, 1])
async def test_player_update_positions_match_what_is_heard(
    node_factory: NodeFactory, workers: int
) -> None:
    wall_minus_mono = time.time() - time.monotonic()
    async with chain(node_factory, engine={"workers": workers}) as c:
        log = EventLog(c.ws)
        source = await c.load("tone:440?seconds=4")
        await log.wait("SOURCE_STOP", lambda d: d["source"]["tag"] == source["tag"], within=15)
        await log.stop()
        heard = [at for at, frame in c.audio_frames(c.bot_ssrc()) if frame != SILENCE_FRAME]
    start = log.ops("SOURCE_START")[0]["d"]["source"]
    heard_start = heard[0] + wall_minus_mono
    assert start["position"] == 0.0 and abs(start["as_of"] - heard_start) < 0.1
    updates = [f["d"] for f in log.ops("PLAYER_UPDATE")]
    assert len(updates) >= 3, updates
    errors = [u["position"] - (u["as_of"] - heard_start) for u in updates]
    assert all(abs(e) < 0.1 for e in errors), [round(e, 3) for e in errors]
