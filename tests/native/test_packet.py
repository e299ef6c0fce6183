"""The native packet path (decision 0017) against the Python one: the same datagrams, byte for
byte, in both rtpsize modes, with DAVE on and off, for several streams, across the wrap of the
sequence, timestamp and nonce counters; and ``Batch`` delivering with ``sendmmsg`` to a real
loopback socket. The reference is ``voice/packetizer.py``'s ``Packetizer`` (itself checked
against independent ``cryptography``/PyNaCl calls in tests/voice/test_packetizer.py)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from audionode import native
from audionode.native import _packet
from audionode.voice.crypto import AES_GCM_MODE, XCHACHA_MODE, cipher_for
from audionode.voice.packetizer import (
    SILENCE_FRAME,
    NativePacketizer,
    Packetizer,
    new_packetizer,
)

MODES = [AES_GCM_MODE, XCHACHA_MODE]
AES_BACKENDS = ["openssl"] + (["sodium"] if _packet.AES_GCM == "libsodium AES-NI" else [])


@pytest.fixture(params=AES_BACKENDS)
def aes_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """AES-256-GCM through OpenSSL's EVP, and libsodium's AES-NI where the CPU has it (the
    default there): both must seal the same bytes as the Python path."""
    was = _packet.use_aes_gcm(request.param)
    try:
        yield request.param
    finally:
        _packet.use_aes_gcm(was)


class CountingDave:
    """A deterministic DAVE stand-in: a footer with a per-instance counter, so two instances
    fed the same frames produce the same bytes (davey's real frames are in test_native_e2e)."""

    def __init__(self) -> None:
        self.n = 0

    def encrypt_opus(self, frame: bytes) -> bytes:
        if frame == SILENCE_FRAME:
            return frame
        self.n += 1
        return bytes(b ^ 0x5A for b in frame) + self.n.to_bytes(8, "little") + b"\x0b\xfa\xfa"


class DirectDave(CountingDave):
    """Like ``DaveState``: ``frame_encrypt`` is the callable the native path calls directly
    (here switched off for the first frames, as before a DAVE group exists)."""

    def __init__(self) -> None:
        super().__init__()
        self.frame_encrypt: object = None


class CoreDave(_packet.EncryptorCore, CountingDave):
    """Like ``DaveState`` with the extension: ``frame_encrypt`` is a C field the native path
    reads per packet (decision 0022); unset, the encryptor is asked through its method."""


def frames(n: int) -> Iterator[bytes]:
    """Varied opus-like frames with silence runs between them (as the sender sends)."""
    for i in range(n):
        if i % 7 in (5, 6):
            yield SILENCE_FRAME
        else:
            yield os.urandom(1 + (i * 37) % 400)


def pair(
    mode: str, ssrc: int, seq: int, ts: int, nonce: int
) -> tuple[Packetizer, NativePacketizer]:
    key = os.urandom(32)
    py = Packetizer(ssrc, cipher_for(mode, key), sequence=seq, timestamp=ts)
    nat = NativePacketizer(ssrc, cipher_for(mode, key), sequence=seq, timestamp=ts)
    py.nonce = nonce
    nat.nonce = nonce
    return py, nat


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dave", ["off", "method", "direct", "core", "core-unset"])
def test_same_bytes_as_python(mode: str, dave: str, aes_backend: str) -> None:
    # Three streams; the counters of each start just before their wrap points.
    starts = [(0xCAFE, 65530, 2**32 - 960 * 3, 2**32 - 4), (7, 0, 0, 0), (2**32 - 1, 65535, 5, 9)]
    for ssrc, seq, ts, nonce in starts:
        py, nat = pair(mode, ssrc, seq, ts, nonce)
        if dave != "off":
            ref = CountingDave()
            mine: CountingDave = {
                "method": CountingDave, "direct": DirectDave, "core": CoreDave,
                "core-unset": CoreDave,
            }[dave]()
            if isinstance(mine, DirectDave | CoreDave) and dave != "core-unset":
                mine.frame_encrypt = mine.encrypt_opus
            py.set_encryptor(ref)
            nat.set_encryptor(mine)
        for frame in frames(40):
            assert nat.packet(frame) == py.packet(frame)
        assert (nat.sequence, nat.timestamp, nat.nonce) == (py.sequence, py.timestamp, py.nonce)
        assert nat.nonce == (nonce + 40) % 2**32 and nat.sequence == (seq + 40) % 2**16


@pytest.mark.parametrize("kind", [DirectDave, CoreDave])
def test_frame_encrypt_none_means_plain(kind: type[DirectDave | CoreDave]) -> None:
    """``frame_encrypt = None`` (DaveState before its group is ready): frames go out plain,
    exactly as the Python path with no encryptor."""
    py, nat = pair(AES_GCM_MODE, 1, 1, 1, 0)
    enc = kind()
    enc.frame_encrypt = None
    nat.set_encryptor(enc)
    for frame in frames(10):
        assert nat.packet(frame) == py.packet(frame)
    assert enc.n == 0


def test_new_key_restarts_nonce_and_modes_switch() -> None:
    py, nat = pair(AES_GCM_MODE, 3, 100, 200, 77)
    key = os.urandom(32)
    for p in (py, nat):
        p.set_cipher(cipher_for(XCHACHA_MODE, key))
    assert nat.nonce == py.nonce == 0
    for frame in frames(5):
        assert nat.packet(frame) == py.packet(frame)


def test_dave_failure_consumes_no_counter() -> None:
    class Broken:
        def encrypt_opus(self, frame: bytes) -> bytes:
            raise ValueError("ratchet hiccup")

    py, nat = pair(AES_GCM_MODE, 3, 10, 20, 30)
    nat.set_encryptor(Broken())
    py.set_encryptor(Broken())
    for p in (py, nat):
        with pytest.raises(ValueError, match="ratchet"):
            p.packet(b"\x01\x02")
    assert (nat.sequence, nat.timestamp, nat.nonce) == (py.sequence, py.timestamp, py.nonce)
    assert nat.packet(SILENCE_FRAME) == py.packet(SILENCE_FRAME)  # silence never goes to DAVE


def test_before_a_key_is_a_caller_bug() -> None:
    with pytest.raises(RuntimeError, match="set_cipher"):
        NativePacketizer(1).packet(b"x")
    batch = _packet.Batch()
    with pytest.raises(RuntimeError, match="no op 4 key"):
        batch.add(_packet.Channel(1), b"x", 0)


def recv_all(rx: socket.socket, n: int) -> list[bytes]:
    rx.settimeout(2.0)
    return [rx.recv(2048) for _ in range(n)]


@pytest.mark.parametrize("mode", MODES)
def test_batch_sendmmsg_delivers_same_datagrams(mode: str, aes_backend: str) -> None:
    """Five streams, 30 ticks: all of a tick staged, then one flush. Streams 0-2 share one
    socket (one sendmmsg of three per tick), 3 and 4 have their own; the receiver gets the
    Python path's datagrams in order."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    rx.bind(("127.0.0.1", 0))
    tx = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    for s in tx:
        s.connect(rx.getsockname())
    fds = [tx[0].fileno()] * 3 + [tx[1].fileno(), tx[2].fileno()]
    streams = [pair(mode, 1000 + i, 65520 + i, 2**32 - 960 * 15, 2**32 - 10) for i in range(5)]
    for i, (py, nat) in enumerate(streams):
        if i % 2:
            py.set_encryptor(CountingDave())
            nat.set_encryptor(CountingDave())
    batch = _packet.Batch()
    try:
        for _ in range(30):
            expected = []
            for (py, nat), fd in zip(streams, fds, strict=True):
                frame = next(frames(1)) if os.urandom(1)[0] % 4 else SILENCE_FRAME
                assert batch.add(nat.channel, frame, fd)
                expected.append(py.packet(frame))
            assert batch.pending() == 5
            assert batch.flush() == 5
            assert batch.pending() == 0
            assert sorted(recv_all(rx, 5)) == sorted(expected)
        assert [nat.channel.sent for _, nat in streams] == [30] * 5
        assert all(nat.channel.send_errors == 0 for _, nat in streams)
        assert batch.flush() == 0
    finally:
        rx.close()
        for s in tx:
            s.close()


def test_batch_counts_what_the_kernel_refuses() -> None:
    """A closed descriptor: the datagram is dropped and counted, the others still go."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    good = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    good.connect(rx.getsockname())
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead_fd = dead.fileno()
    dead.close()
    _, a = pair(AES_GCM_MODE, 1, 0, 0, 0)
    _, b = pair(AES_GCM_MODE, 2, 0, 0, 0)
    batch = _packet.Batch()
    try:
        batch.add(a.channel, b"\x01", dead_fd)
        batch.add(b.channel, b"\x02", good.fileno())
        assert batch.flush() == 1
        assert (a.channel.send_errors, a.channel.sent, b.channel.sent) == (1, 0, 1)
        assert len(recv_all(rx, 1)[0]) == 12 + 1 + 16 + 4
    finally:
        rx.close()
        good.close()


def test_batch_drops_a_frame_dave_fails_on() -> None:
    class Broken:
        frame_encrypt = None

        def __init__(self) -> None:
            self.frame_encrypt = self.fail  # type: ignore[assignment]

        def fail(self, frame: bytes) -> bytes:
            raise ValueError("no key for this generation")

        def encrypt_opus(self, frame: bytes) -> bytes:
            return self.fail(frame)

    _, nat = pair(AES_GCM_MODE, 1, 5, 6, 7)
    nat.set_encryptor(Broken())
    batch = _packet.Batch()
    assert batch.add(nat.channel, b"\x01\x02", 0) is False
    assert (nat.sequence, nat.timestamp, nat.nonce, nat.channel.dave_failures) == (5, 6, 7, 1)
    assert batch.pending() == 0


def test_oversized_frame_is_refused() -> None:
    _, nat = pair(AES_GCM_MODE, 1, 0, 0, 0)
    with pytest.raises(ValueError, match="larger than a datagram"):
        nat.packet(bytes(1600))
    with pytest.raises(ValueError, match="larger than a datagram"):
        _packet.Batch().add(nat.channel, bytes(1600), 0)
    assert nat.sequence == 0


def test_switch_selects_the_python_path(python_path: None) -> None:
    native.configure(True)
    assert isinstance(new_packetizer(1), NativePacketizer)
    assert native.describe().startswith("native packet path")
    native.configure(False)
    assert not native.enabled() and native.module() is None
    assert type(new_packetizer(1)) is Packetizer
    assert "pure-Python" in native.describe()
    with pytest.raises(RuntimeError, match="without the extension"):
        NativePacketizer(1)
