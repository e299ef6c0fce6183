"""Packetizer counters and framing (docs/discord-voice.md §1.9-§1.11, invariants)."""

from __future__ import annotations

import os
import struct
import time

import nacl.secret
import pytest

from audionode.voice import rtp
from audionode.voice.crypto import AES_GCM_MODE, XCHACHA_MODE, cipher_for
from audionode.voice.packetizer import SILENCE_FRAME, Packetizer, silence_frames

KEY = os.urandom(32)


def test_counters_wrap_and_every_packet_opens_with_an_independent_call() -> None:
    p = Packetizer(0xCAFE, cipher_for(XCHACHA_MODE, KEY), sequence=65534, timestamp=2**32 - 960)
    frames = [os.urandom(40 + i) for i in range(6)]
    pkts = [p.packet(f) for f in frames]
    heads = [rtp.parse_header(x) for x in pkts]
    assert [h.sequence for h in heads] == [65534, 65535, 0, 1, 2, 3]
    assert [h.timestamp for h in heads] == [2**32 - 960, 0, 960, 1920, 2880, 3840]
    assert {h.ssrc for h in heads} == {0xCAFE} and {h.payload_type for h in heads} == {0x78}
    assert [struct.unpack(">I", x[-4:])[0] for x in pkts] == list(range(6))
    box = nacl.secret.Aead(KEY)
    for pkt, frame in zip(pkts, frames, strict=True):
        assert box.decrypt(pkt[12:-4], pkt[:12], pkt[-4:] + bytes(20)) == frame


def test_new_key_resets_only_the_nonce() -> None:
    p = Packetizer(1, cipher_for(AES_GCM_MODE, KEY))
    for _ in range(3):
        p.packet(b"abc")
    assert (p.sequence, p.timestamp, p.nonce) == (3, 2880, 3)
    new_key = os.urandom(32)
    p.set_cipher(cipher_for(AES_GCM_MODE, new_key))
    pkt = p.packet(b"after op 4")
    assert rtp.seq_ts_ssrc(pkt) == (3, 2880, 1)
    opened = cipher_for(AES_GCM_MODE, new_key).open(pkt)
    assert (opened.nonce, opened.payload) == (0, b"after op 4")


def test_nonce_wraps_at_two_to_the_32() -> None:
    p = Packetizer(1, cipher_for(AES_GCM_MODE, KEY))
    p.nonce = 2**32 - 1
    assert p.packet(b"x")[-4:] == b"\xff\xff\xff\xff"
    assert p.packet(b"y")[-4:] == b"\x00\x00\x00\x00"


def test_silence_tail_is_five_contiguous_plain_frames() -> None:
    assert silence_frames() == (b"\xf8\xff\xfe",) * 5
    cipher = cipher_for(AES_GCM_MODE, KEY)
    p = Packetizer(9, cipher, sequence=10)
    pkts = [p.packet(f) for f in (b"opus", *silence_frames())]
    assert [rtp.seq_ts_ssrc(x)[0] for x in pkts] == list(range(10, 16))
    assert [cipher.open(x).payload for x in pkts[1:]] == [SILENCE_FRAME] * 5


def test_packet_before_key_is_a_caller_error_and_keepalive_counts() -> None:
    p = Packetizer(1)
    with pytest.raises(RuntimeError, match="before set_cipher"):
        p.packet(b"x")
    assert (p.sequence, p.nonce) == (0, 0)
    assert p.keepalive() == bytes(8)
    assert p.keepalive() == b"\x01" + bytes(7)
    assert rtp.classify(p.keepalive()) is rtp.DatagramKind.KEEPALIVE


@pytest.mark.parametrize("mode", [AES_GCM_MODE, XCHACHA_MODE])
def test_per_packet_cost_is_small(mode: str) -> None:
    """Not a benchmark: a generous ceiling that catches an accidental per-packet key setup."""
    p = Packetizer(1, cipher_for(mode, KEY))
    frame = os.urandom(120)
    n = 5000
    start = time.perf_counter()
    for _ in range(n):
        p.packet(frame)
    per_packet = (time.perf_counter() - start) / n
    assert per_packet < 200e-6, f"{per_packet * 1e6:.1f} us per packet"
