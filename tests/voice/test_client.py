"""VoiceClient, the sans-I/O voice session, without sockets or a clock: a ServerGateway plays the
server, each test feeds frames and times and checks the actions and events that come out
(docs/discord-voice.md §1.2-§1.8, §2.7; issue 11 items 7 and 8)."""

from __future__ import annotations

import json
import os

import pytest

from audionode import native
from audionode.voice import rtp
from audionode.voice.client import ABANDON_CODE, Credentials, VoiceClient
from audionode.voice.crypto import AES_GCM_MODE, XCHACHA_MODE, cipher_for
from audionode.voice.dave import DaveState
from audionode.voice.events import (
    AudioPacket,
    Closed,
    Connected,
    MemberLeft,
    Output,
    ReceiveFailed,
    Reopen,
    Resumed,
    SpeakingChanged,
    UdpClose,
    UdpOpen,
    UdpSend,
    WsClose,
    WsSend,
)
from audionode.voice.gateway import ClientState, ServerGateway
from audionode.voice.opcodes import ClientsConnect, DavePrepareTransition, Op, Outgoing
from audionode.voice.packetizer import SILENCE_FRAME, NativePacketizer, Packetizer
from audionode.voice.receive import (
    MAX_MEMBERS,
    MAX_PENDING_PER_SSRC,
    MAX_PENDING_SSRCS,
    Receiver,
)
from audionode.voice.timers import DISCOVERY_ATTEMPTS, MISSED_ACKS

CREDS = Credentials(guild_id=11, user_id=22, channel_id=33, session_id="sess", token="tok")
KEY = os.urandom(32)


def frames(out: list[Output]) -> list[str | bytes]:
    return [o.frame for o in out if isinstance(o, WsSend)]


def ops(out: list[Output]) -> list[int]:
    return [json.loads(f)["op"] if isinstance(f, str) else f[0] for f in frames(out)]


class Harness:
    """A client and the server gateway of its session, with UDP answered in memory."""

    def __init__(self, *, dave_version: int = 0, receive: bool = False) -> None:
        self.client = VoiceClient(CREDS, receive=receive)
        self.server = ServerGateway()
        self.dave_version = dave_version
        self.log: list[Output] = []

    def take(self) -> list[Output]:
        out = self.client.take()
        self.log += out
        return out

    def deliver(self, frame: str | bytes, now: float = 0.0) -> list[Output]:
        self.client.receive(frame, now)
        return self.take()

    def to_server(self, out: list[Output]) -> None:
        for f in frames(out):
            self.server.feed(f)

    def connect(self, now: float = 0.0) -> None:
        """Hello, op 0, Ready, UDP + discovery, op 1, op 4: an active session."""
        self.client.socket_opened(now)
        self.to_server(self.take())
        self.deliver(self.server.hello(1000), now)
        out = self.deliver(self.server.ready(7, "127.0.0.1", 5000, [XCHACHA_MODE, AES_GCM_MODE]))
        assert out == [UdpOpen("127.0.0.1", 5000)]
        self.client.udp_opened(now)
        [request] = self.take()
        assert isinstance(request, UdpSend) and rtp.parse_discovery(request.data).ssrc == 7
        self.client.receive_datagram(rtp.pack_discovery_response(7, "1.2.3.4", 999), now)
        select = self.take()
        assert ops(select) == [Op.SELECT_PROTOCOL]
        self.to_server(select)
        assert self.server.mode == AES_GCM_MODE, "AES-GCM preferred when offered (§1.10)"
        self.deliver(self.server.session_description(KEY, self.dave_version), now)


