"""The fetch policy: which addresses may be fetched, checked for every resolved address."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audionode.errors import AudionodeError, BadRequest, Forbidden, SourceError
from audionode.sources import netguard
from tests.sources.conftest import MediaServer


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.5", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "globally routable"),  # carrier-grade NAT
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6
    ],
)
async def test_non_public_addresses_are_refused(address: str, why: str) -> None:
    ip = ipaddress.ip_address(address)
    assert why in (netguard.address_problem(ip) or "")
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(Forbidden, match="allow_private"):
        await netguard.check_url(f"http://{host}:8080/x.mp3", allow_private=False)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
async def test_public_addresses_pass(address: str) -> None:
    assert netguard.address_problem(ipaddress.ip_address(address)) is None
    host = f"[{address}]" if ":" in address else address
    target = await netguard.check_url(f"https://{host}/a.ogg", allow_private=False)
    assert target.port == 443


async def test_a_name_resolving_to_loopback_is_refused() -> None:
    with pytest.raises(Forbidden, match=r"localhost \((127\.0\.0\.1|::1)\)"):
        await netguard.check_url("http://localhost/stream", allow_private=False)


async def test_allow_private_lets_loopback_through() -> None:
    target = await netguard.check_url("http://127.0.0.1:9/x", allow_private=True)
    assert (target.host, target.port) == ("127.0.0.1", 9)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.mp3", "file:///etc/passwd", "http:///nohost", "http://[::1/x"]
)
async def test_malformed_or_foreign_urls_are_bad_requests(url: str) -> None:
    with pytest.raises(BadRequest):
        await netguard.check_url(url, allow_private=True)


async def test_unresolvable_names_are_source_errors() -> None:
    with pytest.raises(SourceError, match="cannot resolve"):
        await netguard.check_url("http://no-such-host.invalid/", allow_private=False)


async def test_redirects_are_followed_hop_by_hop(server: MediaServer) -> None:
    async with netguard.session(allow_private=True, timeout=5) as http:
        head = await netguard.fetch_head(http, server.url("/to-media"), allow_private=True)
    assert head.url == server.url("/media/a440.mp3")
    assert head.status == 200 and head.content_type == "audio/mpeg"


async def test_the_guarded_resolver_refuses_at_connect_time(server: MediaServer) -> None:
    port = server.base.rsplit(":", 1)[1]
    async with netguard.session(allow_private=False, timeout=5) as http:
        with pytest.raises(Forbidden, match="loopback"):
            # straight through aiohttp, skipping check_url: the resolver still refuses
            await http.get(f"http://localhost:{port}/media/a440.mp3")


@given(st.text(max_size=60))
def test_parse_target_never_fails_unexpectedly(text: str) -> None:
    try:
        target = netguard.parse_target(text)
    except AudionodeError:
        return
    assert target.scheme in ("http", "https") and target.host and 0 <= target.port <= 65535
