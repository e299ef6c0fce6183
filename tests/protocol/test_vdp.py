"""VDP (seed 004) sans-I/O: the codec, the channel's drop rules and counters, the peer policy.
Property tests feed any bytes from any address and check that nothing raises, every datagram
is counted once, and only the peer's forward-moving datagrams of the room are taken."""

from __future__ import annotations

import ipaddress
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audionode.errors import BadRequest, Forbidden
from audionode.protocol import vdp

ROOM = "!qPNOnUsNsZrToFZqxB:half-shot.uk"
PEER = vdp.parse_address("127.0.0.1:40000")
OTHER = vdp.parse_address("127.0.0.2:40000")


def channel(peer: vdp.Address | None = PEER) -> vdp.Channel:
    ch = vdp.Channel(ROOM, now=0.0, peer_timeout=30.0)
    if peer is not None:
        ch.set_peer(peer, 0.0)
    return ch


def test_a_datagram_is_a_messagepack_map_of_r_d_i() -> None:
    data = vdp.encode(ROOM, 7, b"\xf8\xff\xfe")
    assert msgspec.msgpack.decode(data) == {"r": ROOM, "d": b"\xf8\xff\xfe", "i": 7}
    ch = channel()
    assert ch.receive(data, PEER, 1.0) == b"\xf8\xff\xfe"
    assert ch.stats.accepted == 1


def test_each_bad_datagram_is_dropped_and_counted_by_its_reason() -> None:
    ch = channel()
    good = vdp.encode(ROOM, 5, b"opus")
    cases: list[tuple[bytes, vdp.Address, str]] = [
        (b"\x00" * 1501, PEER, "oversized"),
        (vdp.encode(ROOM, 1, b"x" * 1276), PEER, "oversized"),
        (good, OTHER, "wrong_peer"),
        (good, (PEER[0], 40001), "wrong_peer"),
        (b'{"r": 1}', PEER, "not_msgpack"),
        (msgspec.msgpack.encode({"r": ROOM, "d": "text, not bin", "i": 1}), PEER, "not_msgpack"),
        (msgspec.msgpack.encode([ROOM, b"x", 1]), PEER, "not_msgpack"),
        (vdp.encode("!another:room", 6, b"opus"), PEER, "wrong_room"),
        (msgspec.msgpack.encode({"r": ROOM, "d": b"x", "i": -1}), PEER, "stale"),
    ]
    for data, source, reason in cases:
        before = dict(ch.stats.dropped)
        assert ch.receive(data, source, 1.0) is None
        assert ch.stats.dropped[reason] == before[reason] + 1, reason
    assert ch.receive(good, PEER, 1.0) == b"opus"
    assert ch.receive(good, PEER, 1.0) is None, "a repeat"
    assert ch.receive(vdp.encode(ROOM, 4, b"opus"), PEER, 1.0) is None, "going back"
    assert ch.stats.dropped["stale"] == 3
    assert ch.receive(vdp.encode(ROOM, 9, b"late"), PEER, 1.0) == b"late"
    assert ch.stats.lost == 3


def test_nothing_is_sent_before_the_peer_spoke_and_i_counts_slots() -> None:
    ch = channel(peer=None)
    assert ch.send(b"opus", 0) is None, "no peer"
    ch.set_peer(PEER, 0.0)
    assert ch.send(b"opus", 1) is None, "the peer has not proved it asked for audio"
    ch.receive(vdp.encode(ROOM, 0, b""), PEER, 0.5)  # a keepalive is proof enough
    assert ch.stats.keepalives == 1 and ch.sending
    out = [ch.send(b"opus", slot) for slot in (2, 3, 7)]
    assert [msgspec.msgpack.decode(d)["i"] for d in out if d] == [2, 3, 7]
    ch.set_peer(OTHER, 1.0)
    assert not ch.sending, "a new peer proves itself again"