def test_handshake_in_order_then_media_and_speaking() -> None:
    h = Harness()
    h.connect()
    c = h.client
    assert c.gateway.state is ClientState.ACTIVE and c.ready and c.audio_ready
    assert ops(h.log) == [Op.IDENTIFY, Op.SELECT_PROTOCOL, Op.SPEAKING]
    assert json.loads(frames(h.log)[1])["d"]["data"] == {
        "address": "1.2.3.4",
        "port": 999,
        "mode": AES_GCM_MODE,
    }
    assert h.log[-1] == Connected(7, AES_GCM_MODE, 0)
    datagram = c.seal(b"\xfc" * 40)
    assert datagram is not None
    opened = cipher_for(AES_GCM_MODE, KEY).open(datagram)
    assert (opened.payload, opened.nonce, opened.header.ssrc) == (b"\xfc" * 40, 0, 7)
    c.set_speaking(True)
    assert json.loads(frames(h.take())[0])["d"] == {"speaking": 1, "ssrc": 7, "delay": 0}
    keepalive = c.keepalive()
    assert keepalive is not None and rtp.classify(keepalive) is rtp.DatagramKind.KEEPALIVE


def test_nothing_is_sealed_before_op4() -> None:
    c = VoiceClient(CREDS)
    assert c.seal(b"\xfc" * 10) is None and c.keepalive() is None
    assert (c.frames_sent, c.frames_dropped) == (0, 1)


def test_heartbeats_carry_seq_ack_and_missed_acks_drop_the_socket_to_resume() -> None:
    h = Harness()
    h.connect()
    c = h.client
    assert c.next_deadline() == 1.0  # Hello said 1000 ms
    c.poll(0.5)
    assert h.take() == []
    c.poll(1.0)
    beat = json.loads(frames(h.take())[0])
    assert beat == {"op": 3, "d": {"t": 1000, "seq_ack": h.server.last_seq}}
    h.deliver(h.server.heartbeat_ack(1000), 1.02)
    assert c.last_heartbeat_rtt_ms == pytest.approx(20)
    for n in range(MISSED_ACKS):
        c.poll(2.0 + n)
        assert ops(h.take()) == [Op.HEARTBEAT]
    c.poll(2.0 + MISSED_ACKS)
    assert h.take() == [WsClose(ABANDON_CODE, f"no heartbeat ACK for {MISSED_ACKS} beats")]
    c.socket_closed(ABANDON_CODE, "", True, 5.0)  # our own close frame echoed
    reason = f"no heartbeat ACK for {MISSED_ACKS} beats"
    assert h.take() == [Closed(1006, reason, False, True), Reopen(0.0, True)]
    assert c.ready and c.audio_ready, "UDP and key stay valid for the resume"
    c.socket_opened(5.1)
    resume = json.loads(frames(h.take())[0])
    assert resume["op"] == 7 and resume["d"]["seq_ack"] == h.server.last_seq
    assert h.deliver('{"op":9,"d":null}') == [WsSend(c.gateway.speaking(0)), Resumed()]


def test_discovery_is_retried_then_the_socket_is_given_up() -> None:
    c = VoiceClient(CREDS)
    server = ServerGateway()
    c.socket_opened(0.0)
    server.feed(frames(c.take())[0])
    c.receive(server.ready(7, "127.0.0.1", 5000, [AES_GCM_MODE]), 0.0)
    c.take()
    c.poll(5.0)
    assert c.take() == [], "no retry before the socket is open"
    c.udp_opened(10.0)
    sent = [o for o in c.take() if isinstance(o, UdpSend)]
    for i in range(1, DISCOVERY_ATTEMPTS):
        c.poll(10.0 + i)
        sent += [o for o in c.take() if isinstance(o, UdpSend)]
    assert len(sent) == DISCOVERY_ATTEMPTS
    c.poll(10.0 + DISCOVERY_ATTEMPTS)
    [close] = c.take()
    assert isinstance(close, WsClose) and "no reply for SSRC 7 after 3 tries" in close.reason
    c.socket_closed(None, "", True, 20.0)
    out = c.take()
    assert isinstance(out[0], Closed) and out[0].will_reconnect
    assert out[1:] == [UdpClose(), Reopen(0.0, False)], "nothing to resume: identify afresh"


