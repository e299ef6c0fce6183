"""Issue 7: an engine worker SIGKILLed mid-track. The whole chain is real: a scripted bot drives
the node (one worker process), which plays into the built-in voice server, where a listening
member decrypts and decodes what arrives."""

from __future__ import annotations

import os
import signal

import pytest

from audionode.engine.worker import WorkerPool
from audionode.voice import rtp
from audionode.voice.packetizer import SILENCE_FRAME
from tests.conftest import NodeFactory, eventually
from tests.e2e.chain import BOT, Chain, chain, decode, dominant, events_until

pytestmark = pytest.mark.timeout(40)


def ssrcs(c: Chain) -> set[int]:
    return {
        rtp.seq_ts_ssrc(p.data)[2]
        for p in c.listener.packets
        if rtp.classify(p.data) is rtp.DatagramKind.RTP
    }


_decrypted: dict[tuple[int, int], bytes | None] = {}


def heard(c: Chain, ssrc: int) -> tuple[list[bytes], int]:
    """The audio frames of ``ssrc`` the listener could decrypt, and how many it could not.

    Each frame is DAVE-decrypted once (davey refuses a replayed frame), keyed by RTP sequence.
    """
    audio, failed = [], 0
    for _, opened in c.listener.opened(ssrc):
        frame = opened.payload
        if frame == SILENCE_FRAME:
            continue
        key = (ssrc, opened.header.sequence)
        if key not in _decrypted:
            try:
                _decrypted[key] = c.listener.dave_decrypt(BOT, frame)
            except ValueError:
                _decrypted[key] = None
        plain = _decrypted[key]
        if plain is None:
            failed += 1
        else:
            audio.append(plain)
    return audio, failed


async def test_a_sigkilled_worker_is_reported_and_the_guild_plays_again(
    node_factory: NodeFactory,
) -> None:
    async with chain(node_factory, engine={"workers": 1}) as c:
        pool = c.node.node.service.engine
        assert isinstance(pool, WorkerPool)
        await c.load("tone:440?seconds=30")
        await events_until(c.ws, "SOURCE_START")
        await c.listener.wait_for(lambda: len(c.listener.packets) >= 25, within=10)
        first = c.bot_ssrc()
        (victim,) = pool.pids()

        os.kill(victim, signal.SIGKILL)
        seen = await events_until(c.ws, "PLAYER_TRACEBACK", within=10)
        assert "worker" in seen[-1]["d"]["traceback"]
        await events_until(c.ws, "SOURCE_START", within=15)

        # A fresh worker opened a fresh voice connection (new SSRC) and the tone goes on.
        await c.listener.wait_for(lambda: len(ssrcs(c) - {first}) == 1, within=10)
        (second,) = ssrcs(c) - {first}
        await c.listener.wait_for(lambda: len(heard(c, second)[0]) >= 60, within=10)
        audio, undecryptable = heard(c, second)
        # Frames sent while the listener was still joining the new member's DAVE epoch.
        assert undecryptable < 50, undecryptable
        assert abs(dominant(decode(audio)[9600:]) - 440) < 5
        assert pool.restarts == 1 and victim not in pool.pids()

        # The node never went down; its status shows the replacement's frame counters.
        await eventually(lambda: bool(pool.stats()["players"]), timeout=5)
        status, body = await c.node.get("/status")
        assert status == 200
        engine = body["engine"]
        assert engine["restarts"] == 1 and engine["processes"][0]["alive"]
        (counters,) = engine["players"].values()
        assert counters["sent"] > 0 and counters["dave"] is True
        assert engine["frames"]["sent"] >= counters["sent"]
