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
        join(fwd, Member(ssrc, user_id=100 + ssrc, channel_id=9), addr)
        keys[ssrc] = os.urandom(32)
        fwd.set_key(ssrc, mode, keys[ssrc])
    return keys


def join(fwd: Forwarder, member: Member, addr: tuple[str, int]) -> None:
    """Ready, IP discovery from ``addr``, op 1 naming it: bound at once."""
    fwd.add(member)
    [(reply, to)] = fwd.datagram(rtp.pack_discovery_request(member.ssrc), addr)
    assert to == addr and rtp.parse_discovery(reply) == (2, member.ssrc, addr[0], addr[1])
    fwd.select(member.ssrc, *addr)
    assert fwd.address_of(member.ssrc) == addr


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
        "strangers": 0,
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
    assert fwd.datagram(forged, ("127.0.0.1", 1)) == []  # a stranger: dropped unread
    assert fwd.datagram(forged, A) == []  # from the bound address but not authentic
    stats = fwd.stats()[9][1]
    assert stats.strangers == 1 and stats.decrypt_failures == 1 and stats.packets_out == 0
    assert fwd.udp_stats.unknown_ssrc == 1
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
            fwd.select(i + 1, "127.0.0.1", s.getsockname()[1])
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
    join(fwd, Member(9, 109, channel_id=10), ("127.0.0.1", 40009))
    fwd.set_key(9, AES_GCM_MODE, os.urandom(32))
    out = fwd.datagram(cipher_for(XCHACHA_MODE, keys[1]).seal(rtp.pack_header(1, 0, 1), b"a", 0), A)
    assert ("127.0.0.1", 40009) not in [to for _, to in out] and len(out) == 2
    assert fwd.stats()[10][1].packets_in == 0


# --- binding: media and discovery only from the address bound to the session -----------------

STRANGER = ("127.0.0.1", 50000)


def test_a_stranger_cannot_rebind_a_member_by_discovery_or_rtp() -> None:
    fwd = Forwarder()
    keys = three_members(fwd)
    # discovery naming member 2's SSRC from a stranger: no reply, nothing moves
    assert fwd.datagram(rtp.pack_discovery_request(2), STRANGER) == []
    # forged RTP (any key) naming member 2: dropped unread
    forged = cipher_for(AES_GCM_MODE, os.urandom(32)).seal(rtp.pack_header(1, 0, 2), b"x", 0)
    assert fwd.datagram(forged, STRANGER) == []
    # a genuine packet of member 2 replayed from elsewhere: still dropped (no rebinding)
    genuine = cipher_for(AES_GCM_MODE, keys[2]).seal(rtp.pack_header(1, 0, 2), b"x", 0)
    assert fwd.datagram(genuine, STRANGER) == []
    assert fwd.address_of(2) == B
    assert fwd.stats()[9][1].strangers == 3 and fwd.stats()[9][1].decrypt_failures == 0
    # member 1's audio still goes to member 2's own address
    out = fwd.datagram(cipher_for(XCHACHA_MODE, keys[1]).seal(rtp.pack_header(3, 0, 1), b"a", 0), A)
    assert sorted(to for _, to in out) == [B, C]
    # and member 2 itself still asks and sends from its address
    assert [to for _, to in fwd.datagram(rtp.pack_discovery_request(2), B)] == [B]
    assert sorted(to for _, to in fwd.datagram(genuine, B)) == [A, C]


def test_an_unproven_claim_binds_on_the_first_packet_from_it_or_first_authentic_rtp() -> None:
    fwd = Forwarder()
    three_members(fwd)
    # op 1 claims D without a discovery from D: not bound yet, nothing is sent to D
    d = ("127.0.0.1", 40004)
    fwd.add(Member(4, 104, 9))
    fwd.select(4, *d)
    fwd.set_key(4, AES_GCM_MODE, os.urandom(32))
    assert fwd.address_of(4) is None
    assert fwd.datagram(rtp.pack_discovery_request(4), STRANGER) == []  # not the claim
    assert [to for _, to in fwd.datagram(rtp.pack_discovery_request(4), d)] == [d]
    assert fwd.address_of(4) == d
    # op 1 with no usable address: the first packet that authenticates binds
    key = os.urandom(32)
    fwd.add(Member(5, 105, 9))
    fwd.select(5, "not-an-address", 0)
    fwd.set_key(5, XCHACHA_MODE, key)
    forged = cipher_for(XCHACHA_MODE, os.urandom(32)).seal(rtp.pack_header(1, 0, 5), b"x", 0)
    assert fwd.datagram(forged, STRANGER) == [] and fwd.address_of(5) is None
    e = ("127.0.0.1", 40005)
    out = fwd.datagram(cipher_for(XCHACHA_MODE, key).seal(rtp.pack_header(1, 0, 5), b"x", 0), e)
    assert fwd.address_of(5) == e and len(out) == 4


