"""What a :class:`~audionode.voice.client.VoiceClient` hands out: actions for its I/O driver and
events for its owner (docs/discord-voice.md §1.2-§1.8).

The client is sans-I/O: it never opens a socket or reads a clock. It asks its driver to act
(:data:`Action`: send on the websocket, close it, open/send/close the UDP socket, open a new
websocket later) and tells its owner what happened (:data:`VoiceEvent`: connected, resumed,
closed; :data:`ReceiveEvent`: audio heard from other members). ``VoiceClient.take()`` returns
both kinds, in the order they arose.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- actions: what the driver must do -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WsSend:
    """Send one frame on the current websocket: ``str`` = text frame, ``bytes`` = binary."""

    frame: str | bytes


@dataclass(frozen=True, slots=True)
class WsClose:
    """Close the current websocket with ``code``; then report it with ``socket_closed``.

    The client uses 4000 to drop a socket it means to resume (anything but 1000 keeps the
    session alive on the server), 1000 when it is done."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class UdpOpen:
    """Open the UDP socket to ``host:port`` (op 2 Ready), closing any previous one, then call
    ``udp_opened`` (or ``udp_failed``). Every datagram received goes to ``receive_datagram``."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class UdpSend:
    """Send one datagram (IP discovery requests; media goes through ``seal`` instead)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class UdpClose:
    """Close the UDP socket: the session it served is over."""


@dataclass(frozen=True, slots=True)
class Reopen:
    """Open a new websocket to the endpoint after ``delay`` seconds, then call
    ``socket_opened`` (the client sends op 7 Resume or op 0 Identify on it)."""

    delay: float
    resume: bool


Action = WsSend | WsClose | UdpOpen | UdpSend | UdpClose | Reopen


# --- events: what the owner learns ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    """op 4 processed: media may flow. After the first connect, after ``restart`` with new
    credentials and after an automatic fresh reconnect."""

    ssrc: int
    mode: str
    dave_protocol_version: int


@dataclass(frozen=True, slots=True)
class Resumed:
    """op 9 after a resume: same SSRC, key, RTP counters and DAVE group (§1.6)."""


@dataclass(frozen=True, slots=True)
class Closed:
    """A voice websocket ended. ``code`` is the close code (1006 when the socket was lost
    without one, or dropped by this side to resume); ``by_remote`` is false when this side
    closed it; ``will_reconnect`` tells whether the client resumes/reconnects by itself.
    ``will_reconnect=False`` is final until the owner restarts it with new credentials."""

    code: int
    reason: str
    by_remote: bool
    will_reconnect: bool


VoiceEvent = Connected | Resumed | Closed


@dataclass(frozen=True, slots=True)
class AudioPacket:
    """One received RTP packet of another member, opened (transport, then DAVE, §1.10, §2.1).

    ``opus`` is the opus frame (the 3-byte silence frame included); ``e2ee`` tells whether it
    arrived DAVE-encrypted. ``user_id`` comes from the server's op 5 for ``ssrc``."""

    user_id: int
    ssrc: int
    sequence: int
    timestamp: int
    opus: bytes
    e2ee: bool


@dataclass(frozen=True, slots=True)
class ReceiveFailed:
    """A received RTP packet that could not be opened; ``reason`` says which layer refused."""

    ssrc: int
    user_id: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class SpeakingChanged:
    """Another member's op 5 (also how its SSRC maps to its user id)."""

    user_id: int
    ssrc: int
    speaking: int


@dataclass(frozen=True, slots=True)
class MemberLeft:
    """op 13: ``user_id`` left the channel; its SSRC is forgotten."""

    user_id: int


ReceiveEvent = AudioPacket | ReceiveFailed | SpeakingChanged | MemberLeft
Output = Action | VoiceEvent | ReceiveEvent
