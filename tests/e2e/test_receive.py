"""Issue 15 item 2 through the whole node: with ``voice.receive`` on, the in-process engine's
connection hears the listening member speak (DAVE on), per user, as PCM of the right tone."""

from __future__ import annotations

import asyncio

import numpy as np

from audionode.engine.engine import Engine
from audionode.engine.host import LocalHost
from tests.conftest import NodeFactory
from tests.e2e.chain import chain
from tests.voiceserver.audio import dominant_frequency, tone_opus


async def test_the_engine_hears_a_member_speak(node_factory: NodeFactory) -> None:
    async with chain(node_factory, voice={"receive": True}) as c:
        host = c.node.node.service.engine
        assert isinstance(host, LocalHost) and isinstance(host.engine, Engine)
        receive = host.engine.receive
        assert receive is not None
        heard: dict[int, list[np.ndarray]] = {}
        receive.on_audio = lambda player, user, pcm: heard.setdefault(user, []).append(pcm)
        receive.wants = None  # every player's audio (the engine decodes only consumed ones)
        await c.listener.wait_dave_ready()
        await c.listener.play(tone_opus(523.25, 1.0))
        await asyncio.sleep(0.2)
        pcm = np.concatenate(heard[c.listener.user_id]).mean(axis=1)
        assert len(pcm) >= 50 * 960
        assert abs(dominant_frequency(pcm) - 523.25) < 3
        [player] = receive.players()
        [stats] = receive.stats(player)
        assert stats.failed == 0 and stats.concealed == 0 and stats.played == 55
