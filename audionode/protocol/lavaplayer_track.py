"""Lavaplayer's binary track format: what Lavalink's ``encoded`` strings hold (pure codec).

An encoded track is standard base64 of one *message* (docs/LAVALINK.md, "Encoded tracks"):

- a big-endian 32-bit header: the message size in the low 30 bits, flags in the top two
  (flag 1 = *versioned*: the body starts with a version byte; without it the version is 1);
- the body, in Java ``DataOutput`` encoding: ``title``, ``author`` (UTF), ``length`` (int64,
  milliseconds; ``2**63 - 1`` for an unknown length), ``identifier`` (UTF), ``isStream``
  (bool), then from version 2 ``uri`` and from version 3 ``artworkUrl`` and ``isrc`` (each a
  nullable UTF: a bool, then the text when true), then ``sourceName`` (UTF), then whatever the
  source adds (the ``http`` and ``local`` sources add a container-probe hint, itself a UTF),
  and last ``position`` (int64, milliseconds).

A UTF is Java's *modified UTF-8*: an unsigned 16-bit byte count, then the text with U+0000
written as ``C0 80`` and characters beyond U+FFFF written as their two UTF-16 surrogates (three
bytes each). We write exactly that (so Lavalink and every client decoder read our tracks), and
read it leniently: plain UTF-8 as written by some clients' encoders is accepted too.

We always write version 3, the version Lavaplayer writes; versions 1 to 3 are read. The bytes a
source adds are kept opaque (:attr:`LavaplayerTrack.details`): the position is the message's
last eight bytes, so a track from any source (a Lavalink node's ``youtube``, LavaSrc's extra
fields) decodes without knowing that source.
"""

from __future__ import annotations

import base64
import binascii
import struct

import msgspec

from audionode.errors import BadRequest

VERSION = 3
UNKNOWN_LENGTH = (1 << 63) - 1
"""Lavaplayer's length of a track whose length is unknown (a stream)."""
PROBE_SOURCES = frozenset({"http", "local"})
"""Sources after whose name Lavaplayer writes a container-probe hint (a UTF)."""

_VERSIONED = 1
_SIZE_MASK = 0x3FFFFFFF
_MAX_UTF = 0xFFFF
_MAX_SIZE = 1 << 20
"""Largest message we accept: a track is a few hundred bytes; a megabyte is plenty."""


class LavaplayerTrack(msgspec.Struct, frozen=True, kw_only=True):
    """The fields of one encoded track (``details``: the source's own bytes, opaque)."""

    title: str
    author: str
    length: int
    identifier: str
    is_stream: bool
    uri: str | None = None
    artwork_url: str | None = None
    isrc: str | None = None
    source_name: str
    details: bytes = b""
    position: int = 0
    version: int = VERSION


class TrackDecodeError(BadRequest):
    """The text is not an encoded Lavaplayer track; the message names the field and why."""


# --- writing -------------------------------------------------------------------------------------


def _utf(text: str) -> bytes:
    """Java's ``writeUTF``, the text clipped at a character so it fits 65535 bytes."""
    units = text.encode("utf-16-be", "surrogatepass")
    out = bytearray()
    for i in range(0, len(units), 2):
        unit = (units[i] << 8) | units[i + 1]
        if 0 < unit < 0x80:
            piece = bytes((unit,))
        elif unit < 0x800:
            piece = bytes((0xC0 | unit >> 6, 0x80 | unit & 0x3F))
        else:
            piece = bytes((0xE0 | unit >> 12, 0x80 | unit >> 6 & 0x3F, 0x80 | unit & 0x3F))
        if len(out) + len(piece) > _MAX_UTF:
            break
        out += piece
    return struct.pack(">H", len(out)) + out


def _nullable(text: str | None) -> bytes:
    return b"\x00" if text is None else b"\x01" + _utf(text)


