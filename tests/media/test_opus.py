"""Opus TOC parsing (RFC 6716 §3.1), against real libopus packets and arbitrary bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audionode.media.codec import OpusEncoder
from audionode.media.opus import MAX_PACKET_SAMPLES, OpusPacketError, packet_samples
from tests.media.mediafiles import tone


def test_real_libopus_packets_are_20_ms() -> None:
    enc = OpusEncoder(96000, 5)
    pcm = tone([440], 0.2)
    sizes = {packet_samples(enc.encode(pcm[i : i + 960])) for i in range(0, 9600, 960)}
    assert sizes == {960}


@pytest.mark.parametrize(
    ("packet", "samples"),
    [
        (bytes([0 << 3 | 0]), 480),  # SILK NB 10 ms, one frame
        (bytes([3 << 3 | 1]), 5760),  # SILK NB 60 ms, two frames = 120 ms
        (bytes([13 << 3 | 0]), 960),  # Hybrid SWB 20 ms
        (bytes([16 << 3 | 2]), 240),  # CELT NB 2.5 ms, two frames
        (bytes([31 << 3 | 0]), 960),  # CELT FB 20 ms
        (bytes([31 << 3 | 3, 0x06]), 5760),  # CELT FB 20 ms x 6 (code 3)
        (bytes([28 << 3 | 3, 0x84]), 480),  # CELT FB 2.5 ms x 4 (VBR flag set)
    ],
)
def test_known_toc_bytes(packet: bytes, samples: int) -> None:
    assert packet_samples(packet) == samples


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (b"", "empty"),
        (bytes([31 << 3 | 3]), "frame count byte"),
        (bytes([31 << 3 | 3, 0x00]), "frame count of 0"),
        (bytes([3 << 3 | 3, 0x03]), "exceeds 120 ms"),
    ],
)
def test_malformed_packets_are_refused(packet: bytes, message: str) -> None:
    with pytest.raises(OpusPacketError, match=message):
        packet_samples(packet)


@given(st.binary(max_size=8))
def test_any_bytes_give_a_valid_duration_or_a_clear_error(data: bytes) -> None:
    try:
        n = packet_samples(data)
    except OpusPacketError:
        return
    assert 120 <= n <= MAX_PACKET_SAMPLES and n % 120 == 0
