"""The forwarding unit: discovery, keepalive/RTCP drop, decrypt -> re-encrypt per member."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audionode.voice import rtp
from audionode.voice.crypto import AES_GCM_MODE, XCHACHA_MODE, CryptoError, cipher_for
from audionode.voiceserver.udp import Forwarder, Member, open_forwarder

A = ("127.0.0.1", 40001)
B = ("127.0.0.1", 40002)
C = ("127.0.0.1", 40003)


def three_members(fwd: Forwarder) -> dict[int, bytes]:
    keys = {}
    for ssrc, mode, addr in ((1, XCHACHA_MODE, A), (2, AES_GCM_MODE, B), (3, XCHACHA_MODE, C)):
        fwd.add(Member(ssrc, user_id=100 + ssrc, channel_id=9))
        keys[ssrc] = os.urandom(32)
        fwd.set_key(ssrc, mode, keys[ssrc])
        [(reply, to)] = fwd.datagram(rtp.pack_discovery_request(ssrc), addr)
        assert to == addr and rtp.parse_discovery(reply) == (2, ssrc, addr[0], addr[1])
    return keys


def test_rtp_is_reencrypted_for_each_other_member_with_their_key_and_counter() -> None:
    fwd = Forwarder()
    keys = three_members(fwd)
    sender = cipher_for(XCHACHA_MODE, keys[1])
    frame = b"\xfc" + os.urandom(40)
    for n in range(3):
        header = rtp.pack_header(10 + n, 960 * n, 1)
        out = fwd.datagram(sender.seal(header, frame, 1000 + n), A)
        assert sorted(to for _, to in out) == [B, C]
        for packet, to in out:
            mode, key = (AES_GCM_MODE, keys[2]) if to == B else (XCHACHA_MODE, keys[3])
            opened = cipher_for(mode, key).open(packet)
            assert opened.payload == frame and opened.header.ssrc == 1
            assert opened.header.sequence == 10 + n and opened.nonce == n  # our own counter
            with pytest.raises(CryptoError):
                sender.open(packet)  # not the sender's key any more
    [(_, (members, stats))] = fwd.stats().items()
    assert members == 3 and stats.as_dict() == {
        "packets_in": 3,
        "packets_out": 6,
        "decrypt_failures": 0,
        "dropped": 0,
        "rtp_before_speaking": 3,
    }


def test_keepalive_rtcp_unknown_ssrc_and_forged_packets_are_not_forwarded() -> None:
    fwd = Forwarder()
    keys = three_members(fwd)
    assert fwd.datagram(rtp.pack_keepalive(7), A) == []
    rtcp = bytes([0x80, 201]) + bytes(6) + os.urandom(24)
    assert fwd.datagram(rtcp, A) == []
    stranger = cipher_for(XCHACHA_MODE, os.urandom(32))
    assert fwd.datagram(stranger.seal(rtp.pack_header(1, 0, 77), b"x", 0), A) == []
    forged = stranger.seal(rtp.pack_header(1, 0, 1), b"x", 0)
    assert fwd.datagram(forged, ("127.0.0.1", 1)) == []
    stats = fwd.stats()[9][1]
    assert stats.decrypt_failures == 1 and stats.packets_out == 0
    # the forged packet did not move member 1's address
    good = cipher_for(XCHACHA_MODE, keys[1]).seal(rtp.pack_header(2, 0, 1), b"y", 1)
    assert len(fwd.datagram(good, A)) == 2


def test_muted_senders_and_deaf_listeners_and_members_without_key() -> None:
    fwd = Forwarder()
    keys = three_members(fwd)
    fwd.add(Member(4, 104, 9))  # no op 4 yet: receives nothing, sends nothing
    seal = cipher_for(XCHACHA_MODE, keys[1]).seal
    fwd._by_ssrc[3].can_hear = False
    assert [to for _, to in fwd.datagram(seal(rtp.pack_header(1, 0, 1), b"a", 0), A)] == [B]
    fwd._by_ssrc[1].can_send = False
    assert fwd.datagram(seal(rtp.pack_header(2, 0, 1), b"a", 1), A) == []
    assert fwd.stats()[9][1].dropped == 1
    fwd.remove(2)
    fwd.remove(2)  # idempotent
    assert not fwd.has_ssrc(2)
    with pytest.raises(ValueError, match="in use"):
        fwd.add(Member(1, 1, 9))


def test_new_key_restarts_our_nonce_towards_that_member() -> None:
    fwd = Forwarder()
    keys = three_members(fwd)
    seal = cipher_for(XCHACHA_MODE, keys[1]).seal
    fwd.datagram(seal(rtp.pack_header(1, 0, 1), b"a", 0), A)
    fwd.set_key(2, AES_GCM_MODE, keys[2])
    out = dict((to, p) for p, to in fwd.datagram(seal(rtp.pack_header(2, 0, 1), b"a", 1), A))
    assert cipher_for(AES_GCM_MODE, keys[2]).open(out[B]).nonce == 0
    assert cipher_for(XCHACHA_MODE, keys[3]).open(out[C]).nonce == 1


@settings(max_examples=300)
@given(st.binary(max_size=120), st.integers(0, 3))
def test_any_datagram_is_handled_without_raising(data: bytes, ssrc: int) -> None:
    fwd = Forwarder()
    three_members(fwd)
    if len(data) >= 12:
        data = data[:8] + ssrc.to_bytes(4, "big") + data[12:]
    for packet, _ in fwd.datagram(data, A):
        assert isinstance(packet, bytes)


async def test_the_asyncio_driver_on_loopback() -> None:
    fwd = Forwarder()
    transport, _ = await open_forwarder(fwd, "127.0.0.1", 0)
    port = transport.get_extra_info("sockname")[1]
    loop = asyncio.get_running_loop()
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        keys = [os.urandom(32), os.urandom(32)]
        for i, s in enumerate(socks):
            s.setblocking(False)
            s.bind(("127.0.0.1", 0))
            fwd.add(Member(i + 1, i + 1, 5))
            fwd.set_key(i + 1, AES_GCM_MODE, keys[i])
            await loop.sock_sendto(s, rtp.pack_discovery_request(i + 1), ("127.0.0.1", port))
            reply = await asyncio.wait_for(loop.sock_recv(s, 100), 2)
            assert rtp.parse_discovery(reply).port == s.getsockname()[1]
        packet = cipher_for(AES_GCM_MODE, keys[0]).seal(rtp.pack_header(1, 0, 1), b"hi", 0)
        await loop.sock_sendto(socks[0], packet, ("127.0.0.1", port))
        got = await asyncio.wait_for(loop.sock_recv(socks[1], 100), 2)
        assert cipher_for(AES_GCM_MODE, keys[1]).open(got).payload == b"hi"
    finally:
        for s in socks:
            s.close()
        transport.close()


def test_channels_are_isolated() -> None:
    fwd = Forwarder()
    keys = three_members(fwd)
    fwd.add(Member(9, 109, channel_id=10))
    fwd.set_key(9, AES_GCM_MODE, os.urandom(32))
    fwd.datagram(rtp.pack_discovery_request(9), ("127.0.0.1", 40009))
    out = fwd.datagram(cipher_for(XCHACHA_MODE, keys[1]).seal(rtp.pack_header(1, 0, 1), b"a", 0), A)
    assert ("127.0.0.1", 40009) not in [to for _, to in out] and len(out) == 2
    assert fwd.stats()[10][1].packets_in == 0
