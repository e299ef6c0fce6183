"""Events a :class:`~audionode.transport.voice_conn.VoiceConnection` reports to its owner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Connected:
    """op 4 processed: media may flow. Emitted after :meth:`VoiceConnection.connect`,
    :meth:`~VoiceConnection.reconnect` and after an automatic fresh reconnect."""

    ssrc: int
    mode: str
    dave_protocol_version: int


@dataclass(frozen=True, slots=True)
class Resumed:
    """op 9 after a resume: same SSRC, key, counters and DAVE group."""


@dataclass(frozen=True, slots=True)
class Closed:
    """A voice websocket ended. ``code`` is the close code (1006 when the socket was lost
    without one); ``by_remote`` is false when this side closed it; ``will_reconnect`` tells
    whether the connection resumes/reconnects by itself. ``will_reconnect=False`` is final until
    the owner calls :meth:`VoiceConnection.reconnect` with new credentials."""

    code: int
    reason: str
    by_remote: bool
    will_reconnect: bool


VoiceEvent = Connected | Resumed | Closed
EventCallback = Callable[[VoiceEvent], None]
