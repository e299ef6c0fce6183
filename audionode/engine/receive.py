"""The engine's ears: what the other members of each voice channel say, per user, as PCM.

The voice session (``voice/client.py``) already maps each SSRC to its user (op 5), opens the
transport AEAD and DAVE-decrypts with that user's key (docs/discord-voice.md §1.10, §2.1); its
:class:`~audionode.voice.events.AudioPacket` events reach :meth:`ReceivePath.feed` on the event
loop, which only queues them. Everything else runs on the receive thread, one 20 ms tick at a
time: a jitter buffer per SSRC (``voice/jitter.py``: reordering, bounded delay, loss), opus
decoding with loss concealment (``engine/opusdec.py``: PLC, or the next packet's FEC), and each
user's speaking state. The real-time sender never waits for any of it: the loop's share is a
``deque.append`` per packet, and libopus runs with the GIL released.

Decoded audio goes to ``on_audio(player, user_id, pcm)`` and speaking changes to
``on_speaking(player, user_id, speaking)``, both called on the receive thread (a consumer that
needs the loop hops there itself); ``on_tick()`` closes each tick, after its last ``on_audio``
(``engine/hearing.py`` mixes and records per tick). Only the players :attr:`ReceivePath.wants`
names are decoded (None: all of them, while ``on_audio`` is set): decoding is most of the
receive path's cost (docs/PERFORMANCE.md), and speaking state needs none of it. Tests call
:meth:`ReceivePath.step` without the thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from audionode.engine.opusdec import OpusDecodeError, OpusDecoder, Pcm
from audionode.voice.events import (
    AudioPacket,
    MemberLeft,
    ReceiveEvent,
    ReceiveFailed,
    SpeakingChanged,
)
from audionode.voice.jitter import Conceal, JitterBuffer, Play
from audionode.voice.packetizer import SILENCE_FRAME

log = logging.getLogger(__name__)

TICK: Final = 0.020
INBOX: Final = 16384
"""Receive events queued for the thread at most (a second of 100 players with three speakers
each); if the thread ever stalls that long the oldest are dropped rather than piling up."""
AudioSink = Callable[[int, int, Pcm], None]
SpeakingSink = Callable[[int, int, bool], None]


@dataclass(slots=True)
class UserStats:
    """One member's receive counters (a copy; see :meth:`ReceivePath.stats`)."""

    user_id: int
    ssrc: int
    received: int = 0
    played: int = 0
    concealed: int = 0
    late: int = 0
    dropped: int = 0
    """Packets dropped to bound the delay."""
    failed: int = 0
    """Packets that could not be opened (transport, DAVE) or decoded."""
    speaking: bool = False


@dataclass(eq=False)
class _Member:
    user_id: int
    ssrc: int
    jitter: JitterBuffer = field(default_factory=JitterBuffer)
    decoder: OpusDecoder | None = None
    """Made when the member's audio is first wanted, and afresh after a pause in wanting it
    (an opus decoder's state is only good for the frames right before)."""
    failed: int = 0
    speaking: bool = False


