"""VoiceUdp: IP discovery over a real loopback socket (discord-voice.md §1.8)."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from audionode.transport.udp import DiscoveryError, VoiceUdp
from audionode.voice import rtp


class Responder(asyncio.DatagramProtocol):
    """Answers discovery requests after ``ignore`` of them; sends ``junk`` first if set."""

    def __init__(self, ignore: int = 0, junk: bytes | None = None) -> None:
        self.ignore, self.junk = ignore, junk
        self.requests: list[bytes] = []
        self.other: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) != rtp.DISCOVERY_SIZE:
            self.other.append(data)
            return
        self.requests.append(data)
        if len(self.requests) <= self.ignore:
            return
        assert self.transport is not None
        if self.junk is not None:
            self.transport.sendto(self.junk, addr)
        ssrc = rtp.parse_discovery(data).ssrc
        self.transport.sendto(rtp.pack_discovery_response(ssrc, "203.0.113.7", 40000), addr)


async def responder(proto: Responder) -> tuple[asyncio.DatagramTransport, int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: proto, local_addr=("127.0.0.1", 0))
    return transport, transport.get_extra_info("sockname")[1]


async def test_discovery_returns_the_external_address() -> None:
    proto = Responder()
    transport, port = await responder(proto)
    udp = await VoiceUdp.open("127.0.0.1", port)
    try:
        found = await udp.discover(0xABCD, wait=0.5)
        assert (found.kind, found.ssrc, found.ip, found.port) == (2, 0xABCD, "203.0.113.7", 40000)
        assert proto.requests == [rtp.pack_discovery_request(0xABCD)]
        udp.send(b"12345678")
        await asyncio.sleep(0.05)
        assert proto.other == [b"12345678"] and udp.sent == 2
    finally:
        udp.close()
        transport.close()
        await udp.wait_closed()
    udp.send(b"after close")  # a no-op, not an error
    assert udp.sent == 2


async def test_discovery_retries_and_skips_a_malformed_reply(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = bytes([0, 2, 0, 0x46]) + bytes(4) + b"\xff" * 64 + bytes(2)  # IP field not ASCII
    proto = Responder(ignore=2, junk=bad)
    transport, port = await responder(proto)
    udp = await VoiceUdp.open("127.0.0.1", port)
    try:
        found = await udp.discover(7, wait=0.05, attempts=3)
        assert found.ip == "203.0.113.7" and len(proto.requests) == 3
        assert "malformed IP discovery reply" in caplog.text
    finally:
        udp.close()
        transport.close()


async def test_discovery_gives_up_with_a_clear_error() -> None:
    proto = Responder(ignore=99)
    transport, port = await responder(proto)
    udp = await VoiceUdp.open("127.0.0.1", port)
    try:
        with pytest.raises(DiscoveryError, match="no reply for SSRC 9 after 2 tries"):
            await udp.discover(9, wait=0.05, attempts=2)
    finally:
        udp.close()
        transport.close()


async def test_other_datagrams_go_to_the_callback() -> None:
    got: list[tuple[bytes, rtp.DatagramKind]] = []
    proto = Responder()
    transport, port = await responder(proto)
    udp = await VoiceUdp.open("127.0.0.1", port, on_datagram=lambda d, k: got.append((d, k)))
    try:
        assert proto.transport is not None
        proto.transport.sendto(b"\x00" * 8, udp.local_address)
        pkt = rtp.RtpHeader(1, 960, 5).pack() + b"x" * 24
        proto.transport.sendto(pkt, udp.local_address)
        for _ in range(50):
            if len(got) == 2:
                break
            await asyncio.sleep(0.01)
        assert got == [(b"\x00" * 8, rtp.DatagramKind.KEEPALIVE), (pkt, rtp.DatagramKind.RTP)]
    finally:
        udp.close()
        transport.close()
