"""The engine's ``Connect`` against the built-in voice server: the same credentials again change
nothing while the connection lives, and retry it once it closed for good (4006)."""

from __future__ import annotations

import asyncio

import pytest

from audionode.engine import messages as m
from audionode.engine.engine import Engine
from tests.conftest import eventually, make_config
from tests.transport.voiceserver_harness import voice_server

pytestmark = pytest.mark.timeout(30)

BOT, GUILD, CHANNEL = 4242, 31000, 32000


class Recorder:
    """An engine and the events it emitted."""

    def __init__(self) -> None:
        self.events: list[m.Event] = []
        self.engine = Engine(make_config(), self.events.append)

    def of(self, kind: type[m.Event]) -> list[m.Event]:
        return [e for e in self.events if isinstance(e, kind)]

    def closed(self) -> list[tuple[int, bool]]:
        return [(e.code, e.will_reconnect) for e in self.events if isinstance(e, m.VoiceClosed)]


async def test_the_same_credentials_retry_a_connection_closed_for_good() -> None:
    async with voice_server() as vs:
        grant = await vs.lvsp.grant(BOT, CHANNEL, GUILD)
        connect = m.Connect(player=1, guild_id=GUILD, user_id=BOT, channel_id=CHANNEL,
                            session_id=grant.session_id, token=grant.token,
                            endpoint=vs.endpoint)  # fmt: skip
        ours, thief = Recorder(), Recorder()
        await ours.engine.start()
        await thief.engine.start()
        try:
            ours.engine.handle(connect)
            await eventually(lambda: len(ours.of(m.VoiceConnected)) == 1, timeout=10)
            ours.engine.handle(connect)  # alive: a repeated update changes nothing
            await asyncio.sleep(0.3)
            assert len(ours.of(m.VoiceConnected)) == 1 and ours.closed() == []

            # another connection identifies with the same voice session and takes it
            thief.engine.handle(connect)
            await eventually(lambda: len(thief.of(m.VoiceConnected)) == 1, timeout=10)
            await eventually(lambda: ours.closed() == [(4006, False)], timeout=10)

            ours.engine.handle(connect)  # closed for good: the same credentials try again
            await eventually(lambda: len(ours.of(m.VoiceConnected)) == 2, timeout=10)
            await eventually(lambda: thief.closed() == [(4006, False)], timeout=10)
        finally:
            await ours.engine.close()
            await thief.engine.close()
