"""The UDP forwarding unit: IP discovery, and RTP re-encrypted from each member to the others.

discord-voice.md "Serving the other side", UDP: a 74-byte type-1 packet gets the type-2 reply
with the observed address (§1.8); 8-byte keepalives and RTCP (PT 200-206) are dropped; RTP is
opened with the sender's key and mode (§1.10) and sealed again for every other member of the
channel with *their* key, mode and our own nonce counter towards them. The payload inside (a DAVE
frame, or plain opus before a group exists) is never looked at: DAVE stays end-to-end.

:class:`Forwarder` is the sans-I/O core (``datagram(data, addr)`` returns what to send);
:class:`ForwardingProtocol` is the asyncio driver. One socket serves every channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from audionode.voice.crypto import CryptoError, TransportCipher, cipher_for
from audionode.voice.rtp import (
    DatagramKind,
    RtpError,
    classify,
    pack_discovery_response,
    parse_discovery,
)

log = logging.getLogger("audionode.voiceserver.udp")

Addr = tuple[str, int]
_U32 = 1 << 32


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
    Discord requires speaking first, discord-voice.md §1.11)."""

    def as_dict(self) -> dict[str, int]:
        return {
            "packets_in": self.packets_in,
            "packets_out": self.packets_out,
            "decrypt_failures": self.decrypt_failures,
            "dropped": self.dropped,
            "rtp_before_speaking": self.rtp_before_speaking,
        }


@dataclass(eq=False)
class Member:
    """One connected voice client as the forwarding unit sees it."""

    ssrc: int
    user_id: int
    channel_id: int
    cipher: TransportCipher | None = None
    addr: Addr | None = None
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


class Forwarder:
    """The forwarding state of every channel; pure (no sockets)."""

    def __init__(self, *, debug_packets: bool = False) -> None:
        self._by_ssrc: dict[int, Member] = {}
        self._channels: dict[int, _Channel] = {}
        self._debug = debug_packets

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

    def set_key(self, ssrc: int, mode: str, key: Sequence[int] | bytes) -> None:
        """After op 4: the member's new cipher; our nonce towards it restarts at 0 (§1.10)."""
        member = self._by_ssrc[ssrc]
        member.cipher = cipher_for(mode, key)
        member.nonce = 0

    def has_ssrc(self, ssrc: int) -> bool:
        return ssrc in self._by_ssrc

    def drop_channel(self, channel_id: int) -> None:
        """Forget an empty channel's counters (they are reported until then)."""
        ch = self._channels.get(channel_id)
        if ch is not None and not ch.members:
            del self._channels[channel_id]

    def stats(self) -> dict[int, tuple[int, ChannelStats]]:
        """channel id -> (members with UDP, counters)."""
        return {cid: (len(ch.members), ch.stats) for cid, ch in self._channels.items()}

    # -- the data path --

    def datagram(self, data: bytes, addr: Addr) -> list[tuple[bytes, Addr]]:
        """Handle one received datagram; return the datagrams to send (never raises)."""
        kind = classify(data)
        if kind is DatagramKind.DISCOVERY_REQUEST:
            return self._discovery(data, addr)
        if kind is DatagramKind.RTP:
            return self._rtp(data, addr)
        # keepalives, RTCP (receiver reports are not relayed) and stray discovery replies
        return []

    def _discovery(self, data: bytes, addr: Addr) -> list[tuple[bytes, Addr]]:
        try:
            req = parse_discovery(data)
        except RtpError:
            return []
        member = self._by_ssrc.get(req.ssrc)
        if member is None:
            log.debug("IP discovery for unknown SSRC %d from %s", req.ssrc, addr)
            return []
        member.addr = addr
        return [(pack_discovery_response(req.ssrc, addr[0], addr[1]), addr)]

    def _rtp(self, data: bytes, addr: Addr) -> list[tuple[bytes, Addr]]:
        ssrc = int.from_bytes(data[8:12], "big")
        sender = self._by_ssrc.get(ssrc)
        if sender is None:
            return []
        ch = self._channels[sender.channel_id]
        ch.stats.packets_in += 1
        if sender.cipher is None or not sender.can_send:
            ch.stats.dropped += 1
            return []
        try:
            opened = sender.cipher.open(data)
        except (CryptoError, RtpError) as e:
            ch.stats.decrypt_failures += 1
            if self._debug:
                log.debug("channel %d: SSRC %d: %s", sender.channel_id, ssrc, e)
            return []
        # An authenticated packet proves the sender: follow it if its address changed (NAT).
        sender.addr = addr
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