def test_discovery_before_select_binds_only_the_claimed_source() -> None:
    """Two sources asked before op 1 (say a stranger who guessed the SSRC, then the client):
    op 1 picks the one it names."""
    fwd = Forwarder()
    fwd.add(Member(1, 101, 9))
    assert len(fwd.datagram(rtp.pack_discovery_request(1), STRANGER)) == 1
    assert len(fwd.datagram(rtp.pack_discovery_request(1), A)) == 1
    fwd.select(1, "127.0.0.1", A[1])
    assert fwd.address_of(1) == A
    assert fwd.datagram(rtp.pack_discovery_request(1), STRANGER) == []


def test_discovery_replies_are_rate_limited_per_source_ip_and_never_larger() -> None:
    fwd = Forwarder(discovery_rate=5)
    fwd.add(Member(1, 101, 9))
    request = rtp.pack_discovery_request(1)
    replies = [fwd.datagram(request, A, now=100.0) for _ in range(20)]
    assert sum(len(r) for r in replies) == 5 and fwd.udp_stats.rate_limited == 15
    assert all(len(p) <= len(request) for r in replies for p, _ in r)
    # another source IP has its own bucket; the first refills with time
    assert len(fwd.datagram(request, ("127.0.0.2", 1), now=100.0)) == 1
    assert len(fwd.datagram(request, A, now=100.2)) == 1  # 0.2 s x 5/s = one token
    assert fwd.datagram(request, A, now=100.2) == []
    # unknown SSRCs and malformed discovery get nothing and cost no token
    assert fwd.datagram(rtp.pack_discovery_request(99), A, now=200.0) == []
    assert fwd.datagram(request[:-1] + b"\x00" * 2, A, now=200.0) == []
    assert fwd.udp_stats.unknown_ssrc == 1


def test_muted_members_are_still_bound_by_their_first_authentic_packet() -> None:
    fwd = Forwarder()
    keys = three_members(fwd)
    key = os.urandom(32)
    fwd.add(Member(4, 104, 9, can_send=False))
    fwd.select(4, "garbage", 1)
    fwd.set_key(4, AES_GCM_MODE, key)
    d = ("127.0.0.1", 40004)
    assert (
        fwd.datagram(cipher_for(AES_GCM_MODE, key).seal(rtp.pack_header(1, 0, 4), b"x", 0), d) == []
    )
    assert fwd.address_of(4) == d  # bound (so it hears the others) but its audio is dropped
    out = fwd.datagram(cipher_for(XCHACHA_MODE, keys[1]).seal(rtp.pack_header(1, 0, 1), b"a", 0), A)
    assert d in [to for _, to in out]


_sources = st.sampled_from([A, B, C, STRANGER, ("127.0.0.9", 1), ("::1", 5)])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["discovery", "forged", "replay", "garbage", "keepalive"]),
            st.integers(0, 4),
            _sources,
            st.binary(max_size=80),
        ),
        max_size=40,
    )
)
def test_no_datagram_sequence_moves_a_bound_member_or_amplifies(
    steps: list[tuple[str, int, tuple[str, int], bytes]],
) -> None:
    """Whatever strangers send (discovery, forged or replayed RTP, garbage, any source):
    bound addresses never change, every reply is no larger than what provoked it and goes
    either back to the asker (discovery) or to a bound member (forwarded media)."""
    fwd = Forwarder()
    keys = three_members(fwd)
    genuine = {s: cipher_for(XCHACHA_MODE if s != 2 else AES_GCM_MODE, k) for s, k in keys.items()}
    bound = {1: A, 2: B, 3: C}
    for kind, ssrc, source, blob in steps:
        if kind == "discovery":
            data = rtp.pack_discovery_request(ssrc)
        elif kind == "forged":
            data = cipher_for(AES_GCM_MODE, bytes(32)).seal(rtp.pack_header(1, 0, ssrc), blob, 0)
        elif kind == "replay" and ssrc in genuine:
            data = genuine[ssrc].seal(rtp.pack_header(1, 0, ssrc), blob, 7)
        elif kind == "keepalive":
            data = rtp.pack_keepalive(ssrc)
        else:
            data = blob
        for packet, to in fwd.datagram(data, source):
            if rtp.classify(packet) is rtp.DatagramKind.DISCOVERY_RESPONSE:
                assert to == source and len(packet) <= len(data)
            else:
                assert to in bound.values() and to != source
        assert {s: fwd.address_of(s) for s in bound} == bound
