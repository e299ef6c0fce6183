"""rtpsize AEAD modes (docs/discord-voice.md §1.10), checked against independent library calls."""

from __future__ import annotations

import os
import struct

import nacl.bindings
import nacl.secret
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from audionode.voice import rtp
from audionode.voice.crypto import (
    AES_GCM_MODE,
    XCHACHA_MODE,
    AesGcmRtpsize,
    CryptoError,
    XChaChaRtpsize,
    choose_mode,
    cipher_for,
)
from audionode.voice.rtp import RtpError, RtpHeader

KEY = bytes(range(32))
OPUS = bytes.fromhex("fc") + os.urandom(60)


def _gcm_open_independently(key: bytes, packet: bytes, hlen: int) -> bytes:
    """The raw `cryptography` Cipher API (not AESGCM): nonce = N4 ‖ 8 zeros, AAD = header."""
    n4, body = packet[-4:], packet[hlen:-4]
    dec = Cipher(algorithms.AES(key), modes.GCM(n4 + bytes(8), body[-16:])).decryptor()
    dec.authenticate_additional_data(packet[:hlen])
    return dec.update(body[:-16]) + dec.finalize()


def test_aes_gcm_seal_is_opened_by_an_independent_call() -> None:
    header = rtp.pack_header(7, 6720, 1234)
    pkt = AesGcmRtpsize(list(KEY)).seal(header, OPUS, 0x01020304)
    assert pkt[:12] == header and pkt[-4:] == bytes.fromhex("01020304")
    assert len(pkt) == 12 + len(OPUS) + 16 + 4
    assert _gcm_open_independently(KEY, pkt, 12) == OPUS


def test_xchacha_seal_is_opened_by_pynacl_high_level_aead_like_discord_py() -> None:
    header = rtp.pack_header(1, 0, 99)
    pkt = XChaChaRtpsize(KEY).seal(header, OPUS, 5)
    assert pkt[-4:] == struct.pack(">I", 5)
    nonce = pkt[-4:] + bytes(20)
    assert nacl.secret.Aead(KEY).decrypt(pkt[12:-4], header, nonce) == OPUS


def test_packets_sealed_independently_are_opened_by_us() -> None:
    header = rtp.pack_header(2, 960, 77)
    n4 = struct.pack(">I", 9)
    xpkt = (
        header
        + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            OPUS, header, n4 + bytes(20), KEY
        )
        + n4
    )
    opened = XChaChaRtpsize(KEY).open(xpkt)
    assert (opened.payload, opened.nonce, opened.header.sequence) == (OPUS, 9, 2)
    enc = Cipher(algorithms.AES(KEY), modes.GCM(n4 + bytes(8))).encryptor()
    enc.authenticate_additional_data(header)
    gpkt = header + enc.update(OPUS) + enc.finalize() + enc.tag + n4
    assert AesGcmRtpsize(KEY).open(gpkt).payload == OPUS


@pytest.mark.parametrize("mode", [AES_GCM_MODE, XCHACHA_MODE])
def test_tampering_anywhere_fails_authentication(mode: str) -> None:
    cipher = cipher_for(mode, KEY)
    pkt = cipher.seal(rtp.pack_header(1, 2, 3), OPUS, 1)
    for pos in (1, 11, 20, len(pkt) - 5, len(pkt) - 1):  # header, body, tag, nonce
        bad = bytearray(pkt)
        bad[pos] ^= 0x01
        with pytest.raises(CryptoError):
            cipher.open(bytes(bad))
    with pytest.raises(CryptoError):
        cipher_for(mode, bytes(32)).open(pkt)


