"""The engine's VDP bridge with real loopback sockets, the receive thread's tick driven by the
test: frames into the layer (a gap concealed), the channel's audio out with ``i`` counting 20 ms
slots, and a peer that falls silent closing the channel (``peer_timeout``)."""

from __future__ import annotations

import asyncio
import socket

import msgspec
import numpy as np

from audionode.config import VdpConfig
from audionode.engine import messages as m
from audionode.engine.vdp import VdpBridge
from audionode.media.layers import FeedLayer
from tests.voiceserver.audio import dominant_frequency, tone_opus

ROOM = "!room:example.org"


def datagram(i: int, frame: bytes) -> bytes:
    return msgspec.msgpack.encode({"r": ROOM, "d": frame, "i": i})


async def test_frames_in_audio_out_and_a_silent_peer_closes_the_channel() -> None:
    events: list[m.Event] = []
    feeds: dict[int, FeedLayer] = {}
    stopped: list[int] = []
    now = [100.0]

    def start_feed(player: int, layer: int) -> FeedLayer:
        feeds[layer] = FeedLayer(layer, 1.0, None)
        return feeds[layer]

    cfg = VdpConfig(enabled=True, allowed_peers=["127.0.0.0/8"], peer_timeout=2.0)
    bridge = VdpBridge(cfg, events.append, start_feed, lambda p, layer: stopped.append(layer),
                       clock=lambda: now[0])  # fmt: skip
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(2.0)
    try:
        bridge.open(7, ROOM)
        [opened] = events
        assert isinstance(opened, m.VdpOpened) and opened.address.startswith("127.0.0.1:")
        target = ("127.0.0.1", int(opened.address.rsplit(":", 1)[1]))
        bridge.set_peer(7, ROOM, "127.0.0.1", peer.getsockname()[1])
        bridge.tick({})  # the peer is taken at the tick
        tone = tone_opus(523.25, 0.2)
        for i in (0, 1, 4, 5):  # 2 and 3 are lost
            peer.sendto(datagram(i, tone[i]), target)
        await asyncio.sleep(0.05)
        sent_pcm = np.repeat(np.sin(np.arange(960) / 5)[:, None], 2, axis=1).astype(np.float32)
        bridge.tick({7: [sent_pcm, sent_pcm]})
        [feed] = feeds.values()
        blocks = []
        while (block := feed.take(960)) is not None:
            blocks.append(block)
        assert len(blocks) == 6, "four frames and the two lost ones concealed"
        assert abs(dominant_frequency(np.concatenate(blocks)[:, 0]) - 523.25) < 30
        got = msgspec.msgpack.decode(peer.recv(4096))
        assert got["r"] == ROOM and got["i"] == 2 and got["d"], "the second tick of the channel"
        stats = bridge.stats()
        assert (stats["accepted"], stats["lost"], stats["sent"], stats["channels"]) == (4, 2, 1, 1)
        now[0] += 2.5
        bridge.tick({})
        await asyncio.sleep(0)  # the close hops to the loop
        closed = events[-1]
        assert isinstance(closed, m.VdpClosed) and closed.reason == "peer_timeout"
        assert stopped == [feed.id] and bridge.stats()["channels"] == 0
        bridge.tick({})  # the receive thread closes the socket
        assert bridge.stats()["accepted"] == 4, "a closed channel's counts stay in the totals"
    finally:
        peer.close()
        bridge.forget(7)
        bridge.tick({})
