"""End to end over loopback: the node's VoiceConnection + Sender and a listening second member in
one channel of the built-in voice server, DAVE on. The listener decrypts every packet (transport,
then DAVE) and opus-decodes it; the invariants at the end of docs/discord-voice.md are asserted on
what it received, in both transport modes. Faults mid-stream (resume, reconnect, move, DAVE
transitions) are in test_faults.py.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator

import pytest

from audionode.transport.voice_conn import Connected
from audionode.voice.crypto import AES_GCM_MODE, XCHACHA_MODE, Opened
from audionode.voice.packetizer import SILENCE_FRAME
from tests.transport import rig
from tests.transport.opus import OpusDecoder, sine_opus
from tests.transport.rig import Node, Source, until, until_silent
from tests.transport.voiceserver_harness import Harness, VoiceGrant, voice_server
from tests.voiceserver.member import VoiceMember

GUILD, CHANNEL, OTHER_CHANNEL, NODE, LISTENER, LISTENER2 = 501, 502, 503, 504, 505, 506
OPUS = sine_opus(3.2)[:160]  # 3.2 s of a 440 Hz sine (the encoder's flush packet dropped)


async def start_node(h: Harness, grant: VoiceGrant, mode: str) -> Node:
    return await rig.start_node(h, grant, mode, guild=GUILD)


async def join_listener(h: Harness, user: int, channel: int) -> VoiceMember:
    return await rig.join_listener(h, user, channel, GUILD)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with voice_server() as h:
        yield h


def parse_dave_footer(frame: bytes) -> tuple[int, int]:
    """(supplemental size, truncated nonce) of a DAVE audio frame (§2.1)."""
    assert frame[-2:] == b"\xfa\xfa", f"no 0xFAFA marker: {frame[-8:].hex()}"
    supp = frame[-3]
    nonce_bytes = frame[-supp:-3][8:]  # after the 8-byte tag; opus has no unencrypted ranges
    nonce = shift = 0
    for i, b in enumerate(nonce_bytes):
        nonce |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            assert i == len(nonce_bytes) - 1, "trailing bytes after the ULEB128 nonce"
            break
    assert supp == 8 + len(nonce_bytes) + 0 + 1 + 2
    return supp, nonce


def assert_rtp_stream(opened: list[tuple[float, Opened]], ssrc: int) -> None:
    """RTP v2, PT 0x78, one SSRC, seq +1 and ts +960 for every packet, silence included."""
    for _, o in opened:
        assert (o.header.payload_type, o.header.ssrc) == (0x78, ssrc)
    for (_, a), (_, b) in itertools.pairwise(opened):
        assert (b.header.sequence - a.header.sequence) % 2**16 == 1
        assert (b.header.timestamp - a.header.timestamp) % 2**32 == 960


async def play_and_hear(
    node: Node, listener: VoiceMember, frames: list[bytes], guild: int = GUILD
) -> tuple[float, list[tuple[float, Opened]]]:
    """Play ``frames`` until the node says it stopped speaking; when the play began and what
    the listener opened of the node's SSRC since, checked as one RTP stream."""
    t_play = time.monotonic()
    node.sender.play(guild, Source(frames, track=1))
    await until_silent(listener, t_play)
    ssrc = node.vc.ssrc
    assert ssrc is not None
    opened = [(t, o) for t, o in listener.opened_at(ssrc) if t > t_play]
    assert_rtp_stream(opened, ssrc)
    return t_play, opened


def assert_pacing(times: list[float]) -> None:
    """≈50 packets/s, no long gap, no bursts (docs/discord-voice.md invariants)."""
    gaps = [b - a for a, b in itertools.pairwise(times)]
    rate = len(gaps) / (times[-1] - times[0])
    assert rate == pytest.approx(50.0, rel=0.01), f"{rate:.3f} packets/s"
    assert max(gaps) < 0.060, f"max gap {max(gaps) * 1000:.1f} ms"
    assert sum(g < 0.005 for g in gaps) <= 2, "bursts of back-to-back packets"


def assert_server_accepted_all(h: Harness, channel: int) -> None:
    """The voice server opened every packet the node sent, and each came after an op 5."""
    stats = h.server.stats()["channels"][str(channel)]
    assert stats["packets_in"] > 0
    assert (stats["decrypt_failures"], stats["dropped"], stats["rtp_before_speaking"]) == (0, 0, 0)


@pytest.mark.parametrize("mode", [AES_GCM_MODE, XCHACHA_MODE])
async def test_dave_stream_invariants(harness: Harness, mode: str) -> None:
    h = harness
    async with contextlib.AsyncExitStack() as cleanup:
        node = await start_node(h, await h.lvsp.grant(NODE, CHANNEL, GUILD), mode)
        cleanup.push_async_callback(node.close)
        assert node.events == [Connected(node.vc.ssrc or 0, mode, 1)]
        # Alone in the channel: no group can exist, frames go out plain, nothing breaks
        # (scenario 2).
        node.sender.play(GUILD, Source(OPUS[:10], track=0))
        await until(lambda: node.vc.session.frames_sent >= 15)  # 10 audio + 5 silence
        assert not node.vc.dave.ready and node.vc.session.frames_dropped == 0
        listener = await join_listener(h, LISTENER, CHANNEL)
        cleanup.push_async_callback(listener.close)
        await until(lambda: node.vc.dave.ready and listener.dave_ready)
        assert listener.dave is not None
        assert node.vc.dave.voice_privacy_code == listener.dave.voice_privacy_code

        t_play, opened = await play_and_hear(node, listener, OPUS)
        payloads = [o.payload for _, o in opened]
        audio = [p for p in payloads if p != SILENCE_FRAME]
        assert len(audio) == len(OPUS)
        trailing = list(itertools.takewhile(lambda p: p == SILENCE_FRAME, reversed(payloads)))
        assert len(trailing) >= 5 and payloads[: len(OPUS)] == audio

        # DAVE: every audio frame carries the footer, nonces increase, the listener decrypts each
        # back to exactly the opus the sender popped, and every frame decodes to 960 samples.
        nonces = [parse_dave_footer(p)[1] for p in audio]
        assert all(b > a for a, b in itertools.pairwise(nonces))
        decrypted = [listener.dave_decrypt(NODE, p) for p in audio]
        assert decrypted == OPUS
        decoder = OpusDecoder()
        for frame in [*decrypted, *trailing]:
            assert decoder.decode(frame) == 960
        assert decoder.samples == 960 * (len(audio) + len(trailing))

        # speaking 1 reached the listener before the first packet, speaking 0 after the last one
        speaking = [(t, m["d"]["speaking"]) for t, m in listener.ops_at(5) if t > t_play]
        on_at = next(t for t, s in speaking if s & 1)
        off_at = next(t for t, s in speaking if s == 0)
        assert on_at < opened[0][0] and off_at > opened[-1][0]
        assert_pacing([t for t, _ in opened[: len(OPUS)]])

        # sender side: N4 strictly +1 from 0 since the only op 4, plain phase included
        n4 = [int.from_bytes(d[-4:], "big") for d in node.sent if len(d) > 8]
        assert n4 == list(range(len(n4)))
        assert [(t, p) for t, p, _ in node.started] == [(0, 0), (1, 0)]
        assert node.started[1][2] <= opened[0][0]  # reported when actually sent
        assert_server_accepted_all(h, CHANNEL)
