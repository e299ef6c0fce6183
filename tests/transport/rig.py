"""The node's voice stack on loopback for the transport tests: a VoiceConnection driven by the
real-time Sender (optionally through the fault proxy), listeners that join the channel, and what
a listener heard of the node measured as an audible gap.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from audionode.config import VoiceConfig
from audionode.transport.sender import Sender
from audionode.transport.voice_conn import Connected, VoiceConnection, VoiceEvent
from audionode.voice import rtp
from audionode.voice.packetizer import SILENCE_FRAME
from tests.transport.opus import OpusFrame
from tests.transport.voiceserver_harness import Harness, VoiceGrant
from tests.voiceserver.member import VoiceMember

if TYPE_CHECKING:
    from audionode.native._packet import Batch, Pump


class Source:
    """A frame source over a list; empty (None) once played out."""

    def __init__(self, frames: list[bytes], track: int) -> None:
        self.frames = [OpusFrame(f, track, 20 * i) for i, f in enumerate(frames)]
        self.i = 0

    def pop(self) -> OpusFrame | None:
        if self.i == len(self.frames):
            return None
        self.i += 1
        return self.frames[self.i - 1]

    @property
    def done(self) -> bool:
        return self.i == len(self.frames)


def numbered_frames(n: int) -> list[bytes]:
    """``n`` distinct opus-shaped frames whose bytes 1-2 are their index (the SFU and DAVE never
    look inside): a listener can tell exactly which frames of the track it heard."""
    return [b"\xfc" + i.to_bytes(2, "big") + os.urandom(57) for i in range(n)]


@dataclass
class Node:
    """The node side: a VoiceConnection driven by the real-time Sender, with its datagrams
    tapped (for the sender-side nonce check) and its events and track starts recorded."""

    vc: VoiceConnection
    sender: Sender[int]
    events: list[VoiceEvent] = field(default_factory=list)
    started: list[tuple[int, int, float]] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)

    def tap(self) -> None:
        udp = self.vc._udp
        assert udp is not None
        send = udp.send

        def recording(data: bytes) -> None:
            self.sent.append(data)
            send(data)

        udp.send = recording  # type: ignore[method-assign]

    def ssrcs(self) -> set[int]:
        """Every SSRC the node had (a fresh reconnect gets a new one)."""
        return {e.ssrc for e in self.events if isinstance(e, Connected)}

    def at(self, kind: type) -> list[float]:
        """Times (time.monotonic()) at which events of ``kind`` arrived."""
        return [t for t, e in self.timeline if isinstance(e, kind)]

    timeline: list[tuple[float, VoiceEvent]] = field(default_factory=list)

    async def close(self) -> None:
        await self.vc.close()
        self.sender.close()


async def start_node(
    h: Harness,
    grant: VoiceGrant,
    mode: str,
    *,
    endpoint: str | None = None,
    guild: int,
    out: Batch | None = None,
    pump: Pump | None = None,
) -> Node:
    """``out``: the sender's native per-tick batch (decision 0017); its datagrams bypass
    ``VoiceUdp.send``, so :attr:`Node.sent` then holds only what the Python path sent.
    ``pump``: the native tick over passthrough lanes (decision 0020; needs ``out``)."""
    started: list[tuple[int, int, float]] = []
    sender: Sender[int] = Sender(
        lambda k, t, p: started.append((t, p, time.monotonic())), out=out, pump=pump
    )
    node = Node(None, sender, started=started)  # type: ignore[arg-type]

    def on_event(event: VoiceEvent) -> None:
        node.events.append(event)
        node.timeline.append((time.monotonic(), event))

    node.vc = VoiceConnection(
        guild,
        grant.user_id,
        grant.session_id,
        grant.channel_id,
        grant.token,
        endpoint or grant.endpoint,
        VoiceConfig(),
        on_event,
        http=h.http,
        modes=(mode,),
    )
    await node.vc.connect()
    node.tap()
    sender.start()
    sender.attach(guild, node.vc)
    return node


async def until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def until_silent(listener: VoiceMember, since: float, within: float = 10.0) -> None:
    """Until ``listener`` saw an op 5 speaking off after ``since`` (a play ran out)."""
    await until(
        lambda: any(m["d"]["speaking"] == 0 and t > since for t, m in listener.ops_at(5)), within
    )


async def join_listener(
    h: Harness, user: int, channel: int, guild: int, *, heartbeat: bool = False, max_dave: int = 1
) -> VoiceMember:
    grant = await h.lvsp.grant(user, channel, guild)
    listener = VoiceMember(
        h.endpoint,
        guild,
        user,
        channel,
        grant.session_id,
        grant.token,
        heartbeat=heartbeat,
        max_dave=max_dave,
    )
    await listener.connect(h.http)
    return listener


@dataclass
class Hearing:
    """What one listener heard of a numbered track (see :func:`numbered_frames`)."""

    heard: list[tuple[float, int]]
    """(arrival time, frame index) of every audio frame opened, in arrival order."""
    undecryptable: int
    """DAVE frames the listener could not open (no key for that epoch...): not heard."""
    leaks: list[float]
    """Arrival times of audio frames that came without DAVE while DAVE was in force."""
    silence: int

    @property
    def gap_ms(self) -> float:
        """The longest stretch without audio between two heard frames (20 ms = no gap)."""
        times = [t for t, _ in self.heard]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0) * 1000

    @property
    def indexes(self) -> list[int]:
        return [i for _, i in self.heard]

    def skipped(self, total: int) -> list[int]:
        """Frames of the track that never reached the listener (content lost)."""
        got = set(self.indexes)
        return [i for i in range(total) if i not in got]

    def summary(self, total: int) -> str:
        return (
            f"audible gap {self.gap_ms:.0f} ms, {len(self.skipped(total))} of {total} frames "
            f"never heard, {self.undecryptable} undecryptable, {len(self.leaks)} leaked, "
            f"{self.silence} silence frames"
        )


def hearing(
    listener: VoiceMember,
    ssrcs: set[int],
    sender_user: int,
    *,
    after: float = 0.0,
    plain_allowed_after: float | None = None,
) -> Hearing:
    """What ``listener`` received from ``ssrcs`` after ``after``, as it opened each packet on
    arrival (a frame it could not open then was not heard); a plain audio frame is a leak unless
    it arrived after ``plain_allowed_after`` (a downgrade the listener executed)."""
    heard: list[tuple[float, int]] = []
    undecryptable = silence = 0
    leaks: list[float] = []
    assert listener.cipher is not None
    for p in listener.packets:
        if p.at <= after or rtp.classify(p.data) is not rtp.DatagramKind.RTP:
            continue
        if rtp.seq_ts_ssrc(p.data)[2] not in ssrcs:
            continue
        payload = listener.cipher.open(p.data).payload
        if payload == SILENCE_FRAME:
            silence += 1
            continue
        frame = p.opus
        if frame is None and p.error is None:  # arrived before op 5 named its sender
            frame = _late_decrypt(listener, sender_user, payload)
        if frame is None:
            undecryptable += 1
            continue
        if payload[-2:] != b"\xfa\xfa" and (
            plain_allowed_after is None or p.at <= plain_allowed_after
        ):
            leaks.append(p.at)
        heard.append((p.at, int.from_bytes(frame[1:3], "big")))
    return Hearing(heard, undecryptable, leaks, silence)


def _late_decrypt(listener: VoiceMember, user: int, payload: bytes) -> bytes | None:
    if payload[-2:] != b"\xfa\xfa":
        return payload
    try:
        return listener.dave_decrypt(user, payload)
    except Exception:  # davey: no key (any more) for that epoch
        return None
