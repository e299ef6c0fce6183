"""VoiceConnection against a scripted loopback voice server: handshake, framing, heartbeat,
resume and the close-code policy (docs/discord-voice.md §1.2-§1.8, §1.11; issue 4 items 2, 3, 5).

The DAVE end-to-end runs with two members are in ``test_e2e.py`` against the built-in server.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import struct
from collections.abc import AsyncIterator

import pytest

from audionode.config import VoiceConfig
from audionode.errors import VoiceError
from audionode.transport.voice_conn import (
    Closed,
    Connected,
    Resumed,
    VoiceConnection,
    VoiceEvent,
    backoff,
    gateway_url,
)
from audionode.voice import rtp
from audionode.voice.crypto import AES_GCM_MODE, XCHACHA_MODE
from audionode.voice.opcodes import (
    DaveExecuteTransition,
    DavePrepareEpoch,
    DavePrepareTransition,
    Op,
    Outgoing,
)
from audionode.voice.packetizer import SILENCE_FRAME
from tests.conftest import eventually
from tests.transport.scripted_server import ScriptedServer, scripted_server

GUILD, USER, CHANNEL = 111, 222, 333


class Conn:
    """A VoiceConnection plus the events it emitted."""

    def __init__(self, server: ScriptedServer, **settings: float) -> None:
        self.events: list[VoiceEvent] = []
        cfg = VoiceConfig(connect_timeout=settings.pop("connect_timeout", 3.0))
        self.vc = VoiceConnection(
            GUILD, USER, "sess", CHANNEL, "tok", server.endpoint, cfg, self.events.append
        )

    def closed(self) -> list[Closed]:
        return [e for e in self.events if isinstance(e, Closed)]


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with scripted_server() as s:
        yield s


@pytest.fixture
async def conn(server: ScriptedServer) -> AsyncIterator[Conn]:
    c = Conn(server)
    yield c
    await c.vc.close()


def test_gateway_url_adds_scheme_and_version() -> None:
    assert gateway_url("sweetwater-1.discord.media:2048") == (
        "wss://sweetwater-1.discord.media:2048/?v=8"
    )
    assert gateway_url("ws://127.0.0.1:9000") == "ws://127.0.0.1:9000/?v=8"
    assert gateway_url("wss://h.example/voice") == "wss://h.example/voice?v=8"
    with pytest.raises(VoiceError, match="endpoint is empty"):
        gateway_url("  ")


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff(n) for n in range(1, 8)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


async def test_handshake_prefers_aes_gcm_and_frames_open_on_the_server(
    server: ScriptedServer, conn: Conn
) -> None:
    await conn.vc.connect()
    ident = server.ops(0)[0].d
    assert ident == {
        "server_id": str(GUILD),
        "user_id": str(USER),
        "session_id": "sess",
        "token": "tok",
        "max_dave_protocol_version": 1,
    }
    select = server.ops(1)[0].d
    assert select["protocol"] == "udp" and select["data"]["mode"] == AES_GCM_MODE
    # IP discovery told us the address the server saw our UDP socket at
    assert select["data"]["address"] == "127.0.0.1" and select["data"]["port"] > 0
    assert conn.events == [Connected(server.ssrcs[0], AES_GCM_MODE, 0)]
    assert conn.vc.ready
    # op 5 right after op 4 announces the SSRC (speaking 0: nothing is playing yet)
    await eventually(lambda: len(server.ops(5)) == 1)
    assert server.ops(5)[0].d == {"speaking": 0, "ssrc": server.ssrcs[0], "delay": 0}
    conn.vc.set_speaking(True)
    for i in range(3):
        conn.vc.send_frame(bytes([i]) * 50)
    conn.vc.send_frame(SILENCE_FRAME)
    conn.vc.send_keepalive()
    await eventually(lambda: len(server.datagrams) == 5)
    cipher = server.cipher()
    opened = [cipher.open(d) for _, d in server.datagrams[:4]]
    assert [o.payload for o in opened] == [bytes([i]) * 50 for i in range(3)] + [SILENCE_FRAME]
    assert [o.nonce for o in opened] == [0, 1, 2, 3]
    assert {o.header.ssrc for o in opened} == {server.ssrcs[0]}
    assert len(server.datagrams[4][1]) == rtp.KEEPALIVE_SIZE
    assert server.ops(5)[1].d["speaking"] == 1


async def test_xchacha_when_aes_is_not_offered(server: ScriptedServer, conn: Conn) -> None:
    server.script.modes = ["xsalsa20_poly1305", XCHACHA_MODE]
    await conn.vc.connect()
    assert server.ops(1)[0].d["data"]["mode"] == XCHACHA_MODE
    conn.vc.send_frame(b"\x01" * 30)
    await eventually(lambda: len(server.datagrams) == 1)
    assert server.cipher().open(server.datagrams[0][1]).payload == b"\x01" * 30


async def test_ip_discovery_retries_a_lost_request(server: ScriptedServer, conn: Conn) -> None:
    server.drop_discoveries = 1
    await conn.vc.connect()
    assert server.discoveries == 2 and conn.vc.ready


def rtp_counters(server: ScriptedServer) -> list[tuple[int, int, int]]:
    cipher = server.cipher()
    out = []
    for _, d in server.datagrams:
        o = cipher.open(d)
        out.append((o.header.sequence, o.header.timestamp, o.nonce))
    return out


def assert_continuous(counters: list[tuple[int, int, int]]) -> None:
    for (s0, t0, n0), (s1, t1, n1) in itertools.pairwise(counters):
        assert ((s1 - s0) % 2**16, (t1 - t0) % 2**32, n1 - n0) == (1, 960, 1)


async def test_resume_after_4015_keeps_udp_ssrc_key_and_counters(
    server: ScriptedServer, conn: Conn
) -> None:
    await conn.vc.connect()
    udp = conn.vc._udp
    for _ in range(5):
        conn.vc.send_frame(b"\x02" * 40)
    last_seq = server.gateway.last_seq if server.gateway else -1
    assert last_seq >= 1  # Ready and Session Description were numbered
    await server.kill(4015, "voice server crashed")
    await eventually(lambda: any(isinstance(e, Resumed) for e in conn.events))
    assert conn.closed() == [Closed(4015, "voice server crashed", True, True)]
    resume = server.ops(7)[0]
    assert resume.socket == 1 and resume.d == {
        "server_id": str(GUILD),
        "session_id": "sess",
        "token": "tok",
        "seq_ack": last_seq,
    }
    assert server.identifies == 1 and conn.vc._udp is udp and conn.vc.ready
    for _ in range(5):
        conn.vc.send_frame(b"\x03" * 40)
    await eventually(lambda: len(server.datagrams) == 10)
    counters = rtp_counters(server)  # the one key from the only op 4 opens all ten
    assert_continuous(counters)
    assert {rtp.seq_ts_ssrc(d)[2] for _, d in server.datagrams} == {server.ssrcs[0]}


async def test_lost_socket_without_close_frame_resumes(server: ScriptedServer, conn: Conn) -> None:
    await conn.vc.connect()
    server.drop_tcp()
    await eventually(lambda: any(isinstance(e, Resumed) for e in conn.events))
    closed = conn.closed()
    assert len(closed) == 1 and closed[0].code == 1006 and closed[0].will_reconnect
    assert server.resumes == 1 and server.identifies == 1


async def test_missing_heartbeat_acks_abandon_the_socket_and_resume(
    server: ScriptedServer, conn: Conn
) -> None:
    server.script.heartbeat_ms = 60
    await conn.vc.connect()
    await eventually(lambda: len(server.ops(3)) >= 2)
    beats = server.ops(3)
    assert beats[1].at - beats[0].at == pytest.approx(0.060, abs=0.03)
    # seq_ack is the last seq the server sent (Ready = 1, Session Description = 2)
    assert beats[-1].d["seq_ack"] == 2 and isinstance(beats[-1].d["t"], int)
    server.script.ack_heartbeats = False
    await eventually(lambda: server.resumes == 1, timeout=3)
    closed = conn.closed()[0]
    assert (closed.code, closed.by_remote, closed.will_reconnect) == (1006, False, True)
    assert "heartbeat" in closed.reason
    assert server.close_codes[0] == 4000  # not 1000: the session must stay resumable


@pytest.mark.parametrize("code", [4014, 4022, 4006, 4004, 4009, 4011])
async def test_session_ending_codes_are_final(
    server: ScriptedServer, conn: Conn, code: int
) -> None:
    await conn.vc.connect()
    await server.kill(code, "bye")
    await eventually(lambda: bool(conn.closed()))
    await asyncio.sleep(0.2)
    assert conn.closed() == [Closed(code, "bye", True, False)]
    assert len(server.sockets) == 1 and not conn.vc.ready
    conn.vc.send_frame(b"\x01" * 10)  # dropped quietly, never raises
    assert conn.vc.session.frames_dropped == 1


async def test_rate_limited_4021_stops(server: ScriptedServer, conn: Conn) -> None:
    await conn.vc.connect()
    await server.kill(4021, "rate limited")
    await eventually(lambda: bool(conn.closed()))
    await asyncio.sleep(0.2)
    assert conn.closed() == [Closed(4021, "rate limited", True, False)]
    assert len(server.sockets) == 1


async def test_4006_on_resume_is_reported_and_final(server: ScriptedServer, conn: Conn) -> None:
    await conn.vc.connect()
    server.script.close_on_resume = 4006
    await server.kill(4015)
    await eventually(lambda: len(conn.closed()) == 2)
    await asyncio.sleep(0.2)
    first, second = conn.closed()
    assert (first.code, first.will_reconnect) == (4015, True)
    assert (second.code, second.by_remote, second.will_reconnect) == (4006, True, False)
    assert server.resumes == 1 and server.identifies == 1 and not conn.vc.ready


async def test_bug_code_reconnects_fresh_with_a_new_ssrc(
    server: ScriptedServer, conn: Conn
) -> None:
    await conn.vc.connect()
    await server.kill(4016, "unknown encryption mode")
    await eventually(lambda: len([e for e in conn.events if isinstance(e, Connected)]) == 2)
    assert server.identifies == 2 and server.resumes == 0
    assert conn.closed()[0].will_reconnect
    assert conn.vc.ssrc == server.ssrcs[1] != server.ssrcs[0]


async def test_refused_identify_fails_connect(server: ScriptedServer, conn: Conn) -> None:
    server.script.close_on_identify = 4004
    with pytest.raises(VoiceError, match="4004"):
        await conn.vc.connect()
    assert conn.closed() == [Closed(4004, "scripted", True, False)]


async def test_unreachable_endpoint_times_out(server: ScriptedServer) -> None:
    c = Conn(server, connect_timeout=0.4)
    c.vc.url = "ws://127.0.0.1:9/?v=8"  # discard port: connection refused
    with pytest.raises(VoiceError, match="timed out"):
        await c.vc.connect()
    assert c.closed()[-1].will_reconnect is False
    await c.vc.close()


async def test_reconnect_uses_new_credentials(server: ScriptedServer, conn: Conn) -> None:
    await conn.vc.connect()
    server.script.token, server.script.session_id = "tok2", "sess2"
    old_dave = conn.vc.dave
    await conn.vc.reconnect("tok2", server.endpoint, 444, "sess2")
    assert server.ops(0)[1].d["token"] == "tok2" and server.ops(0)[1].d["session_id"] == "sess2"
    assert conn.vc.dave is not old_dave and conn.vc.dave.channel_id == 444
    assert conn.vc.ssrc == server.ssrcs[1]
    assert server.close_codes[0] == 1000
    conn.vc.send_frame(b"\x05" * 20)
    await eventually(lambda: len(server.datagrams) == 1)
    assert server.cipher().open(server.datagrams[0][1]).nonce == 0  # new key, nonce restarts


async def test_close_sends_1000_and_reports(server: ScriptedServer, conn: Conn) -> None:
    await conn.vc.connect()
    await conn.vc.close()
    await eventually(lambda: server.close_codes == [1000])
    assert conn.closed() == [Closed(1000, "closed by client", False, False)]
    assert not conn.vc.ready
    await conn.vc.close()  # idempotent


async def test_speaking_change_during_a_resume_is_sent_after_op_9(
    server: ScriptedServer, conn: Conn
) -> None:
    await conn.vc.connect()
    server.script.close_on_resume = None
    await server.kill(4015)
    conn.vc.set_speaking(True)  # socket is gone: remembered, sent after op 9
    await eventually(lambda: any(isinstance(e, Resumed) for e in conn.events))
    await eventually(lambda: any(r.socket == 1 for r in server.ops(5)))
    assert [r.d["speaking"] for r in server.ops(5) if r.socket == 1] == [1]


async def test_binary_server_frames_count_for_seq_ack(server: ScriptedServer, conn: Conn) -> None:
    server.script.heartbeat_ms = 50
    await conn.vc.connect()
    gw = server.gateway
    assert gw is not None
    # an op 25 external sender the client cannot use (not DAVE) still advances seq_ack
    frame = gw.send(Outgoing(Op.DAVE_MLS_EXTERNAL_SENDER, b"\x00"))
    await server.push(frame)
    seq = struct.unpack(">H", frame[:2])[0] if isinstance(frame, bytes) else -1
    await eventually(lambda: any(r.d["seq_ack"] == seq for r in server.ops(3)))
    assert json.dumps(server.ops(3)[-1].d)  # plain JSON heartbeat


async def test_gives_up_after_max_attempts(server: ScriptedServer, conn: Conn) -> None:
    server.script.close_on_identify = 4016  # a "bug" code: reconnect fresh, with back-off
    conn.vc.session.max_attempts = 2
    with pytest.raises(VoiceError, match="gave up after 2 attempts"):
        await conn.vc.connect()
    assert server.identifies == 3
    assert [(c.code, c.will_reconnect) for c in conn.closed()] == [
        (4016, True),
        (4016, True),
        (4016, False),
    ]


async def test_dave_ops_are_routed_both_ways(server: ScriptedServer, conn: Conn) -> None:
    """Scenarios 3-5 of docs/discord-voice.md over the wire: invalid commit → op 31 + new key
    package; sole-member reset → new key package; downgrade → op 23, then plain after op 22."""
    server.script.dave_version = 1
    await conn.vc.connect()
    await eventually(lambda: len(server.ops(26)) == 1)  # key package right after op 4
    gw = server.gateway
    assert gw is not None and conn.vc.dave.protocol_version == 1
    await server.push(gw.send(Outgoing(Op.DAVE_MLS_ANNOUNCE_COMMIT_TRANSITION, b"\x00\x07junk")))
    await eventually(lambda: len(server.ops(26)) == 2)
    assert [r.d for r in server.ops(31)] == [{"transition_id": 7}]
    assert server.ops(31)[0].at <= server.ops(26)[1].at
    await server.push(gw.send(Outgoing(Op.DAVE_PREPARE_EPOCH, DavePrepareEpoch(1, 1))))
    await server.push(gw.send(Outgoing(Op.DAVE_PREPARE_TRANSITION, DavePrepareTransition(0, 1))))
    await eventually(lambda: len(server.ops(26)) == 3)
    await server.push(gw.send(Outgoing(Op.DAVE_PREPARE_TRANSITION, DavePrepareTransition(5, 0))))
    await eventually(lambda: bool(server.ops(23)))
    assert [r.d for r in server.ops(23)] == [{"transition_id": 5}]  # none for tid 0
    await server.push(gw.send(Outgoing(Op.DAVE_EXECUTE_TRANSITION, DaveExecuteTransition(5))))
    await eventually(lambda: conn.vc.dave.protocol_version == 0)
    conn.vc.send_frame(b"\x11" * 30)
    await eventually(lambda: len(server.datagrams) == 1)
    assert server.cipher().open(server.datagrams[0][1]).payload == b"\x11" * 30
    # client binary frames start with the opcode: no seq prefix (§1.4)
    assert all(r.d[:4] == b"\x00\x01\x00\x02" for r in server.ops(26))