def test_a_silent_peer_expires_the_channel() -> None:
    ch = channel()
    assert not ch.expired(29.0) and ch.expired(30.5)
    ch.receive(vdp.encode(ROOM, 0, b""), PEER, 30.0)
    assert not ch.expired(59.0) and ch.expired(60.5)
    assert not channel(peer=None).expired(1e9), "no peer yet: nothing to expire"


def test_peer_addresses_are_ip_literals_in_the_allowed_networks() -> None:
    allowed = vdp.parse_networks(["127.0.0.0/8", "fd00::/8"])
    for text in ("127.0.0.1:5000", "[fd00::1]:6000", "[::ffff:127.0.0.9]:1"):
        vdp.check_peer(vdp.parse_address(text), allowed)
    assert vdp.format_address(vdp.parse_address("[fd00::1]:6000")) == "[fd00::1]:6000"
    for bad in ("localhost:5000", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", ":5", "x:y"):
        with pytest.raises(BadRequest, match="field `address`"):
            vdp.parse_address(bad)
    with pytest.raises(Forbidden, match="allowed_peers"):
        vdp.check_peer(vdp.parse_address("10.0.0.1:5000"), allowed)
    everything = vdp.parse_networks(["0.0.0.0/0", "::/0"])
    for never in ("0.0.0.0:5000", "224.0.0.1:5000", "255.255.255.255:9", "[ff02::1]:9"):
        with pytest.raises(Forbidden, match="not a unicast"):
            vdp.check_peer(vdp.parse_address(never), everything)
    with pytest.raises(Forbidden, match="allowed_peers"):
        vdp.check_peer(vdp.parse_address("127.0.0.1:5000"), [])


def test_room_ids_are_bounded_and_printable() -> None:
    assert vdp.check_room_id(ROOM) == ROOM
    for bad in ("", "x" * 256, "room\nid"):
        with pytest.raises(BadRequest, match="room_id"):
            vdp.check_room_id(bad)


# --- properties ---------------------------------------------------------------------------------

addresses = st.sampled_from([PEER, OTHER, (PEER[0], 1)])
packets = st.builds(
    lambda r, d, i: vdp.encode(r, i, d),
    st.sampled_from([ROOM, "!other:room"]),
    st.binary(max_size=1300),
    st.integers(min_value=0, max_value=2**64 - 1),
)
datagrams = st.one_of(
    st.binary(max_size=1600),
    packets,
    st.builds(
        lambda v: msgspec.msgpack.encode(v),
        st.dictionaries(
            st.sampled_from(["r", "d", "i", "x"]),
            st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary() | st.just(ROOM),
        ),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(datagrams, addresses), max_size=40))
def test_any_datagrams_are_each_counted_once_and_only_forward_peer_audio_is_taken(
    arrivals: list[tuple[bytes, vdp.Address]],
) -> None:
    ch = channel()
    taken: list[int] = []
    for data, source in arrivals:
        frame = ch.receive(data, source, 1.0)
        if frame is not None:
            packet: Any = msgspec.msgpack.decode(data)
            assert source == PEER and packet["r"] == ROOM and len(data) <= vdp.MAX_DATAGRAM
            taken.append(packet["i"])
    st_ = ch.stats
    assert st_.received == len(arrivals)
    assert st_.accepted + st_.keepalives + sum(st_.dropped.values()) == st_.received
    assert taken == sorted(set(taken)), "strictly increasing i"


@given(st.text(min_size=1, max_size=255), st.binary(max_size=1275), st.integers(0, 2**64 - 1))
def test_encode_then_receive_round_trips(room: str, frame: bytes, i: int) -> None:
    ch = vdp.Channel(room, 0.0)
    ch.set_peer(PEER, 0.0)
    data = vdp.encode(room, i, frame)
    got = ch.receive(data, PEER, 0.0)
    assert got == (frame or None) and len(data) <= vdp.MAX_DATAGRAM


def test_normalise_maps_socket_addresses() -> None:
    assert vdp.normalise("::ffff:127.0.0.1", 5) == (PEER[0], 5)
    assert vdp.normalise("fe80::1%eth0", 5) == (ipaddress.ip_address("fe80::1"), 5)
