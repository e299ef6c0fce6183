"""Type stubs of the C extension (audionode/native/_packet.c)."""

from typing import Any, Final, Literal, Protocol

MODE_AES_GCM: Final[int]
MODE_XCHACHA: Final[int]
OPENSSL_VERSION: Final[str]
SODIUM_VERSION: Final[str]
AES_GCM: Final[str]
"""Which AES-256-GCM the channels use: "libsodium AES-NI" where the CPU has it, else "OpenSSL"."""

def use_aes_gcm(name: str, /) -> str: ...

class _Encryptor(Protocol):
    def encrypt_opus(self, frame: bytes) -> bytes: ...

class Channel:
    ssrc: int
    sequence: int
    timestamp: int
    nonce: int
    mode: int
    sent: int
    send_errors: int
    dave_failures: int
    encryptor: _Encryptor | None
    live: bool
    fd: int
    pumped: int
    pump_dropped: int
    def __init__(self, ssrc: int, sequence: int = 0, timestamp: int = 0) -> None: ...
    def set_key(self, mode: int, key: bytes) -> None: ...
    def packet(self, frame: bytes) -> bytes: ...

class Batch:
    backend: Final[str]
    """How ``flush`` sends: ``"io_uring"`` or ``"sendmmsg"`` (decision 0021)."""
    def __init__(self, backend: Literal["auto", "io_uring", "sendmmsg"] = "auto") -> None: ...
    def add(self, channel: Channel, frame: bytes, fd: int, /) -> bool: ...
    def flush(self) -> int: ...
    def pending(self) -> int: ...

class Feed:
    """One steady passthrough stream for a :class:`Pump` (decision 0020)."""

    armed: bool
    @property
    def last(self) -> float: ...
    @property
    def key(self) -> Any: ...
    @property
    def served(self) -> bool: ...
    def __init__(
        self, key: object, channel: Channel, frames: object, lane: object, never: int, /
    ) -> None: ...
    def take_sent(self) -> int: ...

class Pump:
    """The native tick over the steady passthrough streams (decision 0020)."""

    @property
    def errors(self) -> int: ...
    def arm(self, feed: Feed, /) -> None: ...
    def run(self, batch: Batch, now: float, /) -> list[Feed]: ...
    def armed(self) -> int: ...

class OggOpus:
    """The native Ogg Opus packet demuxer (``_ogg.c``, decision 0019)."""

    state: int
    why: str
    resume: int
    count: int
    samples: int
    pre_skip: int
    def __init__(self, packet_type: object) -> None: ...
    def feed(self, data: bytes | memoryview, /) -> None: ...
    def read(self, max: int, skip_to: int, end: int, /) -> list[object]: ...
    def read_into(
        self, reader: ReaderCore, max: int, skip_to: int, end: int, gen: int, /
    ) -> tuple[int, bool]: ...

def set_packet_type(type: object, /) -> None: ...

class ReaderCore:
    """A track reader's counters and packet queue in C (``_reader.c``, decision 0022)."""

    _buffered: int
    _low: int
    _gen: int
    _resting: bool
    eof: bool
    _closed: bool
    @property
    def _q_count(self) -> int: ...
    def _q_push(self, data: bytes, pos: int, samples: int, /) -> None: ...
    def _q_take(self, samples: int = -1, /) -> Any: ...
    def _q_peek(self) -> Any: ...
    def _q_clear(self) -> None: ...
    def _lane_take(self, lane: object, /) -> tuple[bytes, int] | Literal[False] | None: ...

class EncryptorCore:
    """DaveState's ``frame_encrypt`` as a C field (``_packet.c``, decision 0022)."""

    frame_encrypt: Any
