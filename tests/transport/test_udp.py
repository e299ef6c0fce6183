"""VoiceUdp over a real loopback socket: a thin endpoint that only moves bytes (discovery and
the receive path are the sans-I/O session's, tested in tests/voice/test_client.py)."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from audionode.errors import VoiceError
from audionode.transport.udp import VoiceUdp
from tests.conftest import eventually


class Peer(asyncio.DatagramProtocol):
    """The far end: records what arrives."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.got.append(data)


async def test_datagrams_go_both_ways_and_a_closed_socket_sends_nothing() -> None:
    peer = Peer()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: peer, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    got: list[bytes] = []
    udp = await VoiceUdp.open("127.0.0.1", port, got.append)
    try:
        udp.send(b"12345678")
        await eventually(lambda: peer.got == [b"12345678"])
        transport.sendto(b"\x00" * 74, udp.local_address)
        transport.sendto(b"rtp?", udp.local_address)
        await eventually(lambda: got == [b"\x00" * 74, b"rtp?"])
        assert (udp.sent, udp.received) == (1, 2)
    finally:
        udp.close()
        transport.close()
        await udp.wait_closed()
    assert not udp.is_open
    udp.send(b"after close")  # a no-op, not an error
    assert udp.sent == 1


async def test_an_unusable_address_is_a_voice_error() -> None:
    with pytest.raises(VoiceError, match=r"cannot open UDP to 256\.0\.0\.1:1"):
        await VoiceUdp.open("256.0.0.1", 1)
