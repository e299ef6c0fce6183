"""The listener's receive path without a server: real sealed RTP into the voice session's receive
path (as its UDP socket would hand it over), decoded PCM (or a counted error) out. The connected
path is exercised by test_demo.py against the real voice server."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from audionode.demo.listener import Listener
from audionode.media.codec import OpusEncoder
from audionode.voice import rtp
from audionode.voice.crypto import AES_GCM_MODE, XCHACHA_MODE, cipher_for
from audionode.voice.opcodes import Speaking
from audionode.voice.packetizer import SILENCE_FRAME, Packetizer

KEY = bytes(range(32))
BOT, SSRC = 4242, 77


def listener(mode: str = AES_GCM_MODE) -> Listener:
    lst = Listener("ws://127.0.0.1:9", 1, 5353, 2, "session", "token")
    lst.conn.session.cipher = cipher_for(mode, KEY)  # as op 4 would install it
    return lst


def sender(mode: str = AES_GCM_MODE) -> Packetizer:
    p = Packetizer(SSRC, sequence=65534, timestamp=0)  # wraps: 65534, 65535, 0, ...
    p.set_cipher(cipher_for(mode, KEY))
    return p


def tone_frames(n: int) -> list[bytes]:
    enc = OpusEncoder(128000, 10)
    t = np.arange(n * 960) / 48000
    pcm = np.repeat((0.5 * np.sin(2 * np.pi * 440 * t))[:, None], 2, axis=1).astype(np.float32)
    return [enc.encode(pcm[i * 960 : (i + 1) * 960]) for i in range(n)]


def deliver(lst: Listener) -> None:
    for event in lst.conn.session.take():
        lst.hear(event)  # type: ignore[arg-type]  # only receive events arise here


def hear(lst: Listener, datagram: bytes) -> None:
    lst.conn.session.receive_datagram(datagram, 0.0)
    deliver(lst)


def speaking(lst: Listener, ssrc: int, user: int) -> None:
    lst.conn.session.handle(Speaking(1, ssrc, user_id=str(user)), 0.0)
    deliver(lst)


def test_frames_before_op5_wait_for_it_then_everything_is_decoded_in_order() -> None:
    lst, p = listener(XCHACHA_MODE), sender(XCHACHA_MODE)
    frames = [*tone_frames(10), SILENCE_FRAME]
    for frame in frames[:4]:
        hear(lst, p.packet(frame))
    assert not lst.streams, "DAVE needs the sender: the session holds them until op 5"
    speaking(lst, SSRC, BOT)
    for frame in frames[4:]:
        hear(lst, p.packet(frame))
    stream = lst.streams[SSRC]
    assert (stream.packets, stream.lost, stream.errors, stream.user_id) == (11, 0, [], BOT)
    assert stream.silence_frames == 1 and stream.audio_seconds == 10 * 0.02
    assert len(stream.pcm()) == 11 * 960
    assert stream.dave_frames == 0, "no DAVE group here: plain opus passes"


def test_a_skipped_sequence_number_counts_as_lost_across_the_wrap() -> None:
    lst, p = listener(), sender()
    speaking(lst, SSRC, BOT)
    frames = tone_frames(4)
    hear(lst, p.packet(frames[0]))  # seq 65534
    p.packet(frames[1])  # seq 65535 never arrives
    hear(lst, p.packet(frames[2]))  # seq 0
    hear(lst, p.packet(frames[3]))
    assert (lst.streams[SSRC].packets, lst.streams[SSRC].lost) == (3, 1)


def test_a_packet_sealed_under_another_key_is_an_error_not_audio() -> None:
    lst, p = listener(), Packetizer(SSRC, sequence=1, timestamp=0)
    p.set_cipher(cipher_for(AES_GCM_MODE, bytes(32)))
    speaking(lst, SSRC, BOT)
    hear(lst, p.packet(tone_frames(1)[0]))
    stream = lst.streams[SSRC]
    assert stream.chunks == [] and len(stream.errors) == 1
    assert "authentication failed" in stream.errors[0]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_any_datagram_is_heard_or_counted_never_raised(data: bytes, known: bool) -> None:
    lst = listener()
    if known and len(data) >= 12:
        speaking(lst, rtp.seq_ts_ssrc(data)[2], BOT)
    hear(lst, data)
    counted = [(s.packets, len(s.errors), s.chunks) for s in lst.streams.values() if s.packets]
    kind = rtp.classify(data)
    if kind is rtp.DatagramKind.RTP and known:
        assert counted == [(1, 1, [])]  # nobody else has our key
    elif kind is rtp.DatagramKind.RTP:
        assert len(counted) <= 1 and all(c[2] == [] for c in counted)
    else:
        assert counted == [], "RTCP, keepalives and junk are not media"
