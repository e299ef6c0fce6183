"""NetGuard: the control process's side of the fetch policy (``audionode/netpolicy.py``).

Every request the control process makes for a source (a URL's response head, and through
``sources/guardproxy.py`` every request yt-dlp makes) is checked here: each redirect hop, each
address a name resolves to; the connection is made to the checked address (aiohttp connects
to what :class:`GuardedResolver` returns; the proxy to what :meth:`NetGuard.pick` returns), so
a name that re-resolves elsewhere (DNS rebinding) cannot switch it. The engine and the probe
processes apply the same policy to what libav reads (``media/httpfile.py``).

Name resolution blocks, so it runs on a small pool of threads of its own (``sources.dns_threads``)
where one host may hold only part of the threads: a slow resolver for one name cannot
delay another guild's load (``sources/fairslots.py``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from audionode import netpolicy
from audionode.errors import SourceError
from audionode.netpolicy import MAX_REDIRECTS, InputPolicy, IPAddress
from audionode.sources.fairslots import FairSlots


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int


def parse_target(url: str) -> Target:
    """Split an ``http(s)://`` URL into scheme, host and port; BadRequest if it is not one."""
    return Target(*netpolicy.split_url(url))


@dataclass(frozen=True, slots=True)
class Head:
    url: str
    """The URL after redirects."""
    status: int
    reason: str
    content_type: str
    headers: dict[str, str]


class NetGuard:
    """The policy, a DNS pool and the guarded HTTP client of the control process."""

    def __init__(self, policy: InputPolicy, *, timeout: float = 10.0, dns_threads: int = 4) -> None:
        self.policy = policy
        self.timeout = timeout
        self._dns = concurrent.futures.ThreadPoolExecutor(dns_threads, thread_name_prefix="dns")
        self._slots = FairSlots(dns_threads)

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address of ``host`` (SourceError when none within the timeout)."""
        if (ip := netpolicy.literal(host)) is not None:
            return [ip]
        # The lookup keeps its slot until the thread is done, even if the caller gave up:
        # the pool stays bounded by threads that are really free.
        lookup = asyncio.ensure_future(self._lookup(host, port))
        try:
            return await asyncio.wait_for(asyncio.shield(lookup), self.timeout)
        except TimeoutError:
            raise SourceError(f"cannot resolve {host}: no answer in time") from None

    async def _lookup(self, host: str, port: int) -> list[IPAddress]:
        async with self._slots.slot(host):
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._dns, netpolicy.resolve, host, port)

    async def pick(self, host: str, port: int) -> IPAddress:
        """The checked address to connect to (see ``netpolicy.pick``: a name that does not
        resolve is refused like an internal one, unless private targets are allowed)."""
        try:
            addresses = await self.resolve(host, port)
        except SourceError:
            if self.policy.allow_private:
                raise
            raise netpolicy.refusal(host) from None
        return netpolicy.checked(host, addresses, self.policy)

    async def check_url(self, url: str) -> Target:
        """Validate ``url`` against the policy; return its target. Raises BadRequest (not an
        http(s) URL), Forbidden (refused) or SourceError (it does not resolve)."""
        target = parse_target(url)
        await self.pick(target.host, target.port)
        return target

    def session(self) -> aiohttp.ClientSession:
        """A client session whose every connection is resolved and checked by this guard
        (use :meth:`fetch_head` for redirects: aiohttp would follow them unchecked)."""
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self))
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        return aiohttp.ClientSession(connector=connector, timeout=timeout)

    async def fetch_head(
        self,
        http: aiohttp.ClientSession,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Head:
        """GET ``url`` and read only the response head, following redirects hop by hop, each
        hop checked. Raises Forbidden (refused) or SourceError (not reachable)."""
        for _hop in range(MAX_REDIRECTS + 1):
            target = parse_target(url)
            if (ip := netpolicy.literal(target.host)) is not None:
                netpolicy.checked(target.host, [ip], self.policy)  # aiohttp resolves no literal
            try:
                async with http.get(url, allow_redirects=False, headers=headers, **kwargs) as r:
                    location = r.headers.get("Location")
                    if r.status in (301, 302, 303, 307, 308) and location:
                        url = urljoin(url, location)
                        continue
                    return Head(url, r.status, r.reason or "", r.content_type, dict(r.headers))
            except aiohttp.ClientConnectorError:
                # the same words for every failure: no port scan through the node
                raise SourceError(f"could not connect to {target.host}") from None
            except aiohttp.ClientError:
                raise SourceError(f"{target.host} did not answer with HTTP") from None
            except TimeoutError:
                raise SourceError(f"{target.host} did not answer in time") from None
        raise SourceError(f"too many redirects (more than {MAX_REDIRECTS})")

    async def close(self) -> None:
        self._dns.shutdown(wait=False, cancel_futures=True)


class GuardedResolver(AbstractResolver):
    """aiohttp resolver: a name's addresses through the guard (all checked, the first used)."""

    def __init__(self, guard: NetGuard) -> None:
        self._guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        ip = await self._guard.pick(host, port)
        return [
            {
                "hostname": host,
                "host": str(ip),
                "port": port,
                "family": socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None
