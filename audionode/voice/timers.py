"""The voice session's two timers, sans-I/O: heartbeats and IP-discovery retries.

Both take ``now`` (seconds on the driver's monotonic clock) and say what is due; the
:class:`~audionode.voice.client.VoiceClient` turns that into frames, datagrams or a dropped
socket. Facts: docs/discord-voice.md §1.5 (op 3 every Hello interval, ``seq_ack`` in each) and
§1.8 (IP discovery over UDP, which may lose either datagram).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from audionode.voice.rtp import (
    DISCOVERY_RESPONSE,
    Discovery,
    RtpError,
    pack_discovery_request,
    parse_discovery,
)

MISSED_ACKS: Final = 2
"""Heartbeats without an op 6 before the socket counts as dead (it is dropped and resumed)."""
DISCOVERY_TIMEOUT: Final = 1.0
"""Seconds to wait for each IP-discovery reply before sending the request again (§1.8)."""
DISCOVERY_ATTEMPTS: Final = 3


class Beat(enum.Enum):
    SEND = "send"
    """Send op 3 now."""
    DEAD = "dead"
    """:data:`MISSED_ACKS` beats went unanswered: the socket is dead."""


class Heartbeats:
    """op 3 timing for one websocket: started by op 8 Hello, answered by op 6."""

    def __init__(self) -> None:
        self.interval: float | None = None
        self.due: float | None = None
        self.unacked = 0
        self.rtt_ms: float | None = None
        """The last round trip, from an op 6's echo of our ``t`` (ms of the same clock)."""

    def start(self, interval_ms: float, now: float) -> None:
        """op 8: the first beat is due one interval from now (later Hellos change nothing)."""
        if self.due is None:
            self.interval = interval_ms / 1000
            self.due = now + self.interval

    def stop(self) -> None:
        """The socket is gone; a new one starts over with its own Hello."""
        self.interval = self.due = None
        self.unacked = 0

    def acked(self, t: int, now: float) -> None:
        self.unacked = 0
        self.rtt_ms = now * 1000 - t

    def poll(self, now: float) -> Beat | None:
        """What is due at ``now``; after :attr:`Beat.SEND` the beat counts as unanswered."""
        due, interval = self.due, self.interval
        if due is None or interval is None or now < due:
            return None
        if self.unacked >= MISSED_ACKS:
            self.due = None
            return Beat.DEAD
        self.unacked += 1
        self.due = max(due + interval, now)
        return Beat.SEND


class DiscoveryFailed(Exception):
    """No IP-discovery reply after :data:`DISCOVERY_ATTEMPTS` tries."""


@dataclass(slots=True)
class IpDiscovery:
    """IP discovery for the SSRC of op 2 Ready (``mode`` is what op 1 will select)."""

    ssrc: int
    mode: str
    deadline: float = 0.0
    attempts: int = 0
    """Requests sent so far; 0 while the UDP socket is still being opened."""

    def request(self, now: float) -> bytes:
        """The next 74-byte request (the socket is open); the reply is due within a second."""
        self.attempts += 1
        self.deadline = now + DISCOVERY_TIMEOUT
        return pack_discovery_request(self.ssrc)

    def poll(self, now: float) -> bytes | None:
        """A retry due at ``now`` (or None); :class:`DiscoveryFailed` after the last one."""
        if not self.attempts or now < self.deadline:
            return None
        if self.attempts >= DISCOVERY_ATTEMPTS:
            raise DiscoveryFailed(
                f"IP discovery: no reply for SSRC {self.ssrc} after {self.attempts} tries "
                f"of {DISCOVERY_TIMEOUT:g} s"
            )
        return self.request(now)

    def reply(self, data: bytes) -> Discovery | None:
        """The parsed type-2 reply, or None for anything else (§1.8); raises :class:`RtpError`
        for a malformed one."""
        if not self.attempts:
            return None
        reply = parse_discovery(data)
        return reply if reply.kind == DISCOVERY_RESPONSE else None


__all__ = [
    "DISCOVERY_ATTEMPTS",
    "DISCOVERY_TIMEOUT",
    "MISSED_ACKS",
    "Beat",
    "DiscoveryFailed",
    "Heartbeats",
    "IpDiscovery",
    "RtpError",
]
