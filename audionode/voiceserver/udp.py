"""The UDP forwarding unit: IP discovery, and RTP re-encrypted from each member to the others.

docs/discord-voice.md "Serving the other side", UDP: a 74-byte type-1 packet gets the type-2 reply
with the observed address (§1.8); 8-byte keepalives and RTCP (PT 200-206) are dropped; RTP is
opened with the sender's key and mode (§1.10) and sealed again for every other member of the
channel with *their* key, mode and our own nonce counter towards them. The payload inside (a DAVE
frame, or plain opus before a group exists) is never looked at: DAVE stays end-to-end.

The socket faces the internet, so every member is **bound** to one address (docs/SECURITY.md
"Voice server", docs/protocols/lvsp.md "Hardening"), once, and never re-bound:

- before op 1 Select Protocol, discovery for the member's SSRC is answered to whoever asks
  (only the client knows that SSRC yet: Ready gave it on its own websocket) and the sources are
  remembered;
- at op 1, if the address the client claims is one of those sources, it is bound;
- otherwise the first datagram after op 1 binds: a discovery request for the SSRC from exactly
  the claimed address, or an RTP packet that authenticates under the member's key (only the
  session holds it: op 4 went over its websocket).

Once bound, discovery and RTP naming the member's SSRC from any other address are dropped
unread (counted as ``strangers``) and nothing is ever sent anywhere but bound addresses. A
discovery reply is never larger than its request and replies are rate-limited per source IP.

:class:`Forwarder` is the sans-I/O core (``datagram(data, addr)`` returns what to send);
:class:`ForwardingProtocol` is the asyncio driver. One socket serves every channel.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, cast

from audionode.voice.crypto import CryptoError, Opened, TransportCipher, cipher_for
from audionode.voice.rtp import (
    DatagramKind,
    RtpError,
    classify,
    pack_discovery_response,
    parse_discovery,
)
from audionode.voiceserver.ratelimit import RateLimiter

log = logging.getLogger("audionode.voiceserver.udp")

Addr = tuple[str, int]
_U32 = 1 << 32
DEFAULT_DISCOVERY_RATE: Final = 50.0
"""IP discovery replies per second per source IP (config ``voiceserver.udp_discovery_rate``)."""
_MAX_DISCOVERED: Final = 4
"""Discovery sources remembered per member before op 1 (a client retries a few times at most)."""


@dataclass
class ChannelStats:
    """Per-channel counters served on the stats route."""

    packets_in: int = 0
    packets_out: int = 0
    decrypt_failures: int = 0
    dropped: int = 0
    """RTP that was not forwarded: no key yet, sender muted."""
    rtp_before_speaking: int = 0
    """Authenticated RTP from members that had not sent op 5 speaking yet (forwarded anyway;
    Discord requires speaking first, docs/discord-voice.md §1.11)."""
    strangers: int = 0
    """Discovery or RTP naming a member's SSRC from an address it is not bound to: dropped."""

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass
class UdpStats:
    """Counters of datagrams that belong to no channel."""

    unknown_ssrc: int = 0
    """Discovery or RTP naming an SSRC no session holds."""
    rate_limited: int = 0
    """Discovery requests left unanswered because their source IP exceeded its rate."""
    malformed: int = 0
    """Datagrams that are none of discovery, keepalive, RTCP or RTP."""

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass(eq=False)
class Member:
    """One connected voice client as the forwarding unit sees it."""

    ssrc: int
    user_id: int
    channel_id: int
    cipher: TransportCipher | None = None
    addr: Addr | None = None
    """The bound address: media is accepted from it and sent to it only. Set once (see the
    module docstring), never changed."""
    selected: bool = False
    """True once op 1 Select Protocol was accepted."""
    claim: Addr | None = None
    """The address op 1 named, while not bound yet (None: none, or not an IP literal)."""
    discovered: list[Addr] = field(default_factory=list)
    """Sources of discovery requests for this SSRC before op 1 (at most a few)."""
    nonce: int = 0
    """Our outgoing nonce counter towards this member; restarts at 0 with each new key."""
    can_send: bool = True
    """False while server-muted or suppressed: their RTP is dropped."""
    can_hear: bool = True
    """False while server-deafened: nothing is forwarded to them."""
    announced: bool = False
    """True once the member sent op 5 with a non-zero speaking flag."""


