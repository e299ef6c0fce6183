"""The client's receive path, sans-I/O: other members' RTP in, their opus frames out.

docs/discord-voice.md §1.3 (op 5 maps an SSRC to a user, op 13 forgets it), §1.10 (transport
decrypt: the rtpsize header is the AAD, N4 the nonce), §2.1 (DAVE decrypt with the sender's
key; the silence frame passes in the clear). A datagram whose SSRC no op 5 has named yet cannot
be DAVE-decrypted (the key is per sender), so it waits, bounded, for that op 5: the server may
relay a member's first packets before its op 5 (§1.11 note on discord.py).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from audionode.errors import VoiceError
from audionode.voice.crypto import Opened, TransportCipher
from audionode.voice.dave import DaveState
from audionode.voice.dave_frame import is_dave_frame
from audionode.voice.events import AudioPacket, ReceiveEvent, ReceiveFailed
from audionode.voice.rtp import DatagramKind, classify

MAX_PENDING_PER_SSRC: Final = 50
"""Packets (1 s of audio) kept for an SSRC that no op 5 has named yet; older ones are dropped."""
MAX_PENDING_SSRCS: Final = 16
"""Unnamed SSRCs tracked at once; packets of further ones are dropped (a flood of made-up SSRCs
must not grow memory)."""
MAX_MEMBERS: Final = 1024
"""SSRC → user entries kept (a voice channel holds at most 99 members; op 13 forgets them): a
server announcing endless SSRCs must not grow memory either."""


@dataclass(slots=True)
class ReceiveStats:
    """Counters of the receive path (read by tests and ``/status``)."""

    packets: int = 0
    """RTP datagrams handled (opened or not)."""
    failed: int = 0
    """RTP datagrams that could not be opened (transport or DAVE refused them)."""
    ignored: int = 0
    """RTCP, keepalives, unknown datagrams, and RTP before a key exists."""
    members_refused: int = 0
    """op 5 mappings not kept because :data:`MAX_MEMBERS` were known."""
    pending_dropped: int = 0
    """Packets of unnamed SSRCs dropped for lack of room."""


class Receiver:
    """One voice session's receive state. Not thread-safe; driven by the session's owner.

    Feed :meth:`on_speaking` / :meth:`on_member_left` from the gateway, every non-discovery
    datagram to :meth:`on_datagram` with the session's current cipher and DAVE state.
    """

    def __init__(self) -> None:
        self.users: dict[int, int] = {}
        """SSRC → user id, from the server's op 5."""
        self.stats = ReceiveStats()
        self._pending: dict[int, deque[Opened]] = {}

    def reset(self) -> None:
        """A new voice session (fresh identify): SSRCs of the old one mean nothing now."""
        self.users.clear()
        self._pending.clear()

    def on_speaking(self, ssrc: int, user_id: int, dave: DaveState) -> list[ReceiveEvent]:
        """op 5 from the server: remember whose ``ssrc`` it is; open what waited for it."""
        if ssrc not in self.users and len(self.users) >= MAX_MEMBERS:
            self.stats.members_refused += 1
            return []
        self.users[ssrc] = user_id
        waiting = self._pending.pop(ssrc, None)
        if not waiting:
            return []
        return [self._open_dave(o, user_id, dave) for o in waiting]

    def on_member_left(self, user_id: int) -> None:
        """op 13: forget the user's SSRCs (a new session of theirs gets a new one)."""
        for ssrc in [s for s, u in self.users.items() if u == user_id]:
            del self.users[ssrc]

    def on_datagram(
        self, data: bytes, cipher: TransportCipher | None, dave: DaveState
    ) -> list[ReceiveEvent]:
        """One received datagram (not an IP-discovery reply): RTP is opened, the rest ignored."""
        if cipher is None or classify(data) is not DatagramKind.RTP:
            self.stats.ignored += 1
            return []
        self.stats.packets += 1
        try:
            opened = cipher.open(data)
        except VoiceError as exc:  # CryptoError or RtpError: the message names the problem
            self.stats.failed += 1
            ssrc = int.from_bytes(data[8:12], "big")
            return [ReceiveFailed(ssrc, self.users.get(ssrc), f"transport: {exc}")]
        ssrc = opened.header.ssrc
        user = self.users.get(ssrc)
        if user is None:
            self._hold(ssrc, opened)
            return []
        return [self._open_dave(opened, user, dave)]

    def _hold(self, ssrc: int, opened: Opened) -> None:
        queue = self._pending.get(ssrc)
        if queue is None:
            if len(self._pending) >= MAX_PENDING_SSRCS:
                self.stats.pending_dropped += 1
                return
            queue = self._pending[ssrc] = deque(maxlen=MAX_PENDING_PER_SSRC)
        if len(queue) == queue.maxlen:
            self.stats.pending_dropped += 1
        queue.append(opened)

    def _open_dave(self, opened: Opened, user_id: int, dave: DaveState) -> ReceiveEvent:
        h, frame = opened.header, opened.payload
        try:
            opus = dave.decrypt(user_id, frame)
        except VoiceError as exc:
            self.stats.failed += 1
            return ReceiveFailed(h.ssrc, user_id, f"DAVE: {exc}")
        return AudioPacket(user_id, h.ssrc, h.sequence, h.timestamp, opus, is_dave_frame(frame))
