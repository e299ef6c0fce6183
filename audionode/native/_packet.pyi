"""Type stubs of the C extension (audionode/native/_packet.c)."""

from typing import Final, Literal, Protocol

MODE_AES_GCM: Final[int]
MODE_XCHACHA: Final[int]
OPENSSL_VERSION: Final[str]
SODIUM_VERSION: Final[str]

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
    def __init__(self, ssrc: int, sequence: int = 0, timestamp: int = 0) -> None: ...
    def set_key(self, mode: int, key: bytes) -> None: ...
    def packet(self, frame: bytes) -> bytes: ...

class Batch:
    backend: Final[str]
    """How ``flush`` sends: ``"io_uring"`` or ``"sendmmsg"`` (decision 0020)."""
    def __init__(self, backend: Literal["auto", "io_uring", "sendmmsg"] = "auto") -> None: ...
    def add(self, channel: Channel, frame: bytes, fd: int, /) -> bool: ...
    def flush(self) -> int: ...
    def pending(self) -> int: ...

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