@dataclass
class _Channel:
    members: list[Member] = field(default_factory=list)
    stats: ChannelStats = field(default_factory=ChannelStats)


def _ip_literal(address: str, port: int) -> Addr | None:
    """``(canonical ip, port)`` or None when op 1 named no usable address."""
    if not 0 < port < 1 << 16:
        return None
    try:
        return (str(ipaddress.ip_address(address)), port)
    except ValueError:
        return None


class Forwarder:
    """The forwarding state of every channel; pure (no sockets)."""

    def __init__(
        self, *, discovery_rate: float = DEFAULT_DISCOVERY_RATE, debug_packets: bool = False
    ) -> None:
        self._by_ssrc: dict[int, Member] = {}
        self._channels: dict[int, _Channel] = {}
        self._limiter = RateLimiter(discovery_rate)
        self._debug = debug_packets
        self.udp_stats = UdpStats()

    # -- membership (driven by the voice gateway) --

    def add(self, member: Member) -> None:
        """Register a member after op 2 Ready assigned its SSRC."""
        if member.ssrc in self._by_ssrc:
            raise ValueError(f"SSRC {member.ssrc} is already in use")
        self._by_ssrc[member.ssrc] = member
        self._channels.setdefault(member.channel_id, _Channel()).members.append(member)

    def remove(self, ssrc: int) -> None:
        member = self._by_ssrc.pop(ssrc, None)
        if member is None:
            return
        ch = self._channels.get(member.channel_id)
        if ch is not None:
            ch.members.remove(member)

    def select(self, ssrc: int, address: str, port: int) -> None:
        """op 1 accepted: bind the claimed address if discovery came from it, else wait for the
        first proof (module docstring). A claim that is no IP literal only delays binding."""
        member = self._by_ssrc[ssrc]
        member.selected = True
        claim = _ip_literal(address, port)
        if claim is not None and claim in member.discovered:
            self._bind(member, claim)
        else:
            member.claim = claim
        member.discovered = []

    def set_key(self, ssrc: int, mode: str, key: Sequence[int] | bytes) -> None:
        """After op 4: the member's new cipher; our nonce towards it restarts at 0 (§1.10)."""
        member = self._by_ssrc[ssrc]
        member.cipher = cipher_for(mode, key)
        member.nonce = 0

    def has_ssrc(self, ssrc: int) -> bool:
        return ssrc in self._by_ssrc

    def address_of(self, ssrc: int) -> Addr | None:
        """The member's bound address (None: unknown SSRC or not bound yet)."""
        member = self._by_ssrc.get(ssrc)
        return None if member is None else member.addr

    def drop_channel(self, channel_id: int) -> None:
        """Forget an empty channel's counters (they are reported until then)."""
        ch = self._channels.get(channel_id)
        if ch is not None and not ch.members:
            del self._channels[channel_id]

    def stats(self) -> dict[int, tuple[int, ChannelStats]]:
        """channel id -> (members with UDP, counters)."""
        return {cid: (len(ch.members), ch.stats) for cid, ch in self._channels.items()}

    @staticmethod
    def _bind(member: Member, addr: Addr) -> None:
        member.addr, member.claim = addr, None
        log.debug("channel %d: SSRC %d bound to %s:%d", member.channel_id, member.ssrc, *addr)

    # -- the data path --

    def datagram(
        self, data: bytes, addr: Addr, now: float | None = None
    ) -> list[tuple[bytes, Addr]]:
        """Handle one received datagram; return the datagrams to send (never raises).

        ``now`` (monotonic seconds) drives the per-source rate limit; default: the clock."""
        kind = classify(data)
        if kind is DatagramKind.DISCOVERY_REQUEST:
            return self._discovery(data, addr, time.monotonic() if now is None else now)
        if kind is DatagramKind.RTP:
            return self._rtp(data, addr)
        if kind is DatagramKind.UNKNOWN:
            self.udp_stats.malformed += 1
        # keepalives, RTCP (receiver reports are not relayed) and stray discovery replies
        return []

    def _discovery(self, data: bytes, addr: Addr, now: float) -> list[tuple[bytes, Addr]]:
        try:
            req = parse_discovery(data)
        except RtpError:
            self.udp_stats.malformed += 1
            return []
        member = self._by_ssrc.get(req.ssrc)
        if member is None:
            self.udp_stats.unknown_ssrc += 1
            return []
        if not self._discovery_allowed(member, addr):
            self._channels[member.channel_id].stats.strangers += 1
            return []
        if not self._limiter.allow(addr[0], now):
            self.udp_stats.rate_limited += 1
            return []
        try:
            reply = pack_discovery_response(req.ssrc, addr[0], addr[1])
        except ValueError:  # an address text longer than the field: cannot be answered
            return []
        # never an amplifier: the reply is 74 bytes like the request; keep it that way
        return [(reply, addr)] if len(reply) <= len(data) else []

    def _discovery_allowed(self, member: Member, addr: Addr) -> bool:
        """Before op 1 anyone who knows the SSRC may ask; after it, only the bound or claimed
        address (which then becomes bound)."""
        if member.addr is not None:
            return addr == member.addr
        if not member.selected:
            if addr not in member.discovered:
                member.discovered = [*member.discovered, addr][-_MAX_DISCOVERED:]
            return True
        if addr == member.claim:
            self._bind(member, addr)
            return True
        return False

    def _rtp(self, data: bytes, addr: Addr) -> list[tuple[bytes, Addr]]:
        ssrc = int.from_bytes(data[8:12], "big")
        sender = self._by_ssrc.get(ssrc)
        if sender is None:
            self.udp_stats.unknown_ssrc += 1
            return []
        ch = self._channels[sender.channel_id]
        opened = self._admit(sender, ch.stats, data, addr)
        if opened is None:
            return []
        if not sender.announced:
            ch.stats.rtp_before_speaking += 1
        out: list[tuple[bytes, Addr]] = []
        for m in ch.members:
            if m is sender or m.cipher is None or m.addr is None or not m.can_hear:
                continue
            out.append((m.cipher.seal(opened.aad, opened.plaintext, m.nonce), m.addr))
            m.nonce = (m.nonce + 1) % _U32
        ch.stats.packets_out += len(out)
        return out

    def _admit(self, sender: Member, stats: ChannelStats, data: bytes, addr: Addr) -> Opened | None:
        """The opened packet if it may be forwarded; binds an unbound sender on first proof."""
        if sender.addr is not None and addr != sender.addr:
            stats.strangers += 1  # dropped unread: strangers cost no decryption
            return None
        stats.packets_in += 1
        unbound = sender.addr is None
        if sender.cipher is None or not (sender.can_send or unbound):
            stats.dropped += 1
            return None
        try:
            opened = sender.cipher.open(data)
        except (CryptoError, RtpError) as e:
            stats.decrypt_failures += 1
            if self._debug:
                log.debug("channel %d: SSRC %d: %s", sender.channel_id, sender.ssrc, e)
            return None
        if unbound:  # the first authenticated packet after op 1 proves the sender's address
            self._bind(sender, addr)
        if not sender.can_send:
            stats.dropped += 1
            return None
        return opened


class ForwardingProtocol(asyncio.DatagramProtocol):
    """asyncio driver: feeds datagrams to a :class:`Forwarder` and sends what it returns."""

    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # the selector loop's datagram transport does not subclass DatagramTransport
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self.transport is None:
            return
        peer = (str(addr[0]), int(addr[1]))
        for packet, dest in self.forwarder.datagram(data, peer):
            self.transport.sendto(packet, dest)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a vanished client: not fatal for the other members.
        log.debug("UDP error: %s", exc)


async def open_forwarder(
    forwarder: Forwarder, host: str, port: int
) -> tuple[asyncio.DatagramTransport, ForwardingProtocol]:
    """Bind the UDP socket (``port`` 0 = any free port) and start forwarding."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: ForwardingProtocol(forwarder), local_addr=(host, port)
    )
    return transport, protocol
