"""The UDP socket of one VDP channel (docs/protocols/vdp.md), a thin driver: bytes in and out.

The socket is non-blocking and read in bounded batches by the engine's receive thread, once
per 20 ms tick (``engine/vdp.py``), never by the event loop: a flood of datagrams at the
channel's port costs the receive thread at most :data:`READ_BATCH` reads per tick, the kernel
drops the rest, and the real-time sender on the loop never sees any of it. Sends come from the
same thread; a send the kernel cannot take at once is dropped (live audio is not retried).
"""

from __future__ import annotations

import socket
from typing import Final

READ_BATCH: Final = 16
"""Datagrams read per tick at most (a peer sends one per 20 ms; this absorbs bursts)."""
RECV_BYTES: Final = 2048
"""Read size: larger than any datagram the protocol takes, so an oversized one is seen as
such instead of being truncated into something that looks valid."""
RCVBUF: Final = 64 * 1024
"""Kernel receive buffer: about a second of a peer's audio; a flood beyond is dropped there."""


class VdpSocket:
    """``VdpSocket(host)`` binds an ephemeral port; :meth:`read` and :meth:`send` never block."""

    def __init__(self, host: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.setblocking(False)
            sock.bind((host, 0))
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port: int = sock.getsockname()[1]
        self.send_failures = 0

    @property
    def family(self) -> int:
        return self._sock.family

    def read(self, limit: int = READ_BATCH) -> list[tuple[bytes, str, int]]:
        """Up to ``limit`` waiting datagrams as ``(data, source ip, source port)``."""
        out: list[tuple[bytes, str, int]] = []
        for _ in range(limit):
            try:
                data, source = self._sock.recvfrom(RECV_BYTES)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # an ICMP error of an earlier send, reported here: go on
                continue
            out.append((data, source[0], source[1]))
        return out

    def send(self, data: bytes, host: str, port: int) -> bool:
        """Send one datagram now, or drop it (False) if the kernel cannot take it."""
        try:
            self._sock.sendto(data, (host, port))
        except OSError:
            self.send_failures += 1
            return False
        return True

    def close(self) -> None:
        self._sock.close()
