"""The DAVE media frame footer (docs/discord-voice.md §2.1), for receivers and invariant checks.

Audio frame layout::

    [ciphertext (len = opus len)][8-byte truncated GCM tag][ULEB128 nonce][ULEB128 ranges]
    [u8 supplemental size = 8 + len(nonce) + len(ranges) + 1 + 2][0xFA 0xFA]

Encryption itself is davey's job; this module only reads the footer.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from audionode.errors import VoiceError

MAGIC: Final = b"\xfa\xfa"
TAG_SIZE: Final = 8
_MIN_SUPPLEMENTAL: Final = TAG_SIZE + 1 + 1 + 2  # tag + 1-byte nonce + size byte + magic


class DaveFrameError(VoiceError):
    """The bytes do not end in a well-formed DAVE footer."""


class DaveFooter(NamedTuple):
    supplemental_size: int
    ciphertext_size: int
    tag: bytes
    nonce: int
    nonce_size: int
    ranges: bytes


def is_dave_frame(frame: bytes) -> bool:
    """Cheap check: the magic marker and a plausible supplemental size (§2.1)."""
    n = len(frame)
    return n >= _MIN_SUPPLEMENTAL and frame[-2:] == MAGIC and _MIN_SUPPLEMENTAL <= frame[-3] <= n


def _uleb128(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            break
    raise DaveFrameError("DAVE footer: unterminated or oversized ULEB128 nonce")


def parse_footer(frame: bytes) -> DaveFooter:
    """Read the footer of a DAVE frame; raise :class:`DaveFrameError` when it is malformed."""
    if not is_dave_frame(frame):
        raise DaveFrameError(
            f"not a DAVE frame: {len(frame)} bytes ending {frame[-3:].hex() or 'nothing'}, "
            "want a supplemental size byte then FA FA"
        )
    size = frame[-3]
    start = len(frame) - size
    tag = frame[start : start + TAG_SIZE]
    nonce_end_limit = len(frame) - 3
    nonce, pos = _uleb128(frame, start + TAG_SIZE, nonce_end_limit)
    nonce_size = pos - start - TAG_SIZE
    return DaveFooter(size, start, tag, nonce, nonce_size, frame[pos:nonce_end_limit])
