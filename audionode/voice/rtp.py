"""RTP/UDP codecs for Discord voice: RTP header, counters, IP discovery, keepalive, RTCP check.

Facts: ``docs/discord-voice.md`` §1.8 (IP discovery), §1.9 (RTP header), §1.10 (rtpsize header
length), §1.11 (keepalive). Pure functions over ``bytes``; every parser of network input raises
only :class:`RtpError` on bad data.
"""

from __future__ import annotations

import enum
import struct
from typing import Final, NamedTuple

from audionode.errors import VoiceError

RTP_VERSION: Final = 2
OPUS_PAYLOAD_TYPE: Final = 0x78
"""PT 120 = opus (§1.9)."""
FIXED_HEADER_SIZE: Final = 12
EXTENSION_PREAMBLE_SIZE: Final = 4
ONE_BYTE_EXTENSION_PROFILE: Final = 0xBEDE
SAMPLES_PER_FRAME: Final = 960
"""20 ms at the 48 kHz opus RTP clock: the timestamp step per frame (§1.9)."""
SEQ_MOD: Final = 1 << 16
TS_MOD: Final = 1 << 32

DISCOVERY_SIZE: Final = 74
DISCOVERY_REQUEST: Final = 1
DISCOVERY_RESPONSE: Final = 2
_DISCOVERY_LENGTH_FIELD: Final = 70
_DISCOVERY_IP_FIELD: Final = 64
KEEPALIVE_SIZE: Final = 8

_FIXED = struct.Struct(">BBHII")
_PREAMBLE = struct.Struct(">HH")
_DISCOVERY = struct.Struct(">HHI64sH")
_KEEPALIVE = struct.Struct("<I4x")
_FAST_HEADER = struct.Struct(">xxHII")


class RtpError(VoiceError):
    """A datagram is not what the parser was asked to read; the message says what was wrong."""


class RtpHeader(NamedTuple):
    """A parsed RTP header (RFC 3550 §5.1) with the rtpsize view of the extension (§1.10).

    ``extension_profile``/``extension_words`` describe the 4-byte extension preamble when X=1;
    the extension *elements* (``extension_words * 4`` bytes) belong to the encrypted part in the
    rtpsize modes and are not modelled here.
    """

    sequence: int
    timestamp: int
    ssrc: int
    payload_type: int = OPUS_PAYLOAD_TYPE
    marker: bool = False
    padding: bool = False
    csrcs: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension_words: int = 0

    @property
    def size(self) -> int:
        """Length of the rtpsize clear header: 12 + 4*CC (+4 with an extension preamble)."""
        ext = EXTENSION_PREAMBLE_SIZE if self.extension_profile is not None else 0
        return FIXED_HEADER_SIZE + 4 * len(self.csrcs) + ext

    def pack(self) -> bytes:
        """Serialize; raises :class:`ValueError` for out-of-range fields (a local bug)."""
        if len(self.csrcs) > 15:
            raise ValueError(f"at most 15 CSRCs, got {len(self.csrcs)}")
        x = self.extension_profile is not None
        b0 = (RTP_VERSION << 6) | (0x20 if self.padding else 0) | (0x10 if x else 0)
        b1 = (0x80 if self.marker else 0) | self.payload_type
        out = _FIXED.pack(b0 | len(self.csrcs), b1, self.sequence, self.timestamp, self.ssrc)
        out += b"".join(c.to_bytes(4, "big") for c in self.csrcs)
        if self.extension_profile is not None:
            out += _PREAMBLE.pack(self.extension_profile, self.extension_words)
        return out


def pack_header(
    sequence: int, timestamp: int, ssrc: int, payload_type: int = OPUS_PAYLOAD_TYPE
) -> bytes:
    """The 12-byte header a bot sends (0x80 0x78 seq ts ssrc, §1.9): the hot-path packer."""
    return _FIXED.pack(0x80, payload_type, sequence, timestamp, ssrc)


def parse_header(packet: bytes) -> RtpHeader:
    """Parse the RTP header at the start of ``packet``; raise :class:`RtpError` when malformed."""
    if len(packet) < FIXED_HEADER_SIZE:
        raise RtpError(f"RTP packet too short: {len(packet)} bytes, need at least 12")
    b0, b1, seq, ts, ssrc = _FIXED.unpack_from(packet)
    if b0 >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version must be 2, got {b0 >> 6}")
    cc = b0 & 0x0F
    has_ext = bool(b0 & 0x10)
    end = FIXED_HEADER_SIZE + 4 * cc
    need = end + (EXTENSION_PREAMBLE_SIZE if has_ext else 0)
    if len(packet) < need:
        raise RtpError(
            f"RTP header declares {need} bytes (CC={cc}, X={int(has_ext)}), got {len(packet)}"
        )
    csrcs = struct.unpack_from(f">{cc}I", packet, FIXED_HEADER_SIZE)
    profile: int | None = None
    words = 0
    if has_ext:
        profile, words = _PREAMBLE.unpack_from(packet, end)
    marker, padding = bool(b1 & 0x80), bool(b0 & 0x20)
    return RtpHeader(seq, ts, ssrc, b1 & 0x7F, marker, padding, csrcs, profile, words)


