"""The loopback proxy yt-dlp fetches through, spoken to with raw HTTP: credentials, CONNECT and
absolute-form requests, refusals recorded for the extraction, malformed requests."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest

from audionode.netpolicy import InputPolicy
from audionode.sources.guardproxy import GuardProxy, ProxySession
from audionode.sources.netguard import NetGuard
from tests.sources.conftest import MediaServer


@pytest.fixture
async def proxy() -> AsyncIterator[GuardProxy]:
    p = GuardProxy(NetGuard(InputPolicy(allow_networks=("127.0.0.2/32",)), timeout=5))
    await p.start()
    yield p
    await p.close()
    await p.guard.close()


async def ask(proxy: GuardProxy, head: str, session: ProxySession | None = None) -> bytes:
    """Send one request head through the proxy; return everything it answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    if session is not None:
        creds = base64.b64encode(f"node:{session.token}".encode()).decode()
        head = head.replace("\r\n\r\n", f"\r\nProxy-Authorization: Basic {creds}\r\n\r\n", 1)
    writer.write(head.encode())
    await writer.drain()
    try:
        async with asyncio.timeout(5):
            answer = await reader.readuntil(b"\r\n\r\n")
            if answer.startswith(b"HTTP/1.1 200 Connection"):
                return answer  # a tunnel: what follows is the target's, none here
            return answer + await reader.read()
    finally:
        writer.close()


def host_of(server: MediaServer) -> str:
    return server.base.removeprefix("http://")


async def test_requests_without_a_live_sessions_credentials_are_refused(
    proxy: GuardProxy, public: MediaServer
) -> None:
    request = f"GET {public.url('/two.html')} HTTP/1.1\r\nHost: {host_of(public)}\r\n\r\n"
    assert (await ask(proxy, request)).startswith(b"HTTP/1.1 407 ")
    with proxy.session() as session:
        pass
    assert (await ask(proxy, request, session)).startswith(b"HTTP/1.1 407 ")  # ended
    assert public.hits == 0


async def test_allowed_targets_are_relayed(proxy: GuardProxy, public: MediaServer) -> None:
    with proxy.session() as session:
        request = f"GET {public.url('/two.html')} HTTP/1.1\r\nHost: {host_of(public)}\r\n\r\n"
        answer = await ask(proxy, request, session)
        assert answer.startswith(b"HTTP/1.1 200 ") and b"Two songs" in answer
        tunnel = f"CONNECT {host_of(public)} HTTP/1.1\r\nHost: {host_of(public)}\r\n\r\n"
        assert (await ask(proxy, tunnel, session)).startswith(b"HTTP/1.1 200 Connection")
    assert session.refusals == [] and public.hits == 1


async def test_internal_targets_are_refused_and_recorded_for_the_extraction(
    proxy: GuardProxy, server: MediaServer
) -> None:
    with proxy.session() as session:
        for head in (
            f"GET {server.url('/page.html')} HTTP/1.1\r\nHost: {host_of(server)}\r\n\r\n",
            f"CONNECT {host_of(server)} HTTP/1.1\r\nHost: {host_of(server)}\r\n\r\n",
            "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n",  # closed port
        ):
            answer = await ask(proxy, head, session)
            assert answer.startswith(b"HTTP/1.1 403 Forbidden")
            assert answer.endswith(b"refusing to fetch from 127.0.0.1: not a public address the "
                                   b"node may reach (sources.http.allow_private or "
                                   b"sources.http.allow_networks)")
    assert len(session.refusals) == 3 and server.hits == 0


@pytest.mark.parametrize(
    "head",
    [
        "NONSENSE\r\n\r\n",
        "GET /relative HTTP/1.1\r\nHost: x\r\n\r\n",
        "CONNECT nohostport HTTP/1.1\r\n\r\n",
        "GET ftp://127.0.0.2/x HTTP/1.1\r\n\r\n",
    ],
)
async def test_malformed_requests_get_a_400(proxy: GuardProxy, head: str) -> None:
    with proxy.session() as session:
        assert (await ask(proxy, head, session)).startswith(b"HTTP/1.1 400 Bad Request")
