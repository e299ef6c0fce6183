"""Outbound fetch policy (SSRF protection), the one place that decides which hosts the node
may fetch media or pages from.

Unless ``sources.http.allow_private`` is set, a URL is refused when its host is, or resolves
to, any address that is not globally routable: loopback, private networks (RFC 1918, fc00::/7),
link-local (169.254/16 — cloud metadata services live there), CGNAT, multicast, reserved or
unspecified. *Every* address the name resolves to is checked, so a name that resolves to one
public and one private address is refused.

:class:`GuardedResolver` applies the same rule inside aiohttp at connect time, which closes
the DNS-rebinding window for the node's own requests; redirects are followed one hop at a time
by :func:`fetch_head` so each hop is checked. The remaining window is libav's own connection
at play time (it resolves the name again); it follows the checked URL seconds later.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from audionode.errors import BadRequest, Forbidden, SourceError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ALLOW_HINT = "set sources.http.allow_private to allow private and loopback targets"
MAX_REDIRECTS = 5


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int


def parse_target(url: str) -> Target:
    """Split an ``http(s)://`` URL into scheme, host and port; BadRequest if it is not one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        raise BadRequest(f"invalid URL {url!r}: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BadRequest(f"unsupported URL scheme {scheme or '(none)'!r}: expected http or https")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise BadRequest(f"invalid URL {url!r}: no host")
    return Target(scheme, host, port or (443 if scheme == "https" else 80))


def address_problem(ip: IPAddress) -> str | None:
    """Why ``ip`` must not be fetched from, or None if it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for attr, why in (
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_unspecified", "an unspecified address"),
        ("is_multicast", "a multicast address"),
        ("is_reserved", "a reserved address"),
        ("is_private", "a private-network address"),
    ):
        if getattr(ip, attr):
            return why
    return None if ip.is_global else "not a globally routable address"


def _refuse(host: str, ip: IPAddress, why: str) -> Forbidden:
    shown = host if host == str(ip) else f"{host} ({ip})"
    return Forbidden(f"refusing to fetch from {shown}: {why}; {ALLOW_HINT}")


async def check_url(url: str, *, allow_private: bool) -> Target:
    """Validate ``url`` against the policy; return its target.

    Raises BadRequest (not an http(s) URL), Forbidden (a non-public address) or SourceError
    (the name does not resolve).
    """
    target = parse_target(url)
    if allow_private:
        return target
    for ip in await resolve(target.host, target.port):
        if why := address_problem(ip):
            raise _refuse(target.host, ip, why)
    return target


async def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise SourceError(f"cannot resolve {host}: {e}") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses names resolving to non-public addresses."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            ip = ipaddress.ip_address(result["host"])
            if why := address_problem(ip):
                raise _refuse(host, ip, why)
        return results

    async def close(self) -> None:
        await self._inner.close()


def session(*, allow_private: bool, timeout: float) -> aiohttp.ClientSession:
    """A client session that obeys the policy (use ``fetch_head`` for redirects)."""
    connector = aiohttp.TCPConnector(resolver=None if allow_private else GuardedResolver())
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)
    )


@dataclass(frozen=True, slots=True)
class Head:
    url: str
    """The URL after redirects."""
    status: int
    reason: str
    content_type: str
    headers: dict[str, str]


async def fetch_head(
    http: aiohttp.ClientSession,
    url: str,
    *,
    allow_private: bool,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> Head:
    """GET ``url`` and read only the response head, following redirects hop by hop (each hop
    is checked). Raises SourceError when the host cannot be reached."""
    for _hop in range(MAX_REDIRECTS + 1):
        await check_url(url, allow_private=allow_private)
        try:
            async with http.get(url, allow_redirects=False, headers=headers, **kwargs) as resp:
                location = resp.headers.get("Location")
                if resp.status in (301, 302, 303, 307, 308) and location:
                    url = urljoin(url, location)
                    continue
                return Head(
                    url=url,
                    status=resp.status,
                    reason=resp.reason or "",
                    content_type=resp.content_type,
                    headers=dict(resp.headers),
                )
        except aiohttp.ClientError as e:
            raise SourceError(f"cannot reach {parse_target(url).host}: {_reason(e)}") from None
        except TimeoutError:
            raise SourceError(f"{parse_target(url).host} did not answer in time") from None
    raise SourceError(f"too many redirects (more than {MAX_REDIRECTS})")


def _reason(e: aiohttp.ClientError) -> str:
    if isinstance(e, aiohttp.ClientConnectorError):
        errno = e.os_error.errno
        return os.strerror(errno) if errno else str(e.os_error)
    return str(e) or type(e).__name__
