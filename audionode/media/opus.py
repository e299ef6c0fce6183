"""Opus packet inspection (RFC 6716 §3.1), pure: used to decide whether a demuxed packet can
be forwarded as one 20 ms Discord frame without decoding.
"""

from __future__ import annotations

# RFC 6716 §3.1, Table 2: frame size of each TOC config, in 48 kHz samples.
# configs 0-11 are SILK (NB/MB/WB x 10/20/40/60 ms), 12-15 Hybrid (SWB/FB x 10/20 ms),
# 16-31 CELT (NB/WB/SWB/FB x 2.5/5/10/20 ms).
_SILK = (480, 960, 1920, 2880)
_HYBRID = (480, 960)
_CELT = (120, 240, 480, 960)
_FRAME_SAMPLES: tuple[int, ...] = _SILK * 3 + _HYBRID * 2 + _CELT * 4

MAX_PACKET_SAMPLES = 5760
"""RFC 6716 §3.2.5: a packet never holds more than 120 ms of audio."""


class OpusPacketError(ValueError):
    """The bytes are not a well-formed opus packet header."""


def packet_samples(packet: bytes) -> int:
    """Samples per channel (at 48 kHz) carried by one opus packet.

    Reads the TOC byte (§3.1) and, for code 3 packets, the frame count byte (§3.2.5).
    Raises :class:`OpusPacketError` for an empty packet, a code 3 packet without its count
    byte, a zero frame count, or a total above 120 ms.
    """
    if not packet:
        raise OpusPacketError("empty opus packet")
    toc = packet[0]
    frame = _FRAME_SAMPLES[toc >> 3]
    code = toc & 0x03
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    else:
        if len(packet) < 2:
            raise OpusPacketError("opus code 3 packet without its frame count byte")
        count = packet[1] & 0x3F
        if count == 0:
            raise OpusPacketError("opus code 3 packet with a frame count of 0")
    total = frame * count
    if total > MAX_PACKET_SAMPLES:
        raise OpusPacketError(f"opus packet of {total} samples exceeds 120 ms")
    return total
