"""The input policy: which network addresses the node may fetch media from, and which decoded
audio it accepts. Pure decisions plus one resolver hook, shared by both sides of the node:

- the control process (``sources/netguard.py``: page and head requests, yt-dlp's proxy),
- the engine and the probe processes (``media/httpfile.py``: every byte libav reads).

A source's Playable carries the policy (:class:`InputPolicy`, stamped by the source manager
from ``sources.http`` and ``sources.media``), so the engine obeys the same rule as the control
plane without reading the control plane's config.

The address rule: unless ``allow_private`` is set, an address is refused when it is not a
globally routable unicast address (loopback, RFC 1918 and fc00::/7 private networks, link-local
169.254/16 where cloud metadata services live, CGNAT, multicast, reserved, unspecified), except
inside a network listed in ``allow_networks`` (an internal media server; loopback in tests).
Every address a name resolves to must pass, and the connection is then made to a checked
address (never to a second resolution of the name: DNS rebinding cannot switch it).

A refusal never says what a name resolved to, nor anything about the port, and happens before
any connection: a closed port, an open one, an existing internal host and a non-existing name
all get the same answer in the same time class (docs/SECURITY.md).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import msgspec

from audionode.errors import BadRequest, Forbidden, SourceError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]
"""``(host, port) -> addresses``: blocking name resolution (``socket.getaddrinfo`` by default)."""

MAX_REDIRECTS = 5
REFUSAL_HINT = "sources.http.allow_private or sources.http.allow_networks"


class InputPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """What a Playable may be fetched from and what its decoded audio may look like."""

    allow_private: bool = False
    allow_networks: tuple[str, ...] = ()
    """CIDR networks fetched from even though they are not public."""
    min_sample_rate: int = 8000
    max_sample_rate: int = 384000
    max_channels: int = 8
    max_playlist_bytes: int = 1 << 20
    """An HLS playlist larger than this is refused (libav keeps every entry in memory)."""

    def address_allowed(self, ip: IPAddress) -> bool:
        """Whether the node may connect to ``ip``."""
        if self.allow_private or address_problem(ip) is None:
            return True
        return any(ip in net for net in _networks(self.allow_networks))

    def audio_problem(self, sample_rate: int, channels: int) -> str | None:
        """Why decoded audio of this shape is refused, or None. 0 means "not known yet"."""
        if sample_rate and not self.min_sample_rate <= sample_rate <= self.max_sample_rate:
            return (
                f"the media's sample rate ({sample_rate} Hz) is outside "
                f"{self.min_sample_rate}-{self.max_sample_rate} Hz (sources.media)"
            )
        if channels > self.max_channels:
            return (
                f"the media has {channels} channels, more than {self.max_channels} "
                f"(sources.media.max_channels)"
            )
        return None


@functools.lru_cache(maxsize=32)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def parse_networks(cidrs: Sequence[str]) -> tuple[str, ...]:
    """Validate CIDR strings (``ValueError`` naming the bad one); returns them as a tuple."""
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ValueError(f"{cidr!r} is not a network (e.g. 10.0.0.0/8)") from None
    return tuple(cidrs)


def address_problem(ip: IPAddress) -> str | None:
    """Why ``ip`` is not public (for logs and tests), or None if it is public unicast."""
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


def refusal(host: str) -> Forbidden:
    """The one answer for every refused target: it names only what the user gave."""
    return Forbidden(
        f"refusing to fetch from {host}: not a public address the node may reach ({REFUSAL_HINT})"
    )


def split_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an ``http(s)://`` URL; BadRequest if it is not one."""
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
    return scheme, host, port or (443 if scheme == "https" else 80)


def literal(host: str) -> IPAddress | None:
    """``host`` as an address when it is one (``[::1]`` brackets already stripped)."""
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None


def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


_resolver: Resolver = _getaddrinfo


def set_resolver(resolver: Resolver | None) -> None:
    """Replace name resolution for this process (tests: DNS rebinding); None restores it."""
    global _resolver
    _resolver = resolver or _getaddrinfo


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (blocking). Raises SourceError when it does not."""
    if (ip := literal(host)) is not None:
        return [ip]
    try:
        found = [literal(a) for a in _resolver(host, port)]
    except (OSError, UnicodeError) as e:
        raise SourceError(f"cannot resolve {host}: {e}") from None
    addresses = [a for a in found if a is not None]
    if not addresses:
        raise SourceError(f"cannot resolve {host}: no address")
    return addresses


def checked(host: str, addresses: Sequence[IPAddress], policy: InputPolicy) -> IPAddress:
    """The address to connect to: the first of ``addresses`` once every one passed."""
    if not all(policy.address_allowed(ip) for ip in addresses):
        raise refusal(host)
    return addresses[0]


def pick(host: str, port: int, policy: InputPolicy) -> IPAddress:
    """Resolve ``host`` and check every address (blocking); the address to connect to.

    Without ``allow_private`` a name that does not resolve gets the same refusal as one that
    resolves to an internal address, so the node cannot be used to map internal DNS.
    """
    try:
        addresses = resolve(host, port)
    except SourceError:
        if policy.allow_private:
            raise
        raise refusal(host) from None
    return checked(host, addresses, policy)
