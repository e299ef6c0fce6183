"""VoiceGateway both ends: framing, state machine, seq/seq_ack, resume replay (§1.3-§1.6)."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audionode.voice.gateway import (
    ClientGateway,
    ClientState,
    GatewayError,
    InvalidState,
    ServerGateway,
    ServerState,
    Side,
    VoiceGateway,
)
from audionode.voice.opcodes import (
    ClientsConnect,
    DaveInvalidCommitWelcome,
    DavePrepareEpoch,
    DaveTransitionReady,
    Heartbeat,
    HeartbeatAck,
    Hello,
    Identify,
    Op,
    Outgoing,
    Ready,
    Resume,
    SelectProtocol,
    SessionDescription,
    Speaking,
)
from audionode.voice.wire import BinaryMessage, Other, ReplayBuffer, Resumed

AES = "aead_aes256_gcm_rtpsize"
XCHACHA = "aead_xchacha20_poly1305_rtpsize"


def _pair_to_session() -> tuple[ClientGateway, ServerGateway]:
    client, server = VoiceGateway(side=Side.CLIENT), VoiceGateway(side=Side.SERVER)
    assert client.feed(server.hello()) == [Hello(13750)]
    [ident] = server.feed(client.identify(1, 2, "sess", "tok", 1))
    assert ident == Identify("1", "2", "sess", "tok", 1)
    [ready] = client.feed(server.ready(77, "127.0.0.1", 5000, [AES, XCHACHA]))
    assert isinstance(ready, Ready) and client.state is ClientState.READY
    [sel] = server.feed(client.select_protocol("10.0.0.1", 4000, XCHACHA))
    assert isinstance(sel, SelectProtocol) and server.mode == XCHACHA
    [sd] = client.feed(server.session_description(bytes(range(32)), 1))
    assert isinstance(sd, SessionDescription) and sd.secret_key == list(range(32))
    assert client.state is ClientState.ACTIVE and server.state is ServerState.SESSION
    return client, server


def test_handshake_wire_shapes() -> None:
    client, server = ClientGateway(), ServerGateway()
    assert json.loads(server.hello()) == {"op": 8, "d": {"heartbeat_interval": 13750, "v": 8}}
    ident = json.loads(client.identify(123, 456, "s", "t", 1))
    assert ident == {
        "op": 0,
        "d": {
            "server_id": "123",
            "user_id": "456",
            "session_id": "s",
            "token": "t",
            "max_dave_protocol_version": 1,
        },
    }
    server.feed(json.dumps(ident))
    ready = json.loads(server.ready(9, "1.2.3.4", 50, [AES]))
    assert ready == {
        "op": 2,
        "d": {"ssrc": 9, "ip": "1.2.3.4", "port": 50, "modes": [AES], "experiments": []},
        "seq": 1,
    }
    client.feed(json.dumps(ready))
    sel = json.loads(client.select_protocol("5.6.7.8", 60, AES))
    assert sel == {
        "op": 1,
        "d": {"protocol": "udp", "data": {"address": "5.6.7.8", "port": 60, "mode": AES}},
    }
    server.feed(json.dumps(sel))
    sd = json.loads(server.session_description(bytes(32), 1, "m1"))
    assert sd["seq"] == 2 and sd["d"]["mode"] == AES and sd["d"]["dave_protocol_version"] == 1
    assert sd["d"]["audio_codec"] == "opus" and sd["d"]["media_session_id"] == "m1"
    client.feed(json.dumps(sd))
    assert json.loads(client.speaking(1)) == {"op": 5, "d": {"speaking": 1, "ssrc": 9, "delay": 0}}
    assert client.seq_ack == 2


def test_full_pair_and_speaking_relay() -> None:
    client, server = _pair_to_session()
    [sp] = server.feed(client.speaking(1))
    assert sp == Speaking(1, 77, delay=0)
    relayed = json.loads(server.speaking(999, 88, 1))
    assert relayed["d"] == {"speaking": 1, "ssrc": 88, "user_id": "999"}
    assert client.feed(json.dumps(relayed)) == [Speaking(1, 88, user_id="999")]


def test_seq_ack_counts_json_and_binary_frames_and_heartbeat_carries_it() -> None:
    client, server = _pair_to_session()
    assert json.loads(client.heartbeat(1700)) == {"op": 3, "d": {"t": 1700, "seq_ack": 2}}
    frames = [
        server.clients_connect([5, 6]),
        server.send(Outgoing(Op.DAVE_MLS_EXTERNAL_SENDER, b"pkg")),
        server.send(Outgoing(Op.DAVE_MLS_PROPOSALS, b"\x00\x00")),
    ]
    assert isinstance(frames[1], bytes) and frames[1][:3] == b"\x00\x04\x19"
    events = [e for f in frames for e in client.feed(f)]
    assert events == [
        ClientsConnect(["5", "6"]),
        BinaryMessage(Op.DAVE_MLS_EXTERNAL_SENDER, b"pkg"),
        BinaryMessage(Op.DAVE_MLS_PROPOSALS, b"\x00\x00"),
    ]
    assert client.seq_ack == server.last_seq == 5
    hb = server.feed(client.heartbeat(1800))
    assert hb == [Heartbeat(1800, 5)]
    assert client.feed(server.heartbeat_ack(1800)) == [HeartbeatAck(1800)]
    assert client.seq_ack == 5  # unnumbered ACK leaves seq_ack alone


def test_client_ignores_unmodelled_ops_but_still_counts_their_seq() -> None:
    client, _ = _pair_to_session()
    for op in (12, 14, 15, 18, 20, 99):
        assert client.feed(json.dumps({"op": op, "d": {"x": 1}, "seq": 40 + op})) == []
    assert client.seq_ack == 40 + 99
    assert client.feed(b"\x00\x07\x63junk") == []  # unknown binary op 99
    assert client.seq_ack == 7


def test_client_binary_frames_carry_no_seq() -> None:
    client, server = _pair_to_session()
    frame = client.send(Outgoing(Op.DAVE_MLS_KEY_PACKAGE, b"\x00\x01\x00\x02kp"))
    assert frame == b"\x1a\x00\x01\x00\x02kp"
    assert server.feed(frame) == [BinaryMessage(Op.DAVE_MLS_KEY_PACKAGE, b"\x00\x01\x00\x02kp")]
    ready = client.send(Outgoing(Op.DAVE_TRANSITION_READY, DaveTransitionReady(3)))
    assert json.loads(ready) == {"op": 23, "d": {"transition_id": 3}}
    assert server.feed(ready) == [DaveTransitionReady(3)]
    inv = client.send(Outgoing(Op.DAVE_MLS_INVALID_COMMIT_WELCOME, DaveInvalidCommitWelcome(4)))
    assert server.feed(inv) == [DaveInvalidCommitWelcome(4)]
    with pytest.raises(TypeError):
        client.send(Outgoing(Op.DAVE_MLS_KEY_PACKAGE, DaveTransitionReady(1)))
    with pytest.raises(TypeError):
        client.send(Outgoing(Op.DAVE_TRANSITION_READY, b"x"))


def test_client_builders_enforce_the_state_machine() -> None:
    client = ClientGateway()
    with pytest.raises(InvalidState, match="select_protocol"):
        client.select_protocol("a", 1, AES)
    with pytest.raises(InvalidState, match="speaking"):
        client.speaking()
    with pytest.raises(InvalidState, match="no session to resume"):
        client.resume(1, "s", "t")
    client.identify(1, 2, "s", "t", 1)
    with pytest.raises(InvalidState, match="identify"):
        client.identify(1, 2, "s", "t", 1)
    client.feed(json.dumps({"op": 2, "d": {"ssrc": 1, "ip": "x", "port": 1, "modes": [XCHACHA]}}))
    with pytest.raises(InvalidState, match="not offered"):
        client.select_protocol("a", 1, AES)
    with pytest.raises(GatewayError, match="op 2 Ready received in state ready"):
        client.feed(json.dumps({"op": 2, "d": {"ssrc": 1, "ip": "x", "port": 1, "modes": []}}))


def test_client_rejects_garbage_with_close_codes() -> None:
    client = ClientGateway()
    with pytest.raises(GatewayError) as err:
        client.feed("{not json")
    assert err.value.close_code == 4002
    with pytest.raises(GatewayError) as err:
        client.feed('{"op": 8, "d": {"heartbeat_interval": "soon"}}')
    assert err.value.close_code == 4020 and "$.heartbeat_interval" in str(err.value)
    with pytest.raises(GatewayError, match="< 3"):
        client.feed(b"\x00\x01")
    with pytest.raises(GatewayError, match="Resumed received in state connecting"):
        client.feed('{"op": 9, "d": null}')


def test_resume_replays_numbered_messages_after_seq_ack() -> None:
    client, server = _pair_to_session()
    server.send(Outgoing(Op.DAVE_MLS_EXTERNAL_SENDER, b"ext"))  # seq 3: client receives it
    client.feed(server.send(Outgoing(Op.DAVE_PREPARE_EPOCH, DavePrepareEpoch(1, 1))))  # seq 4
    lost = [server.clients_connect([9]), server.send(Outgoing(Op.DAVE_MLS_PROPOSALS, b"\x00p"))]
    assert client.seq_ack == 4
    # Socket dies. The client opens a new one; the server reads op 7 with a fresh gateway.
    client.new_connection()
    probe = ServerGateway()
    client.feed(probe.hello())
    resume_text = client.resume(1, "sess", "tok")
    [resume] = probe.feed(resume_text)
    assert resume == Resume("1", "sess", "tok", 4)
    out = server.resume_connection(resume.seq_ack)
    assert out is not None and json.loads(out[0]) == {"op": 9, "d": None}
    assert out[1:] == lost
    events = [e for f in out for e in client.feed(f)]
    proposals = BinaryMessage(Op.DAVE_MLS_PROPOSALS, b"\x00p")
    assert events == [Resumed(), ClientsConnect(["9"]), proposals]
    assert client.state is ClientState.ACTIVE and client.seq_ack == server.last_seq == 6
    assert client.ssrc == 77
    assert server.resume_connection(6) == [out[0]]
    assert server.resume_connection(7) is None  # never sent
    assert ServerGateway().resume_connection(-1) is None  # no session


def test_replay_buffer_eviction_and_wraparound() -> None:
    buf = ReplayBuffer(capacity=3)
    assert buf.replay_after(-1) == [] and buf.last_seq == -1
    for i in range(5):
        buf.next_seq()
        buf.store(f"m{i}")
    assert buf.replay_after(2) == ["m2", "m3", "m4"]
    assert buf.replay_after(1) is None and buf.replay_after(-1) is None
    wrap = ReplayBuffer(capacity=10)
    for i in range(65540):
        wrap.next_seq()
        wrap.store(i)  # type: ignore[arg-type]
    assert wrap.last_seq == 65540 % 65536 == 4
    # message i went out as abs i+1, i.e. wire seq (i+1) % 65536
    assert wrap.replay_after(65534) == [65534, 65535, 65536, 65537, 65538, 65539]
    assert wrap.replay_after(2) == [65538, 65539]
    assert wrap.replay_after(65000) is None
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('{"op": 1, "d": {}}', 4003),
        ('{"op": 5, "d": {"speaking": 1, "ssrc": 1}}', 4003),
        (b"\x1a\x00", 4003),
        (b"\x19\x00", 4001),
        (b"", 4002),
        ('{"op": 99, "d": {}}', 4001),
        ('{"op": 10, "d": {}}', 4001),
        ('{"op": 2, "d": {}}', 4020),
        ('{"op": 26, "d": {}}', 4020),
        ('{"op": 3, "d": 12345}', 4020),
        ('{"op": 0, "d": {"server_id": 1}}', 4020),
        ("[]", 4002),
    ],
)
def test_server_rejects_with_the_right_close_code(frame: str | bytes, code: int) -> None:
    with pytest.raises(GatewayError) as err:
        ServerGateway().feed(frame)
    assert err.value.close_code == code


def test_server_session_checks() -> None:
    client, server = ClientGateway(), ServerGateway()
    server.feed(client.identify(1, 2, "s", "t", 1))
    client.feed(server.ready(5, "h", 1, [AES]))
    with pytest.raises(GatewayError) as err:
        server.feed('{"op":1,"d":{"protocol":"udp","data":{"address":"a","port":1,"mode":"x"}}}')
    assert err.value.close_code == 4016
    with pytest.raises(GatewayError) as err:
        server.feed('{"op":1,"d":{"protocol":"tcp","data":{"address":"a","port":1,"mode":"x"}}}')
    assert err.value.close_code == 4012
    with pytest.raises(GatewayError) as err:
        server.feed('{"op":0,"d":{"server_id":"1","user_id":"2","session_id":"s","token":"t"}}')
    assert err.value.close_code == 4005
    with pytest.raises(GatewayError) as err:
        server.feed('{"op":5,"d":{"speaking":1,"ssrc":6,"delay":0}}')
    assert err.value.close_code == 4020
    assert server.feed('{"op":16,"d":{}}') == [Other(16, b"{}")]
    with pytest.raises(InvalidState, match="Select Protocol"):
        server.session_description(bytes(32), 1)
    with pytest.raises(InvalidState, match="Identify"):
        ServerGateway().ready(1, "h", 1, [AES])
    assert server.feed(client.heartbeat(5)) == [Heartbeat(5, 1)]


@given(st.text(max_size=60) | st.binary(max_size=60))
def test_feeding_garbage_raises_only_gateway_error(frame: str | bytes) -> None:
    for gw in (ClientGateway(), ServerGateway()):
        with contextlib.suppress(GatewayError):
            gw.feed(frame)


@given(
    st.integers(-5, 40),
    st.dictionaries(
        st.sampled_from(["t", "seq_ack", "ssrc", "user_ids", "mode", "epoch", "transition_id"]),
        st.integers() | st.text(max_size=5) | st.none(),
    ),
)
def test_feeding_wrong_payloads_raises_only_gateway_error(op: int, d: dict[str, object]) -> None:
    frame = json.dumps({"op": op, "d": d, "seq": 3})
    for gw in (ClientGateway(), ServerGateway()):
        with contextlib.suppress(GatewayError):
            gw.feed(frame)