@pytest.mark.parametrize(
    ("code", "retry", "resume"),
    [
        (4015, True, True),
        (1006, True, True),
        (None, True, True),
        (1001, True, True),
        (4016, True, False),
        (4020, True, False),
        (4014, False, False),
        (4006, False, False),
        (4022, False, False),
        (4021, False, False),
        (1000, False, False),
    ],
)
def test_the_close_policy_is_applied(code: int | None, retry: bool, resume: bool) -> None:
    h = Harness()
    h.connect()
    c = h.client
    c.socket_closed(code, "x", True, 1.0)
    out = h.take()
    assert out[0] == Closed(1006 if code is None else code, "x", True, retry)
    assert (Reopen(0.0, resume) in out) is retry
    assert c.final is not retry
    assert c.ready is resume, "only a resume keeps UDP, key and counters"
    if not retry:
        with pytest.raises(RuntimeError, match="restart"):
            c.socket_opened(2.0)


def test_gives_up_after_max_attempts_with_back_off() -> None:
    c = VoiceClient(CREDS, max_attempts=3)
    delays = []
    for _ in range(3):
        c.socket_failed("refused", 0.0)
        [reopen] = c.take()
        assert isinstance(reopen, Reopen)
        delays.append(reopen.delay)
    assert delays == [0.0, 0.5, 1.0]
    c.socket_failed("refused", 0.0)
    assert c.take() == [Closed(1006, "refused (gave up after 3 attempts)", False, False)]


def test_restart_and_close() -> None:
    h = Harness()
    h.connect()
    c = h.client
    moved = Credentials(11, 22, 44, "sess2", "tok2")
    c.restart(moved)
    reason = "reconnecting with new credentials"
    assert h.take() == [WsClose(1000, reason), Closed(1000, reason, False, True), UdpClose()]
    assert not c.ready and c.dave.channel_id == 44
    c.socket_opened(1.0)
    identify = json.loads(frames(h.take())[0])
    assert identify["d"]["token"] == "tok2" and identify["op"] == 0
    c.close()
    assert h.take() == [
        WsClose(1000, "closed by client"),
        Closed(1000, "closed by client", False, False),
    ]
    c.socket_closed(1000, "", False, 2.0)  # the driver's report after close() is ignored
    assert h.take() == [] and c.final


# --- DAVE never leaks (issue 11 item 7) ---------------------------------------------------------


def sealed_payload(c: VoiceClient, opus: bytes) -> bytes:
    datagram = c.seal(opus)
    assert datagram is not None
    return cipher_for(AES_GCM_MODE, KEY).open(datagram).payload


def test_alone_in_a_dave_channel_audio_goes_out_plain() -> None:
    h = Harness(dave_version=1)
    h.connect()
    c = h.client
    assert ops(h.log)[-2:] == [Op.DAVE_MLS_KEY_PACKAGE, Op.SPEAKING] and not c.dave.ready
    assert c.audio_ready, "nobody can hear it, no group can exist (§2.2)"
    assert sealed_payload(c, b"\xfcalone") == b"\xfcalone"


def test_with_another_member_present_audio_waits_for_the_group() -> None:
    h = Harness(dave_version=1)
    h.connect()
    c = h.client
    h.deliver(h.server.clients_connect([99]))
    assert c.ready and not c.audio_ready
    assert sealed_payload(c, b"\xfcsecret") == SILENCE_FRAME, "never in the clear"
    assert c.frames_withheld == 1
    assert sealed_payload(c, SILENCE_FRAME) == SILENCE_FRAME  # silence passes by design
    h.deliver(h.server.client_disconnect(99))
    assert c.audio_ready and MemberLeft(99) in h.log


