"""TLS-presentation-language helpers for the MLS subset the voice server reads and writes.

RFC 9420 §2.1.2 variable-length vectors: a 1/2/4-byte length prefix whose top two bits give its
size (``00`` 6-bit, ``01`` 14-bit, ``10`` 30-bit; docs/discord-voice.md §2.2). The :class:`Reader`
raises :class:`MlsError` naming the structure and offset on any truncation or bad value.
"""

from __future__ import annotations

import struct
from typing import Final

from audionode.errors import VoiceError

MAX_VEC: Final = (1 << 30) - 1


class MlsError(VoiceError):
    """An MLS structure from a client is malformed or not what DAVE v1 allows."""


def u16(value: int) -> bytes:
    return struct.pack(">H", value)


def varint(n: int) -> bytes:
    """RFC 9420 minimal variable-length integer."""
    if n < 0 or n > MAX_VEC:
        raise ValueError(f"vector length {n} outside 0..2^30-1")
    if n < 0x40:
        return bytes([n])
    if n < 0x4000:
        return struct.pack(">H", 0x4000 | n)
    return struct.pack(">I", 0x80000000 | n)


def vec(data: bytes) -> bytes:
    """``opaque data<V>``: varint length then the bytes."""
    return varint(len(data)) + data


class Reader:
    """A bounds-checked cursor over one MLS structure (``what`` names it in errors)."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise MlsError(
                f"{self.what}: truncated at offset {self.pos}: need {n} bytes, "
                f"{len(self.data) - self.pos} left"
            )
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def u8(self) -> int:
        return self._take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack(">H", self._take(2))[0]
        return value

    def u32(self) -> int:
        value: int = struct.unpack(">I", self._take(4))[0]
        return value

    def u64(self) -> int:
        value: int = struct.unpack(">Q", self._take(8))[0]
        return value

    def varint(self) -> int:
        first = self.u8()
        prefix = first >> 6
        if prefix == 0:
            return first
        if prefix == 1:
            return ((first & 0x3F) << 8) | self.u8()
        if prefix == 2:
            return ((first & 0x3F) << 24) | int.from_bytes(self._take(3), "big")
        raise MlsError(f"{self.what}: invalid vector length prefix 0b11 at offset {self.pos - 1}")

    def vec(self) -> bytes:
        return self._take(self.varint())

    def optional(self) -> bool:
        flag = self.u8()
        if flag > 1:
            raise MlsError(f"{self.what}: optional<> flag must be 0 or 1, got {flag}")
        return flag == 1

    def done(self) -> bool:
        return self.pos >= len(self.data)

    def end(self) -> None:
        if not self.done():
            raise MlsError(f"{self.what}: {len(self.data) - self.pos} unexpected trailing bytes")

    def leaf_node(self) -> bytes:
        """Skip a LeafNode (RFC 9420 §7.2) and return its basic credential identity."""
        self.vec()  # encryption_key
        self.vec()  # signature_key
        ctype = self.u16()
        if ctype != 1:
            raise MlsError(f"{self.what}: credential type must be 1 (basic), got {ctype}")
        identity = self.vec()
        for _ in range(5):  # capabilities: versions, suites, extensions, proposals, credentials
            self.vec()
        source = self.u8()
        if source == 1:
            self._take(16)  # lifetime: not_before, not_after
        elif source == 3:
            self.vec()  # parent_hash
        elif source != 2:
            raise MlsError(f"{self.what}: leaf_node_source must be 1, 2 or 3, got {source}")
        self.vec()  # extensions
        self.vec()  # signature
        return identity
