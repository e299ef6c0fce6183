"""Transport encryption: the two rtpsize AEAD modes Discord still accepts.

See docs/discord-voice.md §1.10.

Packet layout (both modes)::

    [clear header H = 12 + 4*CC (+4 ext preamble)]
    [AEAD(ext elements ‖ payload [‖ padding]) ‖ tag16][N4]

N4 is the sender's u32 nonce counter, big-endian, appended in the clear; the AEAD nonce is N4
followed by zeros (12 bytes for AES-256-GCM, 24 for XChaCha20-Poly1305), AAD is H.

A cipher object is built once per ``secret_key`` (i.e. once per op 4) and its :meth:`seal` is the
per-packet hot path; it keeps no counter: the packetizer owns the nonce.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple, Protocol

import nacl.bindings
import nacl.exceptions
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from audionode.errors import VoiceError
from audionode.voice.rtp import RtpHeader, parse_header

AES_GCM_MODE: Final = "aead_aes256_gcm_rtpsize"
XCHACHA_MODE: Final = "aead_xchacha20_poly1305_rtpsize"
SUPPORTED_MODES: Final = (AES_GCM_MODE, XCHACHA_MODE)
"""Our modes in order of preference (§1.10: AES-GCM when offered, else XChaCha)."""

KEY_SIZE: Final = 32
TAG_SIZE: Final = 16
NONCE_SUFFIX_SIZE: Final = 4
RTCP_HEADER_SIZE: Final = 8
_N4 = struct.Struct(">I")
_ZERO8: Final = bytes(8)
_ZERO20: Final = bytes(20)
_xchacha_encrypt = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt
_xchacha_decrypt = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt


class CryptoError(VoiceError):
    """A packet could not be opened (too short, wrong key, tampered) or no usable mode exists."""


class Opened(NamedTuple):
    """Result of :meth:`TransportCipher.open`.

    ``payload`` is the media frame (opus or DAVE) with extension elements and padding stripped.
    ``aad`` (the clear header bytes) and ``plaintext`` (the whole decrypted body) let a forwarder
    re-seal the packet byte-for-byte under another key: ``other.seal(aad, plaintext, n)``.
    """

    header: RtpHeader
    payload: bytes
    nonce: int
    aad: bytes
    plaintext: bytes


class TransportCipher(Protocol):
    """What both rtpsize modes offer; build one with :func:`cipher_for`."""

    @property
    def mode(self) -> str:
        """The mode name as negotiated in op 1/op 4."""
        ...

    def seal(self, header: bytes, payload: bytes, nonce: int) -> bytes:
        """Encrypt ``payload`` with AAD ``header`` under nonce counter ``nonce`` (u32); return the
        full packet ``header ‖ ct ‖ tag ‖ N4``. The caller never reuses ``nonce`` under one key."""
        ...

    def open(self, packet: bytes) -> Opened:
        """Decrypt an RTP packet; raise :class:`CryptoError` or :class:`RtpError` when invalid."""
        ...

    def open_rtcp(self, packet: bytes) -> tuple[bytes, bytes]:
        """Decrypt an RTCP packet (8 clear bytes as AAD): return ``(clear_header, body)``."""
        ...


def _key_bytes(key: bytes | Sequence[int]) -> bytes:
    try:
        raw = bytes(key)
    except (TypeError, ValueError) as exc:
        raise CryptoError(f"secret_key must be 32 bytes (ints 0..255): {exc}") from None
    if len(raw) != KEY_SIZE:
        raise CryptoError(f"secret_key must be 32 bytes, got {len(raw)}")
    return raw


def _split(packet: bytes, hlen: int) -> tuple[bytes, bytes, int]:
    if len(packet) < hlen + TAG_SIZE + NONCE_SUFFIX_SIZE:
        raise CryptoError(f"packet too short for header {hlen} + tag 16 + nonce 4: {len(packet)}")
    n4 = packet[-NONCE_SUFFIX_SIZE:]
    return packet[:hlen], n4, _N4.unpack(n4)[0]


def _strip(header: RtpHeader, plain: bytes) -> bytes:
    """Drop the encrypted extension elements and RTP padding (§1.10 steps 5 and 6)."""
    start = header.extension_words * 4 if header.extension_profile is not None else 0
    end = len(plain)
    if header.padding:
        pad = plain[-1] if plain else 0
        if pad == 0 or start + pad > end:
            raise CryptoError(f"RTP padding length {pad} does not fit the {end}-byte payload")
        end -= pad
    if start > end:
        raise CryptoError(f"extension of {start} bytes is longer than the {end}-byte payload")
    return plain[start:end]


class _RtpsizeOpen:
    """Receiving is the same in both modes (§1.10): the clear header (12 + 4*CC [+4]) is the
    AAD, the last 4 bytes are N4; only the AEAD differs (``_decrypt``)."""

    __slots__ = ()

    def _decrypt(self, aad: bytes, n4: bytes, body: bytes) -> bytes:
        raise NotImplementedError

    def open(self, packet: bytes) -> Opened:
        header = parse_header(packet)
        aad, n4, nonce = _split(packet, header.size)
        plain = self._decrypt(aad, n4, packet[header.size : -4])
        return Opened(header, _strip(header, plain), nonce, aad, plain)

    def open_rtcp(self, packet: bytes) -> tuple[bytes, bytes]:
        aad, n4, _ = _split(packet, RTCP_HEADER_SIZE)
        return aad, self._decrypt(aad, n4, packet[RTCP_HEADER_SIZE:-4])


class AesGcmRtpsize(_RtpsizeOpen):
    """``aead_aes256_gcm_rtpsize``: AES-256-GCM, nonce = N4 ‖ 8 zero bytes, AAD = header."""

    __slots__ = ("_aead", "key")
    mode: Final = AES_GCM_MODE

    def __init__(self, key: bytes | Sequence[int]) -> None:
        self.key = _key_bytes(key)
        """The 32-byte op 4 key (the native packet path keys its own AES-GCM with it)."""
        self._aead = AESGCM(self.key)

    def seal(self, header: bytes, payload: bytes, nonce: int) -> bytes:
        n4 = _N4.pack(nonce)
        return header + self._aead.encrypt(n4 + _ZERO8, payload, header) + n4

    def _decrypt(self, aad: bytes, n4: bytes, body: bytes) -> bytes:
        try:
            return self._aead.decrypt(n4 + _ZERO8, body, aad)
        except InvalidTag:
            raise CryptoError("AES-GCM authentication failed (wrong key or tampered)") from None


class XChaChaRtpsize(_RtpsizeOpen):
    """``aead_xchacha20_poly1305_rtpsize``: libsodium XChaCha20-Poly1305-IETF, nonce = N4 ‖ 20
    zero bytes, AAD = header."""

    __slots__ = ("_key",)
    mode: Final = XCHACHA_MODE

    def __init__(self, key: bytes | Sequence[int]) -> None:
        self._key = _key_bytes(key)

    @property
    def key(self) -> bytes:
        """The 32-byte op 4 key (for the native packet path)."""
        return self._key

    def seal(self, header: bytes, payload: bytes, nonce: int) -> bytes:
        n4 = _N4.pack(nonce)
        return header + _xchacha_encrypt(payload, header, n4 + _ZERO20, self._key) + n4

    def _decrypt(self, aad: bytes, n4: bytes, body: bytes) -> bytes:
        try:
            plain: bytes = _xchacha_decrypt(body, aad, n4 + _ZERO20, self._key)
        except nacl.exceptions.CryptoError:
            raise CryptoError("XChaCha20-Poly1305 authentication failed") from None
        return plain


def cipher_for(mode: str, key: bytes | Sequence[int]) -> TransportCipher:
    """Build the cipher for op 4's ``mode`` and ``secret_key``; :class:`CryptoError` if unknown."""
    if mode == AES_GCM_MODE:
        return AesGcmRtpsize(key)
    if mode == XCHACHA_MODE:
        return XChaChaRtpsize(key)
    raise CryptoError(f"unsupported encryption mode {mode!r}; expected one of {SUPPORTED_MODES}")


def choose_mode(offered: Iterable[str]) -> str:
    """Pick from op 2 Ready's ``modes``: AES-GCM when offered, else XChaCha (§1.10)."""
    modes = set(offered)
    for mode in SUPPORTED_MODES:
        if mode in modes:
            return mode
    raise CryptoError(f"no supported encryption mode offered: got {sorted(modes)}")