class ReceivePath:
    """Every listening connection of one engine. :meth:`start` runs the receive thread;
    :meth:`close` stops it. :meth:`feed` and :meth:`forget` may be called from any thread."""

    def __init__(
        self,
        on_audio: AudioSink | None = None,
        on_speaking: SpeakingSink | None = None,
        *,
        tick: float = TICK,
    ) -> None:
        self.on_audio = on_audio
        self.on_speaking = on_speaking
        self.on_tick: Callable[[], None] | None = None
        self.wants: Callable[[int], bool] | None = None
        """``wants(player)``: decode that player's members this tick (None: every player)."""
        self.tick = tick
        self._inbox: deque[tuple[int, ReceiveEvent | None]] = deque(maxlen=INBOX)
        self._players: dict[int, dict[int, _Member]] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.ticks = 0
        self.late_max = 0.0
        """Latest wake-up of the receive thread after its deadline (s)."""

    # --- any thread -------------------------------------------------------------------------

    def feed(self, player: int, event: ReceiveEvent) -> None:
        """A receive event of ``player``'s connection (``VoiceConnection(on_receive=...)``)."""
        self._inbox.append((player, event))

    def forget(self, player: int) -> None:
        """The player's connection is gone: drop its members at the next tick."""
        self._inbox.append((player, None))

    def players(self) -> list[int]:
        """The players whose connections have heard anyone."""
        return list(self._players)

    def stats(self, player: int) -> list[UserStats]:
        """Counters of the player's members (read without locking: counters may be a tick
        apart from each other)."""
        out = []
        for m in list(self._players.get(player, {}).values()):
            j = m.jitter.stats
            out.append(
                UserStats(
                    m.user_id,
                    m.ssrc,
                    j.received,
                    j.played,
                    j.concealed,
                    j.late,
                    j.dropped,
                    m.failed,
                    m.speaking,
                )
            )
        return out

    # --- the receive thread -----------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="voice-receive", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None

    def _run(self) -> None:
        deadline = time.monotonic()
        while not self._stop.is_set():
            deadline += self.tick
            delay = deadline - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            late = -delay if delay < 0 else 0.0
            if late > 5 * self.tick:  # fell far behind: skip the slots rather than burst
                deadline = time.monotonic()
            self.late_max = max(self.late_max, late)
            try:
                self.step()
            except Exception:  # a bug must cost one tick, not the thread
                log.exception("receive tick failed")

    def step(self) -> None:
        """One 20 ms tick: take the queued packets, then play one slot per member."""
        self.ticks += 1
        inbox = self._inbox
        while inbox:
            player, event = inbox.popleft()
            self._apply(player, event)
        wants, on_audio = self.wants, self.on_audio
        for player, members in self._players.items():
            decode = on_audio is not None and (wants is None or wants(player))
            for member in members.values():
                self._play(player, member, decode)
        if self.on_tick is not None:
            self.on_tick()

    def _apply(self, player: int, event: ReceiveEvent | None) -> None:
        if event is None:
            self._players.pop(player, None)
            return
        members = self._players.setdefault(player, {})
        if isinstance(event, AudioPacket):
            m = members.get(event.ssrc)
            if m is None or m.user_id != event.user_id:
                m = members[event.ssrc] = _Member(event.user_id, event.ssrc)
            m.jitter.push(event.sequence, event.opus)
        elif isinstance(event, ReceiveFailed):
            m = members.get(event.ssrc)
            if m is not None:
                m.failed += 1
        elif isinstance(event, MemberLeft):
            for ssrc in [s for s, m in members.items() if m.user_id == event.user_id]:
                self._set_speaking(player, members.pop(ssrc), False)
        elif isinstance(event, SpeakingChanged) and event.speaking == 0:
            m = members.get(event.ssrc)
            if m is not None:
                self._set_speaking(player, m, False)

    def _play(self, player: int, m: _Member, decode: bool) -> None:
        slot = m.jitter.pop()
        if slot is None:
            if not m.jitter.playing:
                self._set_speaking(player, m, False)
            return
        if isinstance(slot, Play):
            self._set_speaking(player, m, slot.opus != SILENCE_FRAME)
        if not decode:
            m.decoder = None
            return
        if m.decoder is None:
            m.decoder = OpusDecoder()
        try:
            pcm = m.decoder.decode(slot.opus) if isinstance(slot, Play) else self._conceal(m, slot)
        except OpusDecodeError:
            m.failed += 1
            pcm = m.decoder.conceal()
        if self.on_audio is not None:
            self.on_audio(player, m.user_id, pcm)

    @staticmethod
    def _conceal(m: _Member, slot: Conceal) -> Pcm:
        assert m.decoder is not None
        return m.decoder.conceal(slot.next_opus)

    def _set_speaking(self, player: int, m: _Member, speaking: bool) -> None:
        if m.speaking is speaking:
            return
        m.speaking = speaking
        if self.on_speaking is not None:
            self.on_speaking(player, m.user_id, speaking)
