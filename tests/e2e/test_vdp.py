"""Issue 15 item 5 end to end: the node as seed 004's discord bridge. A VDP peer in the test
(a UDP socket speaking MessagePack datagrams) hears a real discord.py 2.7.1 member speaking in
the channel (DAVE on), and is heard in it by the listening member; bad datagrams are dropped,
counted in /status, and the listener's audio goes on unharmed."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import msgspec
import numpy as np
import pytest

from tests.conftest import NodeFactory
from tests.e2e.chain import BOT, Chain, EventLog, band_level, chain, decode, dominant
from tests.e2e.test_recording import members
from tests.voiceserver.audio import tone_opus
from tests.voiceserver.dpy import OpusTone

ROOM = "!qPNOnUsNsZrToFZqxB:half-shot.uk"
SILENCE = b"\xf8\xff\xfe"
VDP = {"enabled": True, "allowed_peers": ["127.0.0.0/8"], "peer_timeout": 5.0}


class Peer:
    """The voice bridge's end: a UDP socket sending VDP datagrams and keeping what arrives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.got: list[dict[str, Any]] = []
        self.target: tuple[str, int] = ("", 0)

    def send(self, packet: dict[str, Any] | bytes) -> None:
        data = packet if isinstance(packet, bytes) else msgspec.msgpack.encode(packet)
        self.sock.sendto(data, self.target)

    def drain(self) -> None:
        while True:
            try:
                data, _ = self.sock.recvfrom(4096)
            except BlockingIOError:
                return
            self.got.append(msgspec.msgpack.decode(data))

    async def speak(self, frames: list[bytes], first: int = 0) -> None:
        """One frame per 20 ms on an absolute clock, ``i`` counting from ``first``."""
        start = time.monotonic()
        for n, frame in enumerate(frames):
            self.send({"r": ROOM, "d": frame, "i": first + n})
            self.drain()
            await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - time.monotonic()))
        self.drain()

    def close(self) -> None:
        self.sock.close()


def bot_audio(c: Chain) -> list[bytes]:
    """The bot's audio frames at the listener (other members speak in these channels too)."""
    ssrc = next(int(m["d"]["ssrc"]) for _, m in c.listener.ops(5) if m["d"]["user_id"] == str(BOT))
    return [frame for _, frame in c.audio_frames(ssrc) if frame != SILENCE]


def path(room: str) -> str:
    return f"/vdp/channels/{quote(room, safe='')}"


async def open_channel(c: Chain, peer: Peer) -> dict[str, Any]:
    status, channel = await c.rest(
        "POST", "/vdp/channels", {"room_id": ROOM, "format": "opus", "version": 1}
    )
    assert status == 200, channel
    host, port = channel["address"].rsplit(":", 1)
    peer.target = (host, int(port))
    status, body = await c.rest("POST", f"{path(ROOM)}/peer", {"address": peer.address})
    assert status == 200 and body["peer"] == peer.address, body
    return channel


async def hearing_counters(c: Chain, want: dict[str, int]) -> dict[str, int]:
    """The VDP counters of /status once they reach ``want`` (reported every 2 s)."""
    deadline = time.monotonic() + 6
    while True:
        _, status = await c.node.get("/status")
        counters: dict[str, int] = status["engine"].get("hearing", {})
        if all(counters.get(k, 0) >= v for k, v in want.items()):
            return counters
        assert time.monotonic() < deadline, sorted(counters.items())
        await asyncio.sleep(0.2)


@pytest.fixture
def peers() -> Iterator[tuple[Peer, Peer]]:
    pair = Peer(), Peer()
    yield pair
    for p in pair:
        p.close()


