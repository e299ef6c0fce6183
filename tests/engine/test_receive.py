"""The receive path (issue 15 item 2): per-user jitter buffer, opus with loss concealment,
speaking state, on its own thread. First without sockets (real opus tones, packets lost and
reordered on purpose), then with two real discord.py 2.7.1 members speaking into the built-in
voice server with DAVE on, heard by the node's voice connection through a lossy, reordering UDP
input."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import numpy as np
import pytest

from audionode.config import VoiceConfig
from audionode.engine.opusdec import OpusDecodeError, OpusDecoder
from audionode.engine.receive import ReceivePath
from audionode.transport.voice_conn import VoiceConnection
from audionode.voice.events import AudioPacket, MemberLeft
from audionode.voice.packetizer import SILENCE_FRAME
from audionode.voiceserver.app import VoiceServer
from tests.voiceserver.audio import dominant_frequency, snr_db, tone_opus
from tests.voiceserver.conftest import (  # noqa: F401 (fixtures used by name)
    http,
    lvsp,
    server,
    server_config,
)
from tests.voiceserver.dpy import DpyHarness, OpusTone

pytestmark = pytest.mark.timeout(60)
PLAYER, GUILD, CHANNEL, NODE = 1, 71, 72, 73


class Heard:
    """What ``on_audio`` and ``on_speaking`` delivered, per user."""

    def __init__(self) -> None:
        self.pcm: dict[int, list[np.ndarray]] = {}
        self.speaking: list[tuple[int, bool]] = []

    def audio(self, player: int, user: int, pcm: np.ndarray) -> None:
        assert player == PLAYER
        self.pcm.setdefault(user, []).append(pcm)

    def talk(self, player: int, user: int, on: bool) -> None:
        self.speaking.append((user, on))

    def mono(self, user: int) -> np.ndarray:
        return np.concatenate(self.pcm[user]).mean(axis=1)


def packets(user: int, ssrc: int, frames: list[bytes], start: int = 65500) -> list[AudioPacket]:
    return [
        AudioPacket(user, ssrc, (start + i) % 65536, 960 * i, f, True) for i, f in enumerate(frames)
    ]


def test_the_decoder_conceals_a_lost_frame_and_refuses_garbage() -> None:
    tone = tone_opus(440, 0.2)
    dec = OpusDecoder()
    assert dec.conceals, "libopus from the PyAV wheel was found"
    pcm = np.concatenate([dec.decode(f) for f in tone[:5]] + [dec.conceal(), dec.conceal(tone[6])])
    assert pcm.shape == (7 * 960, 2) and pcm.dtype == np.float32
    concealed = pcm[5 * 960 :, 0]
    assert np.abs(concealed).max() > 0.05, "PLC/FEC continue the tone, not silence"
    assert dec.decode(SILENCE_FRAME).shape == (960, 2)
    with pytest.raises(OpusDecodeError):
        dec.decode(b"\xff\xff\xff\xff\xff")


def test_two_users_lost_and_reordered_packets_come_out_in_order_per_user() -> None:
    heard = Heard()
    rp = ReceivePath(heard.audio, heard.talk)
    a = packets(10, 1000, tone_opus(440, 1.0))
    b = packets(20, 2000, [*tone_opus(660, 0.8), SILENCE_FRAME])
    lost = {id(a[17]), id(a[30]), id(b[9])}
    arrivals = [p for pair in zip(a, b, strict=False) for p in pair] + a[len(b) :]
    for i in range(0, len(arrivals) - 3, 7):  # reorder: swap packets two apart
        arrivals[i], arrivals[i + 2] = arrivals[i + 2], arrivals[i]
    feed = iter(p for p in arrivals if id(p) not in lost)
    for _ in range(100):
        for _ in range(2):
            nxt = next(feed, None)
            if nxt is not None:
                rp.feed(PLAYER, nxt)
        rp.step()
    rp.feed(PLAYER, MemberLeft(20))
    for _ in range(10):
        rp.step()
    assert abs(dominant_frequency(heard.mono(10)) - 440) < 3
    assert abs(dominant_frequency(heard.mono(20)) - 660) < 3
    assert snr_db(heard.mono(10), 440) > 20, "concealment did not smear the tone"
    stats = {s.user_id: s for s in rp.stats(PLAYER)}
    assert (stats[10].played, stats[10].concealed) == (len(a) - 2, 2)
    assert stats[10].failed == 0 and 20 not in stats, "user 20 left"
    assert len(heard.mono(10)) == len(a) * 960, "every slot of the spurt: played or concealed"
    assert stats[10].played + stats[10].concealed == len(a)
    assert heard.speaking.count((10, True)) == 1, "one talk spurt, concealment included"
    assert [on for u, on in heard.speaking if u == 20] == [True, False]


# --- real discord.py members into the built-in voice server ------------------------------------
# (the voice server's test fixtures: ``server``, ``http``, ``lvsp``)


@pytest.fixture
async def control(lvsp: Any) -> Any:  # noqa: F811 (the imported fixture)
    """An identified LVSP client of the test's voice server."""
    c = await lvsp()
    await c.identify()
    return c


