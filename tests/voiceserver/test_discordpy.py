"""An independent client: the real discord.py 2.7.1 VoiceClient joins through an LVSP-created
voice state, completes the handshake with DAVE and plays a tone; a test member decodes it."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from audionode.voice.crypto import AES_GCM_MODE, XCHACHA_MODE
from audionode.voiceserver.app import VoiceServer
from audionode.voiceserver.lvsp_client import LvspClient

from .audio import tone_opus
from .dpy import DpyHarness, OpusTone
from .test_gateway_server import CHANNEL, GUILD, check_stream, member, voice_state

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("listener_mode", "bot_first"),
    [(AES_GCM_MODE, False), (XCHACHA_MODE, True)],
    ids=["aes-gcm-listener/bot-welcomed", "xchacha-listener/bot-commits"],
)
async def test_discordpy_plays_dave_audio_to_a_listener(
    server: VoiceServer,
    control: LvspClient,
    http: aiohttp.ClientSession,
    listener_mode: str,
    bot_first: bool,
) -> None:
    bot = DpyHarness(control, http, user_id=555, guild_id=GUILD, channel_id=CHANNEL)
    listener = member(server, await voice_state(control, 777), listener_mode)
    if not bot_first:
        await listener.connect(http)
    vc = await bot.connect(server.endpoint)
    if bot_first:
        await listener.connect(http)
    try:
        assert bot.http.urls == [f"wss://{server.endpoint}/?v=8"]
        assert vc.is_connected() and vc.mode == XCHACHA_MODE  # discord.py has no AES-GCM
        await listener.wait_for(lambda: 555 in listener.recognized)
        await listener.wait_dave_ready(within=10)
        # who committed: the first member with a key package gets the proposals (op 27)
        dave_ops = {op for _, _, op in listener.binary_seen}
        assert dave_ops == ({25, 30} if bot_first else {25, 27, 29})
        conn = vc._connection
        await listener.wait_for(lambda: conn.dave_session is not None and conn.can_encrypt)
        assert conn.dave_session is not None and listener.dave is not None
        assert conn.dave_session.voice_privacy_code == listener.dave.voice_privacy_code

        tone = tone_opus(523.25, 1.0)
        await bot.play_and_wait(OpusTone(tone))
        await listener.wait_for(lambda: len(listener.opened(vc.ssrc)) >= len(tone) + 5)
        await asyncio.sleep(0.1)  # anything extra would show up as a count mismatch
        # discord.py sends op 5 from its player thread through run_coroutine_threadsafe and its
        # first RTP packet right away, so op 5 may trail the first packet by a fraction of a
        # millisecond: allow one frame period.
        check_stream(listener, _Sender(vc.ssrc, 555), tone, 523.25, speaking_slack=0.02)
        stats = server.stats()["channels"][str(CHANNEL)]
        assert stats["decrypt_failures"] == 0 and stats["members"] == 2
        assert stats["packets_in"] == stats["packets_out"] == len(tone) + 5
        assert stats["rtp_before_speaking"] <= 2  # the race described above (1 seen here)
    finally:
        await bot.disconnect()
    await listener.wait_op(13)
    assert listener.ops(13)[-1]["d"] == {"user_id": "555"}
    await listener.close()


class _Sender:
    def __init__(self, ssrc: int, user_id: int) -> None:
        self.ssrc = ssrc
        self.user_id = user_id