@pytest.mark.skipif(not native.enabled(), reason=native.describe())
def test_the_native_channel_is_live_exactly_while_audio_may_leave() -> None:
    """The sender's native Pump serves a channel only while it is ``live`` (decision 0020):
    it follows :attr:`VoiceClient.audio_ready` through a DAVE hold, and a replaced packetizer's
    channel (a reconnect) is never live again."""
    h = Harness(dave_version=1)
    h.connect()
    c = h.client
    p = c.packetizer
    assert isinstance(p, NativePacketizer)
    assert c.audio_ready and p.channel.live
    h.deliver(h.server.clients_connect([99]))
    assert not c.audio_ready and not p.channel.live, "a hold must stop the Pump at once"
    h.deliver(h.server.client_disconnect(99))
    assert c.audio_ready and p.channel.live
    c.restart(Credentials(11, 22, 44, "sess2", "tok2"))
    assert c.packetizer is None and not p.channel.live


def test_a_downgrade_allows_plain_audio_once_executed() -> None:
    h = Harness(dave_version=1)
    h.connect()
    c = h.client
    h.deliver(h.server.clients_connect([99]))
    h.deliver(h.server.send(Outgoing(Op.DAVE_PREPARE_TRANSITION, DavePrepareTransition(3, 0))))
    assert not c.audio_ready, "prepared is not executed"
    h.deliver('{"op":22,"d":{"transition_id":3},"seq":50}')
    assert c.audio_ready and c.dave.protocol_version == 0
    assert sealed_payload(c, b"\xfcplain") == b"\xfcplain"


def test_a_fresh_identify_forgets_the_old_group_and_members() -> None:
    h = Harness(dave_version=1)
    h.connect()
    c = h.client
    old = c.dave
    c.handle(ClientsConnect(["99"]), 0.0)
    c.socket_closed(4016, "bug", True, 1.0)  # a bug code: reconnect fresh
    c.socket_opened(2.0)
    assert c.dave is not old and c.dave.recognized == set()


# --- the receive path -----------------------------------------------------------------------------


def test_received_audio_is_opened_per_member() -> None:
    h = Harness(receive=True)
    h.connect()
    c = h.client
    other = Packetizer(555, cipher_for(AES_GCM_MODE, KEY), sequence=9)
    c.receive_datagram(other.packet(b"\xfcearly"), 0.0)
    assert h.take() == [], "no op 5 yet: held"
    h.deliver(h.server.speaking(99, 555, 1))
    assert h.log[-2:] == [
        SpeakingChanged(99, 555, 1),
        AudioPacket(99, 555, 9, 0, b"\xfcearly", False),
    ]
    c.receive_datagram(other.packet(b"\xfclater"), 0.0)
    assert h.take() == [AudioPacket(99, 555, 10, 960, b"\xfclater", False)]
    c.receive_datagram(b"\x80\x78" + bytes(30), 0.0)
    [failed] = h.take()
    assert isinstance(failed, ReceiveFailed) and failed.reason.startswith("transport:")
    assert c.receiver is not None and c.receiver.stats.failed == 1


def test_the_receive_path_is_bounded_against_floods() -> None:
    """Made-up SSRCs (never named by op 5) and endless op 5s cannot grow memory."""
    r, dave = Receiver(), DaveState(22, 33)
    cipher = cipher_for(AES_GCM_MODE, KEY)
    for ssrc in range(MAX_PENDING_SSRCS + 5):
        p = Packetizer(ssrc, cipher)
        for _ in range(MAX_PENDING_PER_SSRC + 3 if ssrc == 0 else 1):
            assert r.on_datagram(p.packet(b"\xfcx"), cipher, dave) == []
    assert r.stats.pending_dropped == 3 + 5
    assert len(r.on_speaking(0, 99, dave)) == MAX_PENDING_PER_SSRC, "the newest second waited"
    for ssrc in range(1, MAX_MEMBERS + 10):
        r.on_speaking(10_000 + ssrc, ssrc, dave)
    assert len(r.users) == MAX_MEMBERS and r.stats.members_refused == 10