class Lossy:
    """The node's UDP input made bad on purpose: every 15th RTP datagram lost, every 6th held
    back behind the one after it (reordered)."""

    def __init__(self, deliver: Any) -> None:
        self.deliver = deliver
        self.n = 0
        self.held: bytes | None = None
        self.lost = 0

    def __call__(self, data: bytes) -> None:
        if len(data) < 13 or data[1] != 0x78:  # not RTP opus: discovery, keepalives, RTCP
            self.deliver(data)
            return
        self.n += 1
        if self.n % 15 == 0:
            self.lost += 1
            return
        if self.n % 6 == 0 and self.held is None:
            self.held = data
            return
        self.deliver(data)
        if self.held is not None:
            held, self.held = self.held, None
            self.deliver(held)


async def test_two_discordpy_members_speaking_are_heard_per_user_through_loss(
    server: VoiceServer,  # noqa: F811 (the imported fixtures)
    control: Any,
    http: aiohttp.ClientSession,  # noqa: F811
) -> None:
    heard = Heard()
    rp = ReceivePath(heard.audio, heard.talk)
    rp.start()
    info = (await control.request(7, _vst(NODE)))["d"]["info"]
    node = VoiceConnection(
        GUILD,
        NODE,
        info["session_id"],
        CHANNEL,
        info["token"],
        f"ws://{server.endpoint}",
        VoiceConfig(),
        lambda e: None,
        http=http,
        on_receive=lambda e: rp.feed(PLAYER, e),
    )
    await node.connect()
    udp = node._udp
    assert udp is not None
    lossy = udp._on_datagram = Lossy(udp._on_datagram)
    members = []
    try:
        for uid in (555, 556):
            bot = DpyHarness(control, http, user_id=uid, guild_id=GUILD, channel_id=CHANNEL)
            await bot.connect(server.endpoint)
            members.append(bot)
        await _until(
            lambda: node.dave.ready and all(m.voice_client._connection.can_encrypt for m in members)
        )
        tones = {555: tone_opus(440, 2.0), 556: tone_opus(660, 2.0)}
        await asyncio.gather(*(m.play_and_wait(OpusTone(tones[m.user_id])) for m in members))
        await asyncio.sleep(0.3)
        stats = {s.user_id: s for s in rp.stats(PLAYER)}  # before they leave (op 13 drops them)
    finally:
        for m in members:
            await m.disconnect()
        await node.close()
        rp.close()
    for uid, freq in ((555, 440), (556, 660)):
        pcm = heard.mono(uid)
        assert abs(dominant_frequency(pcm) - freq) < 3, uid
        assert snr_db(pcm, freq) > 15, uid
        assert len(pcm) >= 100 * 960, "two seconds of each member, gaps concealed"
        assert (uid, True) in heard.speaking and (uid, False) in heard.speaking
        assert stats[uid].failed == 0 and stats[uid].concealed >= 1
    assert lossy.lost >= 10
    print(f"\nRECEIVE two discord.py members, {lossy.lost} datagrams lost: {list(stats.values())}")


def _vst(user: int) -> dict[str, str]:
    return {"user_id": str(user), "channel_id": str(CHANNEL), "guild_id": str(GUILD)}


async def _until(predicate: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)
