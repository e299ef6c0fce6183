"""The fetch policy on the control process's side: which addresses, every resolved address,
every redirect hop, DNS rebinding, answers that reveal nothing, and the DNS pool's fairness."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audionode import netpolicy
from audionode.errors import AudionodeError, BadRequest, Forbidden, SourceError
from audionode.netpolicy import InputPolicy
from audionode.sources.netguard import NetGuard, parse_target
from tests.sources.conftest import MediaServer

PUBLIC = InputPolicy(allow_networks=("127.0.0.2/32",))
"""127.0.0.2 plays the internet in these tests; 127.0.0.1 stays refused."""


def refused(host: str) -> str:
    return (
        f"refusing to fetch from {host}: not a public address the node may reach "
        "(sources.http.allow_private or sources.http.allow_networks)"
    )


@pytest.fixture
def resolver() -> Iterator[dict[str, list[list[str]]]]:
    """Answers per name, consumed one per lookup (the last one repeats)."""
    answers: dict[str, list[list[str]]] = {}

    def resolve(host: str, port: int) -> list[str]:
        queue = answers.get(host)
        if not queue:
            raise OSError("Name or service not known")
        return queue.pop(0) if len(queue) > 1 else queue[0]

    netpolicy.set_resolver(resolve)
    yield answers
    netpolicy.set_resolver(None)


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
async def test_non_public_addresses_are_refused_alike(address: str, why: str) -> None:
    ip = ipaddress.ip_address(address)
    assert why in (netpolicy.address_problem(ip) or "")
    host = f"[{address}]" if ":" in address else address
    guard = NetGuard(InputPolicy())
    with pytest.raises(Forbidden) as err:
        await guard.check_url(f"http://{host}:8080/x.mp3")
    assert err.value.message == refused(address)  # what the user gave; never why or where
    await guard.close()


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
async def test_public_addresses_pass(address: str) -> None:
    assert netpolicy.address_problem(ipaddress.ip_address(address)) is None
    host = f"[{address}]" if ":" in address else address
    guard = NetGuard(InputPolicy())
    target = await guard.check_url(f"https://{host}/a.ogg")  # no connection is made
    assert target.port == 443
    await guard.close()


def test_allow_networks_opens_exactly_those_networks() -> None:
    policy = InputPolicy(allow_networks=("10.0.0.0/8", "fd00::/8"))
    assert policy.address_allowed(ipaddress.ip_address("10.9.8.7"))
    assert policy.address_allowed(ipaddress.ip_address("fd00::5"))
    for other in ("192.168.1.1", "127.0.0.1", "169.254.169.254", "11.0.0.1"):
        assert policy.address_allowed(ipaddress.ip_address(other)) == (other == "11.0.0.1")
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33' is not a network"):
        netpolicy.parse_networks(["10.0.0.0/33"])


async def test_a_name_is_refused_if_any_of_its_addresses_is_internal(
    resolver: dict[str, list[list[str]]],
) -> None:
    resolver["mixed.test"] = [["93.184.216.34", "10.0.0.1"]]
    resolver["internal.test"] = [["10.0.0.1"]]
    guard = NetGuard(InputPolicy())
    for name in ("mixed.test", "internal.test", "no-such-host.test"):
        with pytest.raises(Forbidden) as err:
            await guard.check_url(f"http://{name}/stream")
        # an unknown name and an internal one get the same answer: no DNS map through us
        assert err.value.message == refused(name)
    await guard.close()


async def test_with_private_targets_allowed_an_unknown_name_is_a_source_error() -> None:
    guard = NetGuard(InputPolicy(allow_private=True))
    with pytest.raises(SourceError, match=r"cannot resolve no-such-host\.invalid"):
        await guard.check_url("http://no-such-host.invalid/")
    target = await guard.check_url("http://127.0.0.1:9/x")
    assert (target.host, target.port) == ("127.0.0.1", 9)
    await guard.close()


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.mp3", "file:///etc/passwd", "http:///nohost", "http://[::1/x"]
)
async def test_malformed_or_foreign_urls_are_bad_requests(url: str) -> None:
    guard = NetGuard(InputPolicy(allow_private=True))
    with pytest.raises(BadRequest):
        await guard.check_url(url)
    await guard.close()


async def test_redirects_are_followed_hop_by_hop(server: MediaServer) -> None:
    guard = NetGuard(InputPolicy(allow_private=True))
    async with guard.session() as http:
        head = await guard.fetch_head(http, server.url("/to-media"))
    assert head.url == server.url("/media/a440.mp3")
    assert head.status == 200 and head.content_type == "audio/mpeg"
    await guard.close()


async def test_a_redirect_to_an_internal_address_is_refused_before_connecting(
    public: MediaServer, server: MediaServer
) -> None:
    guard = NetGuard(PUBLIC)
    async with guard.session() as http:
        with pytest.raises(Forbidden) as err:
            await guard.fetch_head(http, public.url(f"/redirect?to={server.url('/media/x')}"))
    assert err.value.message == refused("127.0.0.1")
    assert public.hits == 1 and server.hits == 0
    await guard.close()


async def test_the_guarded_resolver_refuses_at_connect_time(server: MediaServer) -> None:
    port = server.base.rsplit(":", 1)[1]
    guard = NetGuard(InputPolicy())
    async with guard.session() as http:
        with pytest.raises(Forbidden) as err:
            # straight through aiohttp, skipping check_url: the resolver still refuses
            await http.get(f"http://localhost:{port}/media/a440.mp3")
    assert err.value.message == refused("localhost") and server.hits == 0
    await guard.close()


async def test_dns_rebinding_cannot_switch_a_checked_connection(
    public: MediaServer, server: MediaServer, resolver: dict[str, list[list[str]]]
) -> None:
    """First answer allowed, every later one internal: the connection goes to the address
    that was checked, and a fresh lookup is refused rather than followed."""
    resolver["rebind.test"] = [["127.0.0.2"], ["127.0.0.1"]]
    port = public.base.rsplit(":", 1)[1]
    guard = NetGuard(PUBLIC)
    async with guard.session() as http:
        head = await guard.fetch_head(http, f"http://rebind.test:{port}/media/a440.mp3")
    assert head.status == 200 and public.hits == 1 and server.hits == 0
    async with guard.session() as http:
        with pytest.raises(Forbidden):
            await guard.fetch_head(http, f"http://rebind.test:{port}/media/a440.mp3")
    assert server.hits == 0
    await guard.close()


async def test_unreachable_public_hosts_get_one_answer_whatever_the_port(
    public: MediaServer,
) -> None:
    guard = NetGuard(PUBLIC)
    async with guard.session() as http:
        with pytest.raises(SourceError) as err:
            await guard.fetch_head(http, "http://127.0.0.2:9/a.mp3")
    assert err.value.message == "could not connect to 127.0.0.2"
    await guard.close()


async def test_a_slow_name_does_not_hold_up_other_lookups() -> None:
    """Lookups run on the guard's own threads, and one name holds at most all but one."""
    release = threading.Event()

    def resolve(host: str, port: int) -> list[str]:
        if host == "slow.test":
            release.wait(10)
        return ["93.184.216.34"]

    netpolicy.set_resolver(resolve)
    guard = NetGuard(InputPolicy(), dns_threads=4, timeout=10)
    try:
        slow = [asyncio.ensure_future(guard.resolve("slow.test", 80)) for _ in range(8)]
        await asyncio.sleep(0.05)
        started = time.monotonic()
        assert await guard.resolve("fast.test", 80) == [ipaddress.ip_address("93.184.216.34")]
        assert time.monotonic() - started < 0.1
        release.set()
        assert len(await asyncio.gather(*slow)) == 8
    finally:
        release.set()
        netpolicy.set_resolver(None)
        await guard.close()


@given(st.text(max_size=60))
def test_parse_target_never_fails_unexpectedly(text: str) -> None:
    try:
        target = parse_target(text)
    except AudionodeError:
        return
    assert target.scheme in ("http", "https") and target.host and 0 <= target.port <= 65535
