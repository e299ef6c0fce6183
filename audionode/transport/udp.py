"""The voice UDP socket (docs/discord-voice.md §1.8, §1.11): a thin asyncio endpoint.

One :class:`VoiceUdp` per voice session: opened on op 2 Ready's ``ip:port`` (the
:class:`~audionode.voice.events.UdpOpen` action), kept across a websocket resume (§1.6: UDP stays
valid) and replaced only by a fresh session. It only moves bytes: IP discovery, keepalives and
the receive path belong to the sans-I/O :class:`~audionode.voice.client.VoiceClient`, which gets
every received datagram through the callback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from audionode.errors import VoiceError

DatagramCallback = Callable[[bytes], None]


class VoiceUdp(asyncio.DatagramProtocol):
    """A connected UDP endpoint to the voice server; build it with :meth:`open`.

    :meth:`send` is the per-packet hot path: a synchronous ``transport.sendto`` that never
    blocks (the kernel drops what it cannot queue, which is right for real-time audio).
    """

    def __init__(self, on_datagram: DatagramCallback | None = None) -> None:
        self._transport: asyncio.DatagramTransport | None = None
        self.fileno = -1
        """The socket's descriptor while open (the native path sends on it directly), else -1."""
        self._on_datagram = on_datagram
        self._closed = asyncio.Event()
        self.sent = 0
        self.received = 0
        self.errors = 0
        self.last_error: OSError | Exception | None = None

    @classmethod
    async def open(
        cls, host: str, port: int, on_datagram: DatagramCallback | None = None
    ) -> VoiceUdp:
        """Create the socket connected to ``host:port`` (op 2 Ready's ``ip``/``port``)."""
        loop = asyncio.get_running_loop()
        try:
            _, proto = await loop.create_datagram_endpoint(
                lambda: cls(on_datagram), remote_addr=(host, port)
            )
        except OSError as exc:
            raise VoiceError(f"cannot open UDP to {host}:{port}: {exc}") from None
        return proto

    # --- asyncio.DatagramProtocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector datagram transport does not subclass DatagramTransport (3.11)
        self._transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        self.fileno = sock.fileno() if sock is not None else -1

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received += 1
        if self._on_datagram is not None:
            self._on_datagram(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: not fatal for UDP, but worth a counter.
        self.errors += 1
        self.last_error = exc

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self.fileno = -1
        self._closed.set()

    # --- API ---------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._transport is not None

    @property
    def local_address(self) -> tuple[str, int]:
        """Our side of the socket (``(host, port)``); only valid while open."""
        assert self._transport is not None
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def send(self, data: bytes) -> None:
        """Send one datagram now; silently nothing once closed (the connection is going away)."""
        transport = self._transport
        if transport is not None:
            transport.sendto(data)
            self.sent += 1

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self.fileno = -1  # no native send may reach a descriptor number the kernel reuses
        if self._transport is not None:
            self._transport.close()

    async def wait_closed(self) -> None:
        await self._closed.wait()
