"""The voice server at the edge: a real server on loopback attacked the way a stranger would.

Each attack runs while member A streams a DAVE tone to member B, and checks that B still gets
every frame at ~50 packets/s (``check_stream``), that nothing is redirected, that the attacker
gets a precise close code (or, on UDP, nothing at all) and that no traceback is logged.
Limits and threats: docs/SECURITY.md "Voice server".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from audionode.config import VoiceServerConfig
from audionode.voice import rtp
from audionode.voice.crypto import AES_GCM_MODE, cipher_for
from audionode.voiceserver.app import VoiceServer
from audionode.voiceserver.lvsp_client import LvspClient

from .audio import tone_opus
from .conftest import TOKEN, LvspFactory
from .member import VoiceMember
from .test_gateway_server import check_stream, close_of, joined, raw_socket, voice_state

IDENTIFY_TIMEOUT = 0.5
DISCOVERY_RATE = 20


@pytest.fixture
def server_config() -> VoiceServerConfig:
    return VoiceServerConfig(
        host="127.0.0.1",
        port=0,
        udp_port=0,
        lvsp_token=TOKEN,
        identify_timeout=IDENTIFY_TIMEOUT,
        udp_discovery_rate=DISCOVERY_RATE,
        max_frame_bytes=65536,
        lvsp_resume_window=0.4,
        lvsp_max_detached=4,
    )


class Flood(threading.Thread):
    """A stranger's UDP socket sending ``datagrams`` round-robin at ``rate`` per second from
    its own thread (so that the flood does not ride on the server's event loop)."""

    def __init__(self, target: tuple[str, int], datagrams: list[bytes], rate: float) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.target, self.datagrams, self.rate = target, datagrams, rate
        self.sent = 0
        self.bytes_sent = 0
        self._halt = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self._halt.is_set():
            data = self.datagrams[self.sent % len(self.datagrams)]
            self.sock.sendto(data, self.target)
            self.sent += 1
            self.bytes_sent += len(data)
            if self.sent % 50 == 0:  # pace in batches: sleep until the schedule catches up
                time.sleep(max(0.0, start + self.sent / self.rate - time.monotonic()))

    def stop(self) -> list[bytes]:
        """Stop sending; return every datagram the stranger received."""
        self._halt.set()
        self.join(5)
        time.sleep(0.1)
        self.sock.setblocking(False)
        got = []
        with contextlib.suppress(BlockingIOError):
            while True:
                got.append(self.sock.recv(2048))
        self.sock.close()
        return got


@contextlib.asynccontextmanager
async def streaming(a: VoiceMember, b: VoiceMember, seconds: float = 1.2) -> AsyncIterator[None]:
    """A plays a tone while the body attacks; on exit B must have heard all of it, on time."""
    tone = tone_opus(440, seconds)
    play = asyncio.create_task(a.play(tone))
    try:
        yield
        await play
        await b.wait_for(lambda: len(b.opened(a.ssrc)) >= len(tone) + 5, within=10)
    finally:
        play.cancel()
    check_stream(b, a, tone, 440)


def forged_rtp(ssrc: int) -> bytes:
    return cipher_for(AES_GCM_MODE, os.urandom(32)).seal(rtp.pack_header(1, 0, ssrc), b"x", 0)


async def test_udp_strangers_cannot_redirect_or_slow_a_members_audio(
    server: VoiceServer, control: LvspClient, http: aiohttp.ClientSession, no_traceback: None
) -> None:
    a, b = await joined(server, control, http, 7001, 7002)
    bound = {m.ssrc: server.forwarder.address_of(m.ssrc) for m in (a, b)}
    assert None not in bound.values()
    attack = [
        rtp.pack_discovery_request(a.ssrc),
        rtp.pack_discovery_request(b.ssrc),  # "I am B now": B's audio would come here
        forged_rtp(a.ssrc),
        forged_rtp(b.ssrc),
        rtp.pack_discovery_request(0x12345678),
        rtp.pack_keepalive(1),
        os.urandom(300),
        b"",
    ]
    flood = Flood(("127.0.0.1", server.udp_port), attack, rate=3000)
    async with streaming(a, b):
        flood.start()
    received = flood.stop()
    assert flood.sent > 1000
    assert received == [], "the stranger got replies or somebody's audio"
    assert {m.ssrc: server.forwarder.address_of(m.ssrc) for m in (a, b)} == bound
    stats = server.stats()
    # half of the datagrams name A's or B's SSRC (a full socket buffer may drop a few)
    assert stats["channels"][str(b.channel_id)]["strangers"] >= flood.sent * 0.4
    assert stats["udp"]["unknown_ssrc"] > 0 and stats["udp"]["malformed"] > 0
    # B still sends from its own address and is heard by A
    tone = tone_opus(660, 0.3)
    await b.play(tone)
    await a.wait_for(lambda: len(a.opened(b.ssrc)) >= len(tone) + 5)


async def test_discovery_is_rate_limited_per_source_and_never_amplified(
    server: VoiceServer, control: LvspClient, http: aiohttp.ClientSession, no_traceback: None
) -> None:
    """An identified session that has not sent op 1 yet (the only time discovery is answered
    to an unbound source): a flood of its own discovery requests gets at most the rate."""
    info = await voice_state(control, 7101)
    ws = await raw_socket(server, http)
    await ws.send_json(
        {
            "op": 0,
            "d": {
                "server_id": info["guild_id"],
                "user_id": info["user_id"],
                "session_id": info["session_id"],
                "token": info["token"],
                "max_dave_protocol_version": 1,
            },
        }
    )
    while (msg := await ws.receive_json(timeout=5))["op"] != 2:
        pass
    ssrc = msg["d"]["ssrc"]
    flood = Flood(("127.0.0.1", server.udp_port), [rtp.pack_discovery_request(ssrc)], rate=2000)
    flood.start()
    await asyncio.sleep(1.0)
    replies = flood.stop()
    assert flood.sent > 1000
    # a bucket of DISCOVERY_RATE plus DISCOVERY_RATE per second of flooding (+1 for timing)
    assert DISCOVERY_RATE <= len(replies) <= DISCOVERY_RATE * 2.5
    assert all(rtp.parse_discovery(r).ssrc == ssrc and len(r) == 74 for r in replies)
    assert sum(map(len, replies)) <= flood.bytes_sent
    # (the kernel may drop a few of the flood's datagrams before the server reads them)
    assert server.stats()["udp"]["rate_limited"] >= (flood.sent - len(replies)) * 0.8
    await ws.close()


async def test_sockets_that_do_not_identify_are_closed(
    server: VoiceServer,
    control: LvspClient,
    lvsp: LvspFactory,
    http: aiohttp.ClientSession,
    no_traceback: None,
) -> None:
    a, b = await joined(server, control, http, 7201, 7202)
    async with streaming(a, b):
        voice = await raw_socket(server, http)
        await voice.receive_json(timeout=5)  # Hello
        lv = await lvsp()
        await lv.recv()  # HELLO
        started = time.monotonic()

        async def keep_heartbeating() -> None:  # heartbeats are no substitute for identify
            with contextlib.suppress(ConnectionError, RuntimeError):
                for t in range(20):
                    await voice.send_json({"op": 3, "d": {"t": t, "seq_ack": -1}})
                    await asyncio.sleep(0.1)

        beats = asyncio.create_task(keep_heartbeating())
        code, reason = await close_of(voice)
        assert (code, reason) == (4003, "Not authenticated: no Identify or Resume within 0.5s")
        assert IDENTIFY_TIMEOUT - 0.05 < time.monotonic() - started < IDENTIFY_TIMEOUT + 1.0
        assert await lv.closed() == (4000, "no IDENTIFY or RESUME within 0.5s")
        beats.cancel()


@pytest.mark.parametrize("depth", [2000, 30_000])  # both under max_frame_bytes
async def test_deep_json_huge_ids_and_big_frames_get_precise_close_codes(
    server: VoiceServer,
    control: LvspClient,
    lvsp: LvspFactory,
    http: aiohttp.ClientSession,
    no_traceback: None,
    depth: int,
) -> None:
    a, b = await joined(server, control, http, 7301, 7302)
    info = await voice_state(control, 7303)
    deep = "[" * depth + "]" * depth
    identify = {
        "server_id": info["guild_id"],
        "user_id": info["user_id"],
        "session_id": info["session_id"],
        "token": info["token"],
        "max_dave_protocol_version": 1,
    }

    async def voice(*frames: str | bytes) -> tuple[int | None, str]:
        ws = await raw_socket(server, http)
        for f in frames:
            await (ws.send_str(f) if isinstance(f, str) else ws.send_bytes(f))
        return await close_of(ws)

    async def lvsp_close(*frames: str, identified: bool = True) -> tuple[int | None, str]:
        c = await lvsp()
        if identified:
            await c.identify()
        else:
            await c.recv()
        for f in frames:
            await c.ws.send_str(f)
        return await c.closed()

    def op(n: int, d: object) -> str:
        return json.dumps({"op": n, "d": d})

    async with streaming(a, b):
        code, reason = await voice('{"op": 0, "d": ' + deep + "}")
        assert (code, reason) == (4002, "Failed to decode payload: JSON nested too deeply")
        assert (await voice(op(0, {**identify, "token": {"x": None}})))[0] == 4020
        huge = {**identify, "user_id": "9" * 5000}
        assert await voice(op(0, huge)) == (
            4004,
            "Authentication failed: `user_id` is not a snowflake (1-20 ASCII digits)",
        )
        resume = {k: identify[k] for k in ("server_id", "session_id", "token")}
        assert (await voice(op(7, {**resume, "seq_ack": 10**30})))[0] == 4006
        assert (await voice(b"\x1a" + os.urandom(70_000)))[0] == 1009  # over max_frame_bytes
        # an identified session that misbehaves is closed too, and the others keep streaming
        code, reason = await voice(op(0, identify), op(5, {"speaking": 1, "ssrc": 2**70}))
        assert code == 4020 and "ssrc" in reason

        nested = '{"op": 6, "d": {"type": 0, "info": {"id": ' + deep + "}}}"
        assert await lvsp_close(nested) == (4002, "message is nested too deeply")
        code, reason = await lvsp_close(op(4, {"s": 10**30}))
        assert code == 4002 and reason.startswith(f"HEARTBEAT: d.s={10**30} is ahead of")
        code, reason = await lvsp_close(op(7, {"user_id": "9" * 25, "channel_id": "1"}))
        assert code == 4002 and "`d.user_id`" in reason
        code, reason = await lvsp_close(op(1, {"token": "x" * 70_000}), identified=False)
        assert code == 1009
        assert await lvsp_close(op(1, {"token": "wrong"}), identified=False) == (
            4001,
            "authentication failed: wrong token",
        )


async def test_lvsp_sessions_that_are_never_resumed_expire(
    server: VoiceServer, lvsp: LvspFactory, no_traceback: None
) -> None:
    ids = []
    for _ in range(6):
        c = await lvsp()
        ids.append((await c.identify())["d"]["session_id"])
        await c.ws.close()
    await asyncio.sleep(0.05)
    # at most lvsp_max_detached (4) dropped sessions are kept, the newest
    assert 0 < len(server.lvsp.sessions) <= 4
    # nobody connects: the sweeper forgets them after the resume window (0.4 s)
    await asyncio.sleep(0.9)
    assert len(server.lvsp.sessions) == 0
    c = await lvsp()
    await c.recv()
    await c.send(2, {"token": TOKEN, "seq": 1, "session_id": ids[-1]})
    assert await c.closed() == (4003, "no session to resume: IDENTIFY instead")
