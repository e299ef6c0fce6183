"""The engine's side of the seed-004 voice bridge (issue 15 item 5, docs/protocols/vdp.md).

One :class:`Link` per open channel: a UDP socket (``transport/vdp_udp.py``), the sans-I/O
channel state (``protocol/vdp.py``), a live layer over the voice client's music (the peer's
voice) and an opus encoder for what the channel hears.

Threads: channels are opened, given their peer and closed on the event loop (engine commands);
everything per datagram runs on the receive thread's 20 ms tick (:meth:`VdpBridge.tick`):
reading the socket in bounded batches, checking and decoding the peer's frames (loss concealed
with libopus PLC/FEC) into the layer, mixing the members heard this tick and sending them.
The loop hands changes over by replacing :attr:`VdpBridge._links` (a tuple the thread reads
once per tick) and by fields the thread picks up (``Link.new_peer``); the thread reports back
with ``call_soon_threadsafe``. Nothing here runs on the real-time sender's path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from audionode.config import VdpConfig
from audionode.engine import messages as msg
from audionode.engine.opusdec import FRAME, OpusDecodeError, OpusDecoder, Pcm
from audionode.media.codec import OpusEncoder
from audionode.media.layers import FeedLayer
from audionode.protocol import vdp
from audionode.transport.vdp_udp import VdpSocket

log = logging.getLogger(__name__)

MAX_CONCEALED: Final = 3
"""Lost peer frames (a gap in ``i``) rebuilt by PLC/FEC at most; a longer gap is silence."""
ENCODER_COMPLEXITY: Final = 5
StartFeed = Callable[[int, int], FeedLayer]
"""``(player, layer id) -> layer``: a live layer over the player's music (``Engine``)."""
StopFeed = Callable[[int, int], None]


@dataclass(eq=False)
class Link:
    player: int
    room_id: str
    address: str
    sock: VdpSocket
    channel: vdp.Channel
    layer: int
    feed: FeedLayer
    encoder: OpusEncoder
    born: int
    """The bridge's tick count when the channel was made (``i`` counts from there)."""
    decoder: OpusDecoder = field(default_factory=OpusDecoder)
    new_peer: vdp.Address | None = None
    """Set on the loop, applied by the receive thread at its next tick."""
    expired: bool = False


