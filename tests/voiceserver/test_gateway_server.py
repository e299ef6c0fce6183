"""The voice gateway + forwarding unit with two test members (voice-core codecs + davey)."""

from __future__ import annotations

import asyncio
import itertools

import aiohttp
import pytest

from audionode.voice.crypto import AES_GCM_MODE, XCHACHA_MODE
from audionode.voice.packetizer import SILENCE_FRAME
from audionode.voiceserver.app import VoiceServer

from .audio import FRAME, decode_opus, dominant_frequency, snr_db, tone_opus
from .conftest import Lvsp, LvspFactory
from .member import VoiceMember

GUILD = 4242
CHANNEL = 0x0123_4567_89AB


async def voice_state(c: Lvsp, user_id: int, channel_id: int = CHANNEL) -> dict[str, str]:
    reply = await c.request(
        7, {"user_id": str(user_id), "channel_id": str(channel_id), "guild_id": str(GUILD)}
    )
    info: dict[str, str] = reply["d"]["info"]
    return info


def member(
    server: VoiceServer, info: dict[str, str], mode: str | None = None, **kw: int
) -> VoiceMember:
    return VoiceMember(
        f"ws://127.0.0.1:{server.port}",
        info["guild_id"],
        int(info["user_id"]),
        int(info["channel_id"]),
        info["session_id"],
        info["token"],
        mode=mode,
        **kw,
    )


@pytest.fixture
async def control(lvsp: LvspFactory) -> Lvsp:
    c = await lvsp()
    await c.identify()
    return c


def check_stream(
    listener: VoiceMember, sender: VoiceMember, frames: list[bytes], freq: float
) -> None:
    """Transport- and DAVE-decrypt, decode, FFT, and the RTP invariants (discord-voice.md end)."""
    opened = listener.opened(sender.ssrc)
    assert len(opened) == len(frames) + 5, "every frame and 5 silence frames arrive"
    seqs = [o.header.sequence for o in opened]
    tss = [o.header.timestamp for o in opened]
    assert all(o.header.payload_type == 0x78 for o in opened)
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
    assert all((b - a) % 2**32 == FRAME for a, b in itertools.pairwise(tss))
    nonces = [o.nonce for o in opened]
    assert nonces == list(range(nonces[0], nonces[0] + len(nonces)))  # the server's counter
    dave_frames = [o.payload for o in opened if o.payload != SILENCE_FRAME]
    assert len(dave_frames) == len(frames)
    assert all(f.endswith(b"\xfa\xfa") for f in dave_frames), "DAVE-encrypted end to end"
    media = listener.media_frames(sender.ssrc)
    assert media[: len(frames)] == frames and media[len(frames) :] == [SILENCE_FRAME] * 5
    pcm, samples = decode_opus(media[: len(frames)])
    assert samples == FRAME * len(frames)
    assert abs(dominant_frequency(pcm[4800:]) - freq) < 2
    assert snr_db(pcm[4800:], freq) > 20
    speaking = [
        (at, m["d"])
        for at, m in listener.json_seen
        if m["op"] == 5 and m["d"]["user_id"] == str(sender.user_id) and m["d"]["speaking"] == 1
    ]
    assert speaking and speaking[0][0] < listener.packets[0].at, "op 5 before the first packet"


@pytest.mark.parametrize("modes", [(AES_GCM_MODE, AES_GCM_MODE), (XCHACHA_MODE, AES_GCM_MODE)])
async def test_two_members_exchange_dave_audio(
    server: VoiceServer, control: Lvsp, http: aiohttp.ClientSession, modes: tuple[str, str]
) -> None:
    a = member(server, await voice_state(control, 1001), modes[0])
    b = member(server, await voice_state(control, 1002), modes[1])
    await a.connect(http)
    assert a.ready["modes"] == [AES_GCM_MODE, XCHACHA_MODE]
    assert a.ops(11)[0]["d"] == {"user_ids": []}
    await b.connect(http)
    assert b.ops(11)[0]["d"] == {"user_ids": ["1001"]}
    await a.wait_op(11, 2)
    assert a.ops(11)[1]["d"] == {"user_ids": ["1002"]}
    await a.wait_dave_ready()
    await b.wait_dave_ready()
    assert a.dave is not None and b.dave is not None
    assert a.dave.voice_privacy_code == b.dave.voice_privacy_code
    assert a.ssrc != b.ssrc

    tone = tone_opus(440, 1.0)
    await a.play(tone)
    await b.wait_for(lambda: len(b.opened(a.ssrc)) >= len(tone) + 5)
    check_stream(b, a, tone, 440)
    # and the other way
    tone2 = tone_opus(660, 0.6)
    await b.play(tone2)
    await a.wait_for(lambda: len(a.opened(b.ssrc)) >= len(tone2) + 5)
    check_stream(a, b, tone2, 660)
    assert a.plain_frames_sent == 0 and b.plain_frames_sent == 0

    stats = server.stats()["channels"][str(CHANNEL)]
    assert stats["members"] == 2 and stats["decrypt_failures"] == 0
    assert stats["packets_in"] == stats["packets_out"] == len(tone) + len(tone2) + 10
    await a.close()
    await b.wait_op(13)
    assert b.ops(13)[0]["d"] == {"user_id": "1001"}
    await b.close()
    await asyncio.sleep(0.05)
    assert server.gateway.member_count(CHANNEL) == 0
