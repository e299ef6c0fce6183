"""RTP header, counters, IP discovery, keepalive, RTCP (docs/discord-voice.md §1.8-§1.11)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audionode.voice import rtp
from audionode.voice.rtp import DatagramKind, RtpError, RtpHeader


def test_bot_header_bytes_match_the_spec() -> None:
    h = rtp.pack_header(1, 960, 0xDEADBEEF)
    assert h == bytes.fromhex("80780001000003c0deadbeef")
    assert rtp.parse_header(h) == RtpHeader(1, 960, 0xDEADBEEF)
    assert rtp.header_length(h) == 12
    assert rtp.seq_ts_ssrc(h) == (1, 960, 0xDEADBEEF)


def test_header_with_csrcs_extension_marker_and_padding() -> None:
    hdr = RtpHeader(65535, 2**32 - 1, 5, 120, True, True, (1, 2), 0xBEDE, 3)
    raw = hdr.pack()
    assert raw[0] == 0x80 | 0x20 | 0x10 | 2 and raw[1] == 0x80 | 0x78
    assert raw[12:20] == bytes.fromhex("0000000100000002")
    assert raw[20:24] == bytes.fromhex("bede0003")
    assert hdr.size == len(raw) == 24
    assert rtp.parse_header(raw + b"payload") == hdr


def test_truncated_and_wrong_version_headers_are_rejected_with_reason() -> None:
    with pytest.raises(RtpError, match="too short"):
        rtp.parse_header(b"\x80\x78\x00")
    with pytest.raises(RtpError, match="version must be 2"):
        rtp.parse_header(b"\x40" + bytes(11))
    # X=1 but the preamble is missing.
    with pytest.raises(RtpError, match="declares 16 bytes"):
        rtp.parse_header(b"\x90\x78" + bytes(10))


headers = st.builds(
    RtpHeader,
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 2**32 - 1),
    ssrc=st.integers(0, 2**32 - 1),
    payload_type=st.integers(0, 127),
    marker=st.booleans(),
    padding=st.booleans(),
    csrcs=st.lists(st.integers(0, 2**32 - 1), max_size=15).map(tuple),
    extension_profile=st.none() | st.integers(0, 0xFFFF),
    extension_words=st.integers(0, 0xFFFF),
).filter(lambda h: h.extension_profile is not None or h.extension_words == 0)


@given(headers, st.binary(max_size=64))
def test_header_round_trip(hdr: RtpHeader, tail: bytes) -> None:
    raw = hdr.pack()
    assert len(raw) == hdr.size
    assert rtp.parse_header(raw + tail) == hdr


@given(st.binary(max_size=80))
def test_arbitrary_bytes_only_raise_rtp_error(data: bytes) -> None:
    try:
        hdr = rtp.parse_header(data)
    except RtpError:
        return
    assert hdr.size <= len(data)


@given(st.binary(max_size=90))
def test_discovery_parser_only_raises_rtp_error(data: bytes) -> None:
    try:
        d = rtp.parse_discovery(data)
    except RtpError:
        return
    assert d.kind in (1, 2) and len(data) == 74


@given(st.binary(max_size=90))
def test_classify_never_raises(data: bytes) -> None:
    assert isinstance(rtp.classify(data), DatagramKind)


def test_counters_wrap() -> None:
    assert rtp.seq_add(65535) == 0
    assert rtp.seq_add(65530, 10) == 4
    assert rtp.ts_add(2**32 - 960) == 0
    assert rtp.ts_add(2**32 - 100) == 860
    assert rtp.seq_delta(2, 65534) == 4
    assert rtp.seq_delta(65534, 2) == -4
    assert rtp.seq_delta(7, 7) == 0


def test_discovery_request_layout() -> None:
    req = rtp.pack_discovery_request(0x01020304)
    assert len(req) == 74
    assert req[:8] == bytes.fromhex("0001004601020304") and req[8:] == bytes(66)
    assert rtp.parse_discovery(req) == rtp.Discovery(1, 0x01020304, "", 0)
    assert rtp.classify(req) is DatagramKind.DISCOVERY_REQUEST


def test_discovery_response_parses_like_discord_py() -> None:
    resp = rtp.pack_discovery_response(42, "203.0.113.9", 50004)
    assert len(resp) == 74 and resp[1] == 2
    # discord.py's reading: ASCII up to the first NUL from byte 8, port BE at the end.
    assert resp[8 : resp.index(0, 8)] == b"203.0.113.9"
    assert struct.unpack_from(">H", resp, 72)[0] == 50004
    assert rtp.parse_discovery(resp) == rtp.Discovery(2, 42, "203.0.113.9", 50004)
    assert rtp.classify(resp) is DatagramKind.DISCOVERY_RESPONSE


def test_discovery_rejects_wrong_sizes_and_types() -> None:
    with pytest.raises(RtpError, match="74 bytes"):
        rtp.parse_discovery(bytes(73))
    with pytest.raises(RtpError, match="type must be 1 or 2"):
        rtp.parse_discovery(b"\x00\x03\x00\x46" + bytes(70))
    with pytest.raises(RtpError, match="length field"):
        rtp.parse_discovery(b"\x00\x02\x00\x45" + bytes(70))
    with pytest.raises(RtpError, match="ASCII"):
        rtp.parse_discovery(b"\x00\x02\x00\x46" + bytes(4) + b"\xff" + bytes(65))
    with pytest.raises(ValueError, match="63 bytes"):
        rtp.pack_discovery_response(1, "1" * 64, 1)


def test_keepalive_and_rtcp_classification() -> None:
    ka = rtp.pack_keepalive(2**32 + 5)
    assert ka == bytes.fromhex("0500000000000000")
    assert rtp.classify(ka) is DatagramKind.KEEPALIVE
    rr = bytes([0x81, 201]) + bytes(30)
    assert rtp.is_rtcp(rr) and rtp.classify(rr) is DatagramKind.RTCP
    pkt = rtp.pack_header(1, 2, 3) + b"x"
    assert not rtp.is_rtcp(pkt) and rtp.classify(pkt) is DatagramKind.RTP
    assert rtp.classify(b"\x00" * 20) is DatagramKind.UNKNOWN