class VdpBridge:
    """Every VDP channel of one engine. Loop side: :meth:`open`, :meth:`set_peer`,
    :meth:`close`, :meth:`forget`; receive thread: :meth:`tick`."""

    def __init__(
        self,
        cfg: VdpConfig,
        emit: Callable[[msg.Event], None],
        start_feed: StartFeed,
        stop_feed: StopFeed,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self._emit = emit
        self._start_feed = start_feed
        self._stop_feed = stop_feed
        self.clock = clock
        self._by_key: dict[tuple[int, str], Link] = {}
        self._links: tuple[Link, ...] = ()
        self.players: frozenset[int] = frozenset()
        """Players with a channel open (read by the receive thread)."""
        self._closing: list[Link] = []
        self._layer_ids = 0
        self.ticks = 0
        self._gone = vdp.ChannelStats()
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- the event loop -----------------------------------------------------------------------

    def open(self, player: int, room_id: str) -> None:
        """Bind the channel's socket and start its layer; reports ``VdpOpened`` (the same
        address again for a room already open) or ``VdpClosed`` with reason ``error``."""
        self._loop = asyncio.get_running_loop()
        link = self._by_key.get((player, room_id))
        if link is None:
            if len(self._by_key) >= self.cfg.max_channels:
                raise RuntimeError(f"this engine holds vdp.max_channels ({self.cfg.max_channels})")
            link = self._make(player, room_id)
        self._emit(msg.VdpOpened(player=player, room_id=room_id, address=link.address))

    def _make(self, player: int, room_id: str) -> Link:
        sock = VdpSocket(self.cfg.host)
        self._layer_ids -= 1
        host = self.cfg.advertise_host or self.cfg.host
        link = Link(
            player=player,
            room_id=room_id,
            address=f"[{host}]:{sock.port}" if ":" in host else f"{host}:{sock.port}",
            sock=sock,
            channel=vdp.Channel(room_id, self.clock(), self.cfg.peer_timeout),
            layer=self._layer_ids,
            feed=self._start_feed(player, self._layer_ids),
            encoder=OpusEncoder(self.cfg.bitrate, ENCODER_COMPLEXITY),
            born=self.ticks,
        )
        self._by_key[(player, room_id)] = link
        self._publish()
        return link

    def set_peer(self, player: int, room_id: str, host: str, port: int) -> None:
        link = self._by_key.get((player, room_id))
        if link is None:
            raise KeyError(f"no VDP channel for room {room_id!r}")
        link.new_peer = vdp.normalise(host, port)

    def close(self, player: int, room_id: str, reason: str, message: str | None = None) -> None:
        """Close one channel (unknown ones are ignored) and report ``VdpClosed``."""
        link = self._by_key.pop((player, room_id), None)
        if link is None:
            return
        self._publish()
        self._closing.append(link)  # the receive thread closes the socket it may be reading
        self._stop_feed(player, link.layer)
        self._emit(msg.VdpClosed(player=player, room_id=room_id, reason=reason, message=message))

    def forget(self, player: int, reason: str = "disconnected") -> None:
        """The voice client's connection is gone: close its channels."""
        for p, room in [k for k in self._by_key if k[0] == player]:
            self.close(p, room, reason)

    def release(self) -> None:
        """Close the sockets of closed channels (at shutdown, once the receive thread that
        would close them at its next tick has stopped)."""
        while self._closing:
            link = self._closing.pop()
            link.sock.close()
            self._gone.add(link.channel.stats)

    def _publish(self) -> None:
        self._links = tuple(self._by_key.values())
        self.players = frozenset(link.player for link in self._links)

    def stats(self) -> dict[str, int]:
        """Counters summed over open and closed channels (``/status``)."""
        total = vdp.ChannelStats()
        for st in [self._gone, *(link.channel.stats for link in self._links)]:
            total.add(st)
        return {"channels": len(self._by_key), **total.flat()}

    # --- the receive thread -------------------------------------------------------------------

    def tick(self, heard: dict[int, list[Pcm]]) -> None:
        """One 20 ms tick: read every channel, send each one what its voice client heard."""
        self.ticks += 1
        now = self.clock()
        for link in self._links:
            try:
                self._tick_link(link, heard.get(link.player), now)
            except Exception:  # one channel's fault must not cost the others their tick
                log.exception("VDP channel %s failed", link.room_id)
        self.release()

    def _tick_link(self, link: Link, heard: list[Pcm] | None, now: float) -> None:
        ch = link.channel
        if link.new_peer is not None:
            ch.set_peer(link.new_peer, now)
            link.new_peer = None
        for data, ip, port in link.sock.read():
            frame = ch.receive(data, vdp.normalise(ip, port), now)
            if frame is not None:
                self._play(link, frame)
        if heard:
            mixed = np.zeros((FRAME, 2), dtype=np.float32)
            for pcm in heard:
                n = min(len(pcm), FRAME)
                mixed[:n] += pcm[:n]
            datagram = ch.send(link.encoder.encode(mixed), self.ticks - link.born)
            if datagram is not None and ch.peer is not None:
                link.sock.send(datagram, str(ch.peer[0]), ch.peer[1])
        if not link.expired and ch.expired(now):
            link.expired = True
            self._to_loop(self.close, link.player, link.room_id, "peer_timeout")

    def _play(self, link: Link, frame: bytes) -> None:
        """The peer's frame into the layer, after concealing what ``i`` says was lost."""
        ch = link.channel
        try:
            for k in range(min(ch.gap, MAX_CONCEALED)):
                last = k == min(ch.gap, MAX_CONCEALED) - 1
                link.feed.push(link.decoder.conceal(frame if last else None))
            link.feed.push(link.decoder.decode(frame))
        except OpusDecodeError:
            ch.stats.undecodable += 1

    def _to_loop(self, fn: Callable[..., None], *args: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(fn, *args)
