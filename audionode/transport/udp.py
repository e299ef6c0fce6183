"""The voice UDP socket: IP discovery and a non-blocking send path (discord-voice.md §1.8, §1.11).

One :class:`VoiceUdp` per voice session: it is opened on op 2 Ready's ``ip:port``, survives a
websocket resume (§1.6: UDP stays valid) and is replaced only by a fresh session. Received
datagrams other than the discovery reply (audio the server forwards from other members, RTCP)
are counted and handed to an optional callback; the node itself does not play them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final, cast

from audionode.errors import VoiceError
from audionode.voice.rtp import (
    DISCOVERY_RESPONSE,
    DatagramKind,
    Discovery,
    RtpError,
    classify,
    pack_discovery_request,
    parse_discovery,
)

log = logging.getLogger(__name__)

DISCOVERY_TIMEOUT: Final = 1.0
"""Seconds to wait for each IP-discovery reply before sending the request again."""
DISCOVERY_ATTEMPTS: Final = 3


class DiscoveryError(VoiceError):
    """IP discovery got no valid reply: the voice server's UDP port is unreachable."""


DatagramCallback = Callable[[bytes, DatagramKind], None]


class VoiceUdp(asyncio.DatagramProtocol):
    """A connected UDP endpoint to the voice server; build it with :meth:`open`.

    :meth:`send` is the per-packet hot path: a synchronous ``transport.sendto`` that never
    blocks (the kernel drops what it cannot queue, which is right for real-time audio).
    """

    def __init__(self, on_datagram: DatagramCallback | None = None) -> None:
        self._transport: asyncio.DatagramTransport | None = None
        self._on_datagram = on_datagram
        self._discovery: asyncio.Future[Discovery] | None = None
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

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received += 1
        kind = classify(data)
        if kind is DatagramKind.DISCOVERY_RESPONSE:
            self._discovered(data)
        elif self._on_datagram is not None:
            self._on_datagram(data, kind)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: not fatal for UDP, but worth a counter.
        self.errors += 1
        self.last_error = exc

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._closed.set()
        if self._discovery is not None and not self._discovery.done():
            self._discovery.set_exception(DiscoveryError("UDP socket closed during discovery"))

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

    async def discover(
        self,
        ssrc: int,
        *,
        wait: float = DISCOVERY_TIMEOUT,
        attempts: int = DISCOVERY_ATTEMPTS,
    ) -> Discovery:
        """IP discovery (§1.8): send the 74-byte request for ``ssrc`` up to ``attempts`` times,
        ``wait`` seconds apart; return the reply (our external ip and port) or raise
        :class:`DiscoveryError`. UDP may drop either datagram, hence the retries."""
        loop = asyncio.get_running_loop()
        request = pack_discovery_request(ssrc)
        for _ in range(attempts):
            self._discovery = loop.create_future()
            self.send(request)
            try:
                return await asyncio.wait_for(asyncio.shield(self._discovery), wait)
            except TimeoutError:
                continue
            finally:
                self._discovery = None
        raise DiscoveryError(
            f"IP discovery: no reply for SSRC {ssrc} after {attempts} tries of {wait:g} s"
        )

    def _discovered(self, data: bytes) -> None:
        fut = self._discovery
        if fut is None or fut.done():
            return
        try:
            reply = parse_discovery(data)
        except RtpError as exc:
            log.warning("ignoring malformed IP discovery reply: %s", exc)
            return
        if reply.kind == DISCOVERY_RESPONSE:
            fut.set_result(reply)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self._transport is not None:
            self._transport.close()

    async def wait_closed(self) -> None:
        await self._closed.wait()
