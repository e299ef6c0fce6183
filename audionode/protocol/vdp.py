"""VDP, the voice bridge's datagrams (seed 004), sans-I/O: bytes and addresses in, frames out.

docs/protocols/vdp.md has the seed's facts and, under "Decisions", what audionode chose where
the seed is open. In short: a datagram is a MessagePack map ``{"r": room id, "d": one opus
frame (20 ms, 48 kHz, stereo), "i": counter}``; an empty ``d`` is a keepalive. Datagrams that
are not such a map, name another room, come from another address than the channel's peer, do
not move ``i`` forward or are too large are dropped and counted by reason, never raised. The
node sends to its peer only after the peer's first valid datagram arrived from that very
address (it proves the peer asked for the audio) and until ``peer_timeout`` passes without
one; the address itself must be allowed by configuration (:func:`check_peer`).

No sockets here: :class:`Channel` is fed datagrams with their source address and the time, and
makes the datagrams to send; the UDP driver is ``transport/vdp_udp.py``.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field
from typing import Final

import msgspec

from audionode.errors import BadRequest, Forbidden

MAX_DATAGRAM: Final = 1500
"""Bytes of one datagram at most (an Ethernet MTU): larger ones are dropped as oversized."""
MAX_FRAME: Final = 1275
"""Bytes of ``d`` at most: the largest opus frame (RFC 6716 §3.4, R2)."""
MAX_ROOM_ID: Final = 255
"""Characters of a room id at most (a Matrix room id is bounded by 255 bytes)."""
MAX_I: Final = 2**64 - 1
"""``i`` is an unsigned 64-bit counter; it never wraps (at 50 per second it lasts longer than
the sun)."""
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = tuple[IPAddress, int]


class Packet(msgspec.Struct):
    """One VDP datagram. Unknown keys are ignored (a later version may add some)."""

    r: str
    d: bytes
    i: int


_decoder: Final = msgspec.msgpack.Decoder(Packet)
_encoder: Final = msgspec.msgpack.Encoder()


def encode(room_id: str, i: int, frame: bytes) -> bytes:
    """The datagram carrying ``frame`` as number ``i`` of ``room_id``."""
    return _encoder.encode(Packet(r=room_id, d=frame, i=i))


class Drop(enum.Enum):
    """Why a datagram was not taken (the ``/status`` counter names)."""

    OVERSIZED = "oversized"
    WRONG_PEER = "wrong_peer"
    NOT_MSGPACK = "not_msgpack"
    WRONG_ROOM = "wrong_room"
    STALE = "stale"
    """``i`` repeats or goes back."""


@dataclass(slots=True)
class ChannelStats:
    """Counters of one channel (summed per engine for ``/status``)."""

    received: int = 0
    accepted: int = 0
    """Datagrams with audio taken for the layer."""
    keepalives: int = 0
    """Valid datagrams with an empty ``d``."""
    lost: int = 0
    """Numbers skipped by ``i`` between accepted datagrams (loss, or the peer's silence)."""
    sent: int = 0
    undecodable: int = 0
    """Valid datagrams whose ``d`` libopus refused (counted by the engine that decodes)."""
    dropped: dict[str, int] = field(default_factory=lambda: {d.value: 0 for d in Drop})

    def add(self, other: ChannelStats) -> None:
        for name in ("received", "accepted", "keepalives", "lost", "sent", "undecodable"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, n in other.dropped.items():
            self.dropped[reason] += n

    def flat(self) -> dict[str, int]:
        """``{"received": .., "dropped_oversized": .., ...}`` (the ``/status`` shape)."""
        out = {
            name: getattr(self, name)
            for name in ("received", "accepted", "keepalives", "lost", "sent", "undecodable")
        }
        out.update({f"dropped_{reason}": n for reason, n in self.dropped.items()})
        return out


def parse_address(text: str) -> Address:
    """``"host:port"`` with an IP literal (``[v6]:port`` for IPv6) and a port 1..65535.

    Names are refused: resolving one would let DNS pick the target (and change it later).
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) <= 65535:
        raise BadRequest(f"field `address`: expected `host:port` with a port 1-65535, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise BadRequest(
            f"field `address`: expected an IP address (names are not resolved), got {host!r}"
        ) from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, int(port)
    return ip, int(port)


def format_address(address: Address) -> str:
    ip, port = address
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def parse_networks(cidrs: list[str]) -> list[Network]:
    """The configured ``vdp.allowed_peers``; ValueError names a bad entry."""
    return [ipaddress.ip_network(c, strict=False) for c in cidrs]


def check_peer(address: Address, allowed: list[Network]) -> None:
    """Refuse a peer the node must never send to (docs/SECURITY.md, "Hearing"): any address
    outside ``allowed``, and always the unspecified, multicast and broadcast ones."""
    ip, _ = address
    if ip.is_unspecified or ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
        raise Forbidden(f"peer {ip} is not a unicast address", code="PEER_NOT_ALLOWED")
    if not any(ip.version == net.version and ip in net for net in allowed):
        raise Forbidden(
            f"peer {ip} is outside vdp.allowed_peers; the node sends audio only to networks "
            "its configuration names",
            code="PEER_NOT_ALLOWED",
        )


def normalise(ip: str, port: int) -> Address:
    """A socket's source address as :func:`parse_address` gives it."""
    addr = ipaddress.ip_address(ip.partition("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped, port
    return addr, port


class Channel:
    """One room's VDP state. Not thread-safe: one owner feeds and asks it."""

    def __init__(self, room_id: str, now: float, peer_timeout: float = 30.0) -> None:
        self.room_id = room_id
        self.peer: Address | None = None
        self.peer_timeout = peer_timeout
        self.stats = ChannelStats()
        self.created = now
        self._since = now
        """When the peer was set (its first datagram is due within the timeout)."""
        self._heard: float | None = None
        """When the peer's last valid datagram arrived (None: not since it was set)."""
        self._last_i: int | None = None
        self.gap = 0
        """Numbers ``i`` skipped just before the last datagram taken (lost frames to conceal)."""

    def set_peer(self, address: Address, now: float) -> None:
        """The voice bridge's channel (checked by the caller with :func:`check_peer`). A new
        peer must prove itself again; its ``i`` starts afresh."""
        if address != self.peer:
            self.peer, self._heard, self._last_i, self._since = address, None, None, now

    @property
    def sending(self) -> bool:
        """True when datagrams may go to the peer: it is set and has spoken from there."""
        return self.peer is not None and self._heard is not None

    def expired(self, now: float) -> bool:
        """The peer stayed silent for ``peer_timeout`` (the channel is broken: renegotiate)."""
        if self.peer is None:
            return False
        return now - (self._heard if self._heard is not None else self._since) > self.peer_timeout

    def receive(self, data: bytes, source: Address, now: float) -> bytes | None:
        """One datagram from ``source``: its opus frame when it is taken, else None (dropped
        and counted, or a keepalive)."""
        st = self.stats
        st.received += 1
        drop = self._check(data, source)
        if isinstance(drop, Drop):
            st.dropped[drop.value] += 1
            return None
        self.gap = 0 if self._last_i is None else drop.i - self._last_i - 1
        st.lost += self.gap
        self._last_i = drop.i
        self._heard = now
        if not drop.d:
            st.keepalives += 1
            return None
        st.accepted += 1
        return drop.d

    def _check(self, data: bytes, source: Address) -> Packet | Drop:
        if len(data) > MAX_DATAGRAM:
            return Drop.OVERSIZED
        if source != self.peer:  # before decoding: a flood from elsewhere costs no parsing
            return Drop.WRONG_PEER
        try:
            packet = _decoder.decode(data)
        except msgspec.DecodeError:
            return Drop.NOT_MSGPACK
        if packet.r != self.room_id:
            return Drop.WRONG_ROOM
        if not 0 <= packet.i <= MAX_I or (self._last_i is not None and packet.i <= self._last_i):
            return Drop.STALE
        if len(packet.d) > MAX_FRAME:
            return Drop.OVERSIZED
        return packet

    def send(self, frame: bytes, slot: int) -> bytes | None:
        """The datagram carrying ``frame`` for 20 ms slot number ``slot`` (counted from the
        channel's creation, so it only grows), or None while :attr:`sending` is false."""
        if not self.sending:
            return None
        self.stats.sent += 1
        return encode(self.room_id, slot, frame)


def check_room_id(room_id: str) -> str:
    """A room id as the signalling takes it: 1..255 printable characters."""
    if not 0 < len(room_id) <= MAX_ROOM_ID or not room_id.isprintable():
        raise BadRequest(
            f"field `room_id`: expected 1-{MAX_ROOM_ID} printable characters, got {room_id[:64]!r}"
        )
    return room_id