def header_length(packet: bytes) -> int:
    """rtpsize clear-header length of ``packet`` (§1.10 step 2); raises :class:`RtpError`."""
    return parse_header(packet).size


def seq_ts_ssrc(packet: bytes) -> tuple[int, int, int]:
    """(sequence, timestamp, ssrc) without building a header object; caller checked len >= 12."""
    seq, ts, ssrc = _FAST_HEADER.unpack_from(packet)
    return seq, ts, ssrc


def seq_add(seq: int, n: int = 1) -> int:
    """``seq + n`` in the u16 sequence space (wraps 65535 → 0)."""
    return (seq + n) % SEQ_MOD


def ts_add(ts: int, n: int = SAMPLES_PER_FRAME) -> int:
    """``ts + n`` in the u32 timestamp space."""
    return (ts + n) % TS_MOD


def seq_delta(newer: int, older: int) -> int:
    """Signed distance ``newer - older`` in the u16 space, in [-32768, 32767] (for receivers)."""
    return (newer - older + SEQ_MOD // 2) % SEQ_MOD - SEQ_MOD // 2


# --- IP discovery (§1.8) ---------------------------------------------------------------------


class Discovery(NamedTuple):
    """A decoded IP-discovery datagram: ``kind`` 1 = request, 2 = response."""

    kind: int
    ssrc: int
    ip: str
    port: int


def pack_discovery_request(ssrc: int) -> bytes:
    """The 74-byte type-1 request sent from the RTP socket to Ready's ip:port."""
    return _DISCOVERY.pack(DISCOVERY_REQUEST, _DISCOVERY_LENGTH_FIELD, ssrc, b"", 0)


def pack_discovery_response(ssrc: int, ip: str, port: int) -> bytes:
    """The 74-byte type-2 reply carrying the sender's observed address (server side)."""
    raw_ip = ip.encode("ascii")
    if len(raw_ip) >= _DISCOVERY_IP_FIELD:
        raise ValueError(f"IP text must fit 63 bytes, got {len(raw_ip)}")
    return _DISCOVERY.pack(DISCOVERY_RESPONSE, _DISCOVERY_LENGTH_FIELD, ssrc, raw_ip, port)


def parse_discovery(data: bytes) -> Discovery:
    """Decode a 74-byte discovery request or response; raise :class:`RtpError` otherwise."""
    if len(data) != DISCOVERY_SIZE:
        raise RtpError(f"IP discovery packet must be 74 bytes, got {len(data)}")
    kind, length, ssrc, raw_ip, port = _DISCOVERY.unpack(data)
    if kind not in (DISCOVERY_REQUEST, DISCOVERY_RESPONSE):
        raise RtpError(f"IP discovery type must be 1 or 2, got {kind}")
    if length != _DISCOVERY_LENGTH_FIELD:
        raise RtpError(f"IP discovery length field must be 70, got {length}")
    try:
        ip = raw_ip.split(b"\0", 1)[0].decode("ascii")
    except UnicodeDecodeError:
        raise RtpError("IP discovery address is not ASCII") from None
    return Discovery(kind, ssrc, ip, port)


# --- keepalive, RTCP, classification (§1.10, §1.11) -------------------------------------------


def pack_keepalive(counter: int) -> bytes:
    """An 8-byte UDP keepalive (u32 LE counter + 4 zero bytes, as discord.js sends it)."""
    return _KEEPALIVE.pack(counter % TS_MOD)


def is_rtcp(data: bytes) -> bool:
    """True for an RTCP packet: version 2 and the second byte (PT) in 200..206."""
    return len(data) >= 8 and data[0] >> 6 == RTP_VERSION and 200 <= data[1] <= 206


class DatagramKind(enum.Enum):
    """What a UDP datagram on the voice socket is (server and client receive paths)."""

    DISCOVERY_REQUEST = "discovery_request"
    DISCOVERY_RESPONSE = "discovery_response"
    KEEPALIVE = "keepalive"
    RTCP = "rtcp"
    RTP = "rtp"
    UNKNOWN = "unknown"


def classify(data: bytes) -> DatagramKind:
    """Sort a datagram without parsing it fully; discovery is checked first so that a 74-byte
    type-2 reply never reaches the RTP decoder (§1.8)."""
    n = len(data)
    if n == DISCOVERY_SIZE and data[0] == 0 and data[1] in (1, 2) and data[2:4] == b"\x00\x46":
        return DatagramKind.DISCOVERY_REQUEST if data[1] == 1 else DatagramKind.DISCOVERY_RESPONSE
    if n == KEEPALIVE_SIZE:
        return DatagramKind.KEEPALIVE
    if n < FIXED_HEADER_SIZE or data[0] >> 6 != RTP_VERSION:
        return DatagramKind.UNKNOWN
    if 200 <= data[1] <= 206:
        return DatagramKind.RTCP
    return DatagramKind.RTP
