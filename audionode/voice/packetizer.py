"""Opus frame → encrypted RTP packet, the sender's per-frame hot path (sans-I/O).

Order per frame (docs/discord-voice.md §2.1, §2.7): opus → DAVE encrypt (unless silence or no
group) →
RTP header (seq, ts, ssrc) → transport AEAD (nonce counter) → datagram. Counters (§1.9, §1.10):
seq +1 (u16) and ts +960 (u32) per frame, silence included; the nonce counter +1 (u32) per packet,
reset to 0 whenever a new op 4 key is installed. The counters survive a resume (§1.6): keep the
same :class:`Packetizer` across websocket reconnects and only call :meth:`set_cipher` on op 4.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from audionode import native
from audionode.voice.crypto import AES_GCM_MODE, XCHACHA_MODE, TransportCipher
from audionode.voice.rtp import OPUS_PAYLOAD_TYPE, SAMPLES_PER_FRAME, pack_keepalive

if TYPE_CHECKING:
    from audionode.native import _packet

SILENCE_FRAME: Final = b"\xf8\xff\xfe"
"""The 3-byte opus silence frame; never DAVE-encrypted (§1.11, §2.1)."""
SILENCE_FRAME_COUNT: Final = 5
"""Silence frames to send before any break in transmission (§1.11)."""

_HEADER = struct.Struct(">BBHII")
_V2: Final = 0x80


class FrameEncryptor(Protocol):
    """The DAVE side as the packetizer sees it (``DaveState`` implements it)."""

    def encrypt_opus(self, frame: bytes) -> bytes:
        """Return the DAVE frame, or ``frame`` unchanged while no group is established."""
        ...


class Packetizer:
    """Per-connection RTP state: one instance per voice connection, one call per 20 ms frame.

    Call :meth:`set_cipher` after every op 4 (it resets the nonce counter), optionally
    :meth:`set_encryptor` once DAVE is set up, then :meth:`packet` for each frame in send order.
    Not thread-safe; it is meant to be driven by the single real-time sender.
    """

    __slots__ = (
        "_cipher",
        "_encryptor",
        "_seal",
        "keepalives",
        "keyed",
        "nonce",
        "sequence",
        "ssrc",
        "timestamp",
    )

    def __init__(
        self,
        ssrc: int,
        cipher: TransportCipher | None = None,
        *,
        sequence: int = 0,
        timestamp: int = 0,
        encryptor: FrameEncryptor | None = None,
    ) -> None:
        self.ssrc = ssrc
        self.sequence = sequence & 0xFFFF
        """Sequence number of the next packet."""
        self.timestamp = timestamp & 0xFFFFFFFF
        """RTP timestamp of the next packet."""
        self.nonce = 0
        """Transport nonce counter of the next packet (N4)."""
        self.keepalives = 0
        self._cipher = cipher
        self._seal: Callable[[bytes, bytes, int], bytes] | None = (
            cipher.seal if cipher is not None else None
        )
        self.keyed = cipher is not None
        """True once a cipher is installed (a plain attribute: read per frame)."""
        self._encryptor = encryptor

    @property
    def cipher(self) -> TransportCipher | None:
        """The transport cipher in use (``None`` before the first op 4)."""
        return self._cipher

    def set_cipher(self, cipher: TransportCipher) -> None:
        """Install the cipher of a new op 4 Session Description; the nonce restarts at 0."""
        self._cipher = cipher
        self._seal = cipher.seal
        self.keyed = True
        self.nonce = 0

    def set_encryptor(self, encryptor: FrameEncryptor | None) -> None:
        """Install (or remove) the DAVE frame encryptor."""
        self._encryptor = encryptor

    def packet(self, frame: bytes) -> bytes:
        """Build the datagram for one 20 ms opus frame and advance seq, ts and nonce.

        Raises :class:`RuntimeError` before the first :meth:`set_cipher` (a caller bug). A DAVE
        failure propagates without consuming counters, so the caller may drop or retry the frame.
        """
        seal = self._seal
        if seal is None:
            raise RuntimeError("Packetizer.packet() before set_cipher(): no op 4 key yet")
        encryptor = self._encryptor
        if encryptor is not None and frame != SILENCE_FRAME:
            frame = encryptor.encrypt_opus(frame)
        seq, ts, nonce = self.sequence, self.timestamp, self.nonce
        datagram = seal(_HEADER.pack(_V2, OPUS_PAYLOAD_TYPE, seq, ts, self.ssrc), frame, nonce)
        self.sequence = (seq + 1) & 0xFFFF
        self.timestamp = (ts + SAMPLES_PER_FRAME) & 0xFFFFFFFF
        self.nonce = (nonce + 1) & 0xFFFFFFFF
        return datagram

    def keepalive(self) -> bytes:
        """The next 8-byte UDP keepalive (every ~5 s while idle, §1.11); RTP counters untouched."""
        payload = pack_keepalive(self.keepalives)
        self.keepalives += 1
        return payload


class NativePacketizer:
    """:class:`Packetizer` with its state in a native ``Channel`` (docs/decisions/0017).

    The same interface and the same bytes (tested); the counters live in :attr:`channel` so
    that the sender's per-tick :class:`~audionode.native._packet.Batch` and :meth:`packet`
    advance one set of them. Build it with :func:`new_packetizer`.
    """

    __slots__ = ("_cipher", "_encryptor", "channel", "keepalives", "keyed", "ssrc")

    def __init__(
        self,
        ssrc: int,
        cipher: TransportCipher | None = None,
        *,
        sequence: int = 0,
        timestamp: int = 0,
        encryptor: FrameEncryptor | None = None,
    ) -> None:
        mod = native.module()
        if mod is None:
            raise RuntimeError(f"NativePacketizer without the extension: {native.describe()}")
        self.ssrc = ssrc
        self.channel: _packet.Channel = mod.Channel(ssrc, sequence & 0xFFFF, timestamp & 0xFFFFFFFF)
        self.keepalives = 0
        self.keyed = False
        self._cipher: TransportCipher | None = None
        self._encryptor: FrameEncryptor | None = None
        if cipher is not None:
            self.set_cipher(cipher)
        self.set_encryptor(encryptor)

    @property
    def sequence(self) -> int:
        """Sequence number of the next packet."""
        return self.channel.sequence

    @sequence.setter
    def sequence(self, value: int) -> None:
        self.channel.sequence = value & 0xFFFF

    @property
    def timestamp(self) -> int:
        """RTP timestamp of the next packet."""
        return self.channel.timestamp

    @timestamp.setter
    def timestamp(self, value: int) -> None:
        self.channel.timestamp = value & 0xFFFFFFFF

    @property
    def nonce(self) -> int:
        """Transport nonce counter of the next packet (N4)."""
        return self.channel.nonce

    @nonce.setter
    def nonce(self, value: int) -> None:
        self.channel.nonce = value & 0xFFFFFFFF

    @property
    def cipher(self) -> TransportCipher | None:
        """The transport cipher in use (``None`` before the first op 4)."""
        return self._cipher

    def set_cipher(self, cipher: TransportCipher) -> None:
        """Install the key of a new op 4 Session Description; the nonce restarts at 0."""
        mode = _NATIVE_MODES.get(cipher.mode)
        key = getattr(cipher, "key", None)
        if mode is None or not isinstance(key, bytes):
            raise ValueError(f"no native seal for {type(cipher).__name__} ({cipher.mode})")
        self.channel.set_key(mode, key)
        self._cipher = cipher
        self.keyed = True

    def set_encryptor(self, encryptor: FrameEncryptor | None) -> None:
        """Install (or remove) the DAVE frame encryptor."""
        self._encryptor = encryptor
        self.channel.encryptor = encryptor

    def packet(self, frame: bytes) -> bytes:
        """:meth:`Packetizer.packet`, natively (a DAVE failure propagates, counters unchanged)."""
        return self.channel.packet(frame)

    def keepalive(self) -> bytes:
        """The next 8-byte UDP keepalive (every ~5 s while idle, §1.11); RTP counters untouched."""
        payload = pack_keepalive(self.keepalives)
        self.keepalives += 1
        return payload


_NATIVE_MODES: Final = {AES_GCM_MODE: 1, XCHACHA_MODE: 2}
"""Mode names → the extension's ``MODE_AES_GCM``/``MODE_XCHACHA``."""

AnyPacketizer = Packetizer | NativePacketizer


def new_packetizer(
    ssrc: int, *, sequence: int = 0, timestamp: int = 0, use_native: bool | None = None
) -> AnyPacketizer:
    """The packetizer of a new voice session: native when the extension is built and not
    switched off (``use_native=None``: :func:`audionode.native.enabled`), else Python."""
    if use_native is None:
        use_native = native.enabled()
    if use_native:
        return NativePacketizer(ssrc, sequence=sequence, timestamp=timestamp)
    return Packetizer(ssrc, sequence=sequence, timestamp=timestamp)


def silence_frames(count: int = SILENCE_FRAME_COUNT) -> tuple[bytes, ...]:
    """The frames to queue on stop or pause: feed each to :meth:`Packetizer.packet` at the normal
    20 ms pacing, then send speaking 0 (§1.11)."""
    return (SILENCE_FRAME,) * count
