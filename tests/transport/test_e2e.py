"""End to end over loopback: the node's VoiceConnection + Sender and a listening second member in
one channel of the built-in voice server, DAVE on. The listener decrypts every packet (transport,
then DAVE) and opus-decodes it; the invariants at the end of discord-voice.md are asserted on
what it received, in both transport modes. Then: a resume after 4015 mid-stream, and a channel
move (4014, reconnect with the new credentials, a new DAVE group).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from audionode.config import VoiceConfig
from audionode.transport.sender import Sender
from audionode.transport.voice_conn import Closed, Connected, Resumed, VoiceConnection, VoiceEvent
from audionode.voice.crypto import AES_GCM_MODE, XCHACHA_MODE, Opened
from audionode.voice.packetizer import SILENCE_FRAME
from tests.transport.opus import OpusDecoder, OpusFrame, sine_opus
from tests.transport.voiceserver_harness import Harness, VoiceGrant, voice_server
from tests.voiceserver.member import VoiceMember

GUILD, CHANNEL, OTHER_CHANNEL, NODE, LISTENER, LISTENER2 = 501, 502, 503, 504, 505, 506
OPUS = sine_opus(3.2)[:160]  # 3.2 s of a 440 Hz sine (the encoder's flush packet dropped)


class Source:
    """A frame source over a list; empty (None) once played out."""

    def __init__(self, frames: list[bytes], track: int) -> None:
        self.frames = [OpusFrame(f, track, 20 * i) for i, f in enumerate(frames)]
        self.i = 0

    def pop(self) -> OpusFrame | None:
        if self.i == len(self.frames):
            return None
        self.i += 1
        return self.frames[self.i - 1]


@dataclass
class Node:
    """The node side: a VoiceConnection driven by the real-time Sender, with its datagrams
    tapped (for the sender-side nonce check) and its events and track starts recorded."""

    vc: VoiceConnection
    sender: Sender[int]
    events: list[VoiceEvent] = field(default_factory=list)
    started: list[tuple[int, int, float]] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)

    def tap(self) -> None:
        udp = self.vc._udp
        assert udp is not None
        send = udp.send

        def recording(data: bytes) -> None:
            self.sent.append(data)
            send(data)

        udp.send = recording  # type: ignore[method-assign]


async def start_node(h: Harness, grant: VoiceGrant, mode: str) -> Node:
    started: list[tuple[int, int, float]] = []
    sender: Sender[int] = Sender(lambda k, t, p: started.append((t, p, time.monotonic())))
    events: list[VoiceEvent] = []
    vc = VoiceConnection(
        GUILD,
        NODE,
        grant.session_id,
        grant.channel_id,
        grant.token,
        grant.endpoint,
        VoiceConfig(),
        events.append,
        http=h.http,
        modes=(mode,),
    )
    node = Node(vc, sender, events, started)
    await vc.connect()
    node.tap()
    sender.start()
    sender.attach(GUILD, vc)
    return node


async def until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def join_listener(h: Harness, user: int, channel: int) -> VoiceMember:
    grant = await h.lvsp.grant(user, channel, GUILD)
    listener = VoiceMember(h.endpoint, GUILD, user, channel, grant.session_id, grant.token)
    await listener.connect(h.http)
    return listener


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


def assert_pacing(times: list[float]) -> None:
    """≈50 packets/s, no long gap, no bursts (discord-voice.md invariants)."""
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
    node = await start_node(h, await h.lvsp.grant(NODE, CHANNEL, GUILD), mode)
    assert node.events == [Connected(node.vc.ssrc or 0, mode, 1)]
    # Alone in the channel: no group can exist, frames go out plain, nothing breaks (scenario 2).
    node.sender.play(GUILD, Source(OPUS[:10], track=0))
    await until(lambda: node.vc.frames_sent >= 15)  # 10 audio + 5 silence
    assert not node.vc.dave.ready and node.vc.frames_dropped == 0
    listener = await join_listener(h, LISTENER, CHANNEL)
    await until(lambda: node.vc.dave.ready and listener.dave_ready)
    assert listener.dave is not None
    assert node.vc.dave.voice_privacy_code == listener.dave.voice_privacy_code

    t_play = time.monotonic()
    node.sender.play(GUILD, Source(OPUS, track=1))
    await until(lambda: any(m["d"]["speaking"] == 0 and t > t_play for t, m in listener.ops_at(5)))
    ssrc = node.vc.ssrc
    assert ssrc is not None
    opened = [(t, o) for t, o in listener.opened_at(ssrc) if t > t_play]
    assert_rtp_stream(opened, ssrc)
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
    await listener.close()
    await node.vc.close()
    node.sender.close()


async def test_resume_after_4015_mid_stream(harness: Harness) -> None:
    h = harness
    node = await start_node(h, await h.lvsp.grant(NODE, CHANNEL, GUILD), AES_GCM_MODE)
    listener = await join_listener(h, LISTENER, CHANNEL)
    await until(lambda: node.vc.dave.ready and listener.dave_ready)
    epoch = node.vc.dave.epoch
    t_play = time.monotonic()
    node.sender.play(GUILD, Source(OPUS[:100], track=1))
    await until(lambda: node.vc.frames_sent >= 30)
    room = h.server.gateway.room(CHANNEL)
    assert room is not None
    room.sessions[NODE].close(4015, "Voice server crashed")
    await until(lambda: any(isinstance(e, Resumed) for e in node.events))
    closed = [e for e in node.events if isinstance(e, Closed)]
    assert closed == [Closed(4015, "Voice server crashed", True, True)]
    await until(lambda: any(m["d"]["speaking"] == 0 and t > t_play for t, m in listener.ops_at(5)))
    ssrc = node.vc.ssrc
    assert ssrc is not None
    opened = [(t, o) for t, o in listener.opened_at(ssrc) if t > t_play]
    assert_rtp_stream(opened, ssrc)  # seq and ts run on across the resume
    audio = [o.payload for _, o in opened if o.payload != SILENCE_FRAME]
    assert [listener.dave_decrypt(NODE, p) for p in audio] == OPUS[:100]
    assert node.vc.dave.epoch == epoch  # same DAVE group
    n4 = [int.from_bytes(d[-4:], "big") for d in node.sent if len(d) > 8]
    assert n4 == list(range(len(n4)))  # nonce counter never reset
    assert_server_accepted_all(h, CHANNEL)
    await listener.close()
    await node.vc.close()
    node.sender.close()


async def test_channel_move_reconnects_into_a_new_dave_group(harness: Harness) -> None:
    h = harness
    node = await start_node(h, await h.lvsp.grant(NODE, CHANNEL, GUILD), AES_GCM_MODE)
    old = await join_listener(h, LISTENER, CHANNEL)
    await until(lambda: node.vc.dave.ready and old.dave_ready)
    new = await join_listener(h, LISTENER2, OTHER_CHANNEL)
    first_ssrc = node.vc.ssrc
    # The bot moves: LVSP gives a new token; the old connection is closed with 4014.
    moved = await h.lvsp.grant(NODE, OTHER_CHANNEL, GUILD)
    await until(lambda: any(isinstance(e, Closed) for e in node.events))
    closed = [e for e in node.events if isinstance(e, Closed)]
    assert [(c.code, c.by_remote, c.will_reconnect) for c in closed] == [(4014, True, False)]
    assert not node.vc.ready
    await node.vc.reconnect(moved.token, moved.endpoint, OTHER_CHANNEL, moved.session_id)
    node.tap()
    assert node.vc.dave.channel_id == OTHER_CHANNEL and node.vc.ssrc != first_ssrc
    await until(lambda: node.vc.dave.ready and new.dave_ready)
    t_play = time.monotonic()
    node.sender.play(GUILD, Source(OPUS[:25], track=2))
    await until(lambda: any(m["d"]["speaking"] == 0 and t > t_play for t, m in new.ops_at(5)))
    ssrc = node.vc.ssrc
    assert ssrc is not None
    audio = [o.payload for t, o in new.opened_at(ssrc) if o.payload != SILENCE_FRAME]
    assert [new.dave_decrypt(NODE, p) for p in audio] == OPUS[:25]
    assert not [p for p in old.packets if p.at > t_play]  # nothing leaks into the old channel
    assert new.dave is not None and old.dave is not None
    assert new.dave.voice_privacy_code != old.dave.voice_privacy_code
    assert_server_accepted_all(h, OTHER_CHANNEL)
    for listener in (old, new):
        await listener.close()
    await node.vc.close()
    node.sender.close()