@pytest.mark.parametrize("mode", [AES_GCM_MODE, XCHACHA_MODE])
def test_extension_csrc_and_padding_are_handled_like_rtpsize_receivers(mode: str) -> None:
    """Discord clients send X=1: the 4-byte preamble is AAD, the elements are encrypted."""
    cipher = cipher_for(mode, KEY)
    hdr = RtpHeader(
        10, 20, 30, csrcs=(0xAABBCCDD,), extension_profile=0xBEDE, extension_words=2, padding=True
    )
    aad = hdr.pack()
    assert len(aad) == 12 + 4 + 4
    elements = bytes.fromhex("1000aabb 22000000".replace(" ", ""))
    body = elements + OPUS + bytes([0, 0, 3])
    pkt = cipher.seal(aad, body, 42)
    opened = cipher.open(pkt)
    assert opened.payload == OPUS
    assert opened.header == hdr and opened.aad == aad and opened.plaintext == body
    # The AAD really is the full rtpsize header: independent decryption with hlen=20 works.
    if mode == AES_GCM_MODE:
        assert _gcm_open_independently(KEY, pkt, 20) == body


@pytest.mark.parametrize("mode", [AES_GCM_MODE, XCHACHA_MODE])
def test_bad_padding_and_short_packets_are_clear_errors(mode: str) -> None:
    cipher = cipher_for(mode, KEY)
    padded = RtpHeader(1, 1, 1, padding=True).pack()
    with pytest.raises(CryptoError, match="padding length 0"):
        cipher.open(cipher.seal(padded, b"abc\x00", 1))
    with pytest.raises(CryptoError, match="padding length 200"):
        cipher.open(cipher.seal(padded, b"abc\xc8", 1))
    ext = RtpHeader(1, 1, 1, extension_profile=0xBEDE, extension_words=5).pack()
    with pytest.raises(CryptoError, match="extension of 20 bytes"):
        cipher.open(cipher.seal(ext, b"short", 1))
    with pytest.raises(CryptoError, match="too short"):
        cipher.open(rtp.pack_header(1, 1, 1) + bytes(19))
    with pytest.raises(RtpError):
        cipher.open(b"\x00" * 40)


@pytest.mark.parametrize("mode", [AES_GCM_MODE, XCHACHA_MODE])
def test_rtcp_uses_eight_clear_bytes_as_aad(mode: str) -> None:
    cipher = cipher_for(mode, KEY)
    head = bytes([0x81, 201, 0, 7]) + struct.pack(">I", 1234)
    pkt = cipher.seal(head, b"report-body", 3)
    assert cipher.open_rtcp(pkt) == (head, b"report-body")


@given(st.binary(max_size=100))
def test_open_of_arbitrary_bytes_raises_only_our_errors(data: bytes) -> None:
    for cipher in (AesGcmRtpsize(KEY), XChaChaRtpsize(KEY)):
        with pytest.raises((CryptoError, RtpError)):
            cipher.open(data)


def test_nonce_wraps_as_u32_big_endian() -> None:
    pkt = AesGcmRtpsize(KEY).seal(rtp.pack_header(1, 1, 1), b"x", 2**32 - 1)
    assert pkt[-4:] == b"\xff\xff\xff\xff"
    with pytest.raises(struct.error):
        AesGcmRtpsize(KEY).seal(rtp.pack_header(1, 1, 1), b"x", 2**32)


def test_choose_mode_and_key_validation() -> None:
    assert choose_mode(["aead_xchacha20_poly1305_rtpsize", AES_GCM_MODE]) == AES_GCM_MODE
    assert choose_mode(["xsalsa20_poly1305", XCHACHA_MODE]) == XCHACHA_MODE
    with pytest.raises(CryptoError, match="no supported encryption mode"):
        choose_mode(["xsalsa20_poly1305_lite"])
    with pytest.raises(CryptoError, match="unsupported encryption mode 'xsalsa20_poly1305'"):
        cipher_for("xsalsa20_poly1305", KEY)
    with pytest.raises(CryptoError, match="32 bytes, got 31"):
        AesGcmRtpsize(bytes(31))
    with pytest.raises(CryptoError, match=r"ints 0\.\.255"):
        XChaChaRtpsize([300] * 32)
    assert cipher_for(XCHACHA_MODE, KEY).mode == XCHACHA_MODE