async def test_a_vdp_peer_hears_the_channel_and_is_heard_in_it(
    node_factory: NodeFactory, peers: tuple[Peer, Peer]
) -> None:
    peer, _ = peers
    async with (
        chain(node_factory, voice={"receive": True}, vdp=VDP) as c,
        members(c, 555) as [member],
    ):
        log = EventLog(c.ws)
        try:
            channel = await open_channel(c, peer)
            assert channel == {
                "room_id": ROOM, "address": channel["address"], "format": "opus", "version": 1,
                "peer": None,
            }  # fmt: skip
            opened = await log.wait("VDP_CHANNEL_OPENED")
            assert opened == {"guild_id": str(c.guild), "room_id": ROOM, **channel_address(channel)}
            await c.listener.wait_dave_ready()
            await asyncio.gather(
                peer.speak(tone_opus(880, 2.0)),
                member.play_and_wait(OpusTone(tone_opus(440, 1.5))),
            )
            await asyncio.sleep(0.2)
            peer.drain()
            status, closed = await c.rest("DELETE", path(ROOM))
            assert status == 200 and closed["room_id"] == ROOM
            gone = await log.wait("VDP_CHANNEL_CLOSED")
            assert gone == {"guild_id": str(c.guild), "room_id": ROOM, "reason": "closed"}
        finally:
            await log.stop()
        heard = bot_audio(c)
    # the peer heard the member's 440 Hz, in its room, with i only going up
    assert len(peer.got) >= 60, len(peer.got)
    assert {p["r"] for p in peer.got} == {ROOM}
    numbers = [p["i"] for p in peer.got]
    assert numbers == sorted(set(numbers))
    pcm = decode([p["d"] for p in peer.got])
    assert abs(dominant(pcm) - 440) < 5
    # the listener heard the peer's 880 Hz through the bot, all two seconds of it
    bot = decode(heard)
    assert abs(dominant(bot) - 880) < 5
    assert len(bot) >= 1.8 * 48000, len(bot) / 48000


def channel_address(channel: dict[str, Any]) -> dict[str, Any]:
    return {"address": channel["address"]}


async def test_bad_datagrams_are_dropped_counted_and_never_harm_playback(
    node_factory: NodeFactory, peers: tuple[Peer, Peer]
) -> None:
    peer, stranger = peers
    async with chain(node_factory, voice={"receive": True}, vdp=VDP) as c:
        await open_channel(c, peer)
        stranger.target = peer.target
        await c.listener.wait_dave_ready()
        tone = tone_opus(880, 2.0)

        async def mischief() -> None:
            await asyncio.sleep(0.3)  # the peer's counter is well past 10 by then
            peer.send(b"\x00not messagepack")
            peer.send({"r": "!another:room", "d": tone[0], "i": 10_000})
            peer.send({"r": ROOM, "d": tone[0], "i": 1})  # gone back
            peer.send({"r": ROOM, "d": b"x" * 1400, "i": 10_001})  # d over 1275 bytes
            peer.send(b"\x81" + b"\x00" * 1600)  # over the 1500-byte datagram
            stranger.send({"r": ROOM, "d": tone[0], "i": 10_002})
            for _ in range(30):  # a burst from elsewhere (small enough for the kernel's buffer)
                stranger.send(b"flood")

        await asyncio.gather(peer.speak(tone), mischief())
        counters = await hearing_counters(c, {"accepted": 100, "dropped_wrong_peer": 31})
        heard = bot_audio(c)
    assert counters["dropped_not_msgpack"] == 1
    assert counters["dropped_wrong_room"] == 1
    assert counters["dropped_stale"] == 1
    assert counters["dropped_oversized"] == 2
    assert counters["dropped_wrong_peer"] == 31
    assert counters["accepted"] == 100 and counters["lost"] == 0
    pcm = decode(heard)
    assert abs(dominant(pcm) - 880) < 5 and len(pcm) >= 1.9 * 48000
    levels = [band_level(pcm[i : i + 960], 880) for i in range(9600, len(pcm) - 9600, 960)]
    assert min(levels) > 0.3 * float(np.median(levels)), "a gap in the peer's audio"