def encode(track: LavaplayerTrack) -> str:
    """The base64 text of ``track``, written as version 3 (whatever its ``version`` says)."""
    body = b"".join(
        (
            bytes((VERSION,)),
            _utf(track.title),
            _utf(track.author),
            struct.pack(">q", min(track.length, UNKNOWN_LENGTH)),
            _utf(track.identifier),
            b"\x01" if track.is_stream else b"\x00",
            _nullable(track.uri),
            _nullable(track.artwork_url),
            _nullable(track.isrc),
            _utf(track.source_name),
            track.details,
            struct.pack(">q", max(0, track.position)),
        )
    )
    header = struct.pack(">I", len(body) | _VERSIONED << 30)
    return base64.b64encode(header + body).decode("ascii")


def probe_details(hint: str = "") -> bytes:
    """The bytes the ``http`` and ``local`` sources add: a container-probe hint (a UTF)."""
    return _utf(hint)


# --- reading -------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes, field: str) -> None:
        self.data = data
        self.at = 0
        self.field = field

    def fail(self, why: str) -> TrackDecodeError:
        return TrackDecodeError(f"field `{self.field}`: not a Lavaplayer track ({why})")

    def take(self, n: int, what: str) -> bytes:
        if self.at + n > len(self.data):
            raise self.fail(f"truncated in `{what}`")
        piece = self.data[self.at : self.at + n]
        self.at += n
        return piece

    def long(self, what: str) -> int:
        value: int = struct.unpack(">q", self.take(8, what))[0]
        return value

    def boolean(self, what: str) -> bool:
        return self.take(1, what) != b"\x00"

    def utf(self, what: str) -> str:
        (size,) = struct.unpack(">H", self.take(2, what))
        raw = self.take(size, what).replace(b"\xc0\x80", b"\x00")
        try:
            text = raw.decode("utf-8", "surrogatepass")
            return text.encode("utf-16", "surrogatepass").decode("utf-16")
        except UnicodeError:
            raise self.fail(f"`{what}` is not UTF-8 text") from None

    def nullable(self, what: str) -> str | None:
        return self.utf(what) if self.boolean(what) else None


def decode(text: str, field: str = "encoded") -> LavaplayerTrack:
    """Read an encoded track; :class:`TrackDecodeError` names ``field`` and what is wrong."""
    if len(text) > _MAX_SIZE * 4 // 3 + 8:
        raise TrackDecodeError(f"field `{field}`: longer than {_MAX_SIZE} bytes of track data")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise TrackDecodeError(f"field `{field}`: not base64") from None
    head = _Reader(data, field)
    (word,) = struct.unpack(">I", head.take(4, "header"))
    size, flags = word & _SIZE_MASK, word >> 30
    if size == 0 or size > len(data) - 4:
        raise head.fail(f"the header announces {size} bytes, {len(data) - 4} follow")
    r = _Reader(data[4 : 4 + size], field)
    version = r.take(1, "version")[0] if flags & _VERSIONED else 1
    if not 1 <= version <= VERSION:
        raise r.fail(f"version {version}; versions 1 to {VERSION} are known")
    title, author = r.utf("title"), r.utf("author")
    length, identifier, is_stream = r.long("length"), r.utf("identifier"), r.boolean("isStream")
    uri = r.nullable("uri") if version >= 2 else None
    artwork, isrc = (r.nullable("artworkUrl"), r.nullable("isrc")) if version >= 3 else (None, None)
    source = r.utf("sourceName")
    if len(r.data) - r.at < 8:
        raise r.fail("truncated in `position`")
    details = r.take(len(r.data) - r.at - 8, "details")
    return LavaplayerTrack(
        title=title,
        author=author,
        length=length,
        identifier=identifier,
        is_stream=is_stream,
        uri=uri,
        artwork_url=artwork,
        isrc=isrc,
        source_name=source,
        details=details,
        position=r.long("position"),
        version=version,
    )
