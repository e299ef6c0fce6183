"""Client and server voice stacks wired in memory (no sockets): handshake, DAVE group life cycle,
E2EE audio through an SFU step, resume. Invariants from the end of docs/discord-voice.md."""

from __future__ import annotations

import itertools
import os
import struct

import pytest

from audionode.voice import rtp
from audionode.voice.crypto import AES_GCM_MODE, XCHACHA_MODE
from audionode.voice.dave_frame import is_dave_frame, parse_footer
from audionode.voice.events import Closed, Reopen
from audionode.voice.gateway import ClientState, ServerGateway
from audionode.voice.opcodes import (
    DavePrepareEpoch,
    DavePrepareTransition,
    DaveTransitionReady,
    Op,
    Outgoing,
    Resume,
)
from audionode.voice.packetizer import SILENCE_FRAME, silence_frames
from tests.voiceserver.memnet import MemClient, MemNet

BOTH = [AES_GCM_MODE, XCHACHA_MODE]
A, B, C, D = 101, 202, 303, 404


def _opus(n: int = 20) -> list[bytes]:
    return [b"\xfc" + os.urandom(40 + i % 60) for i in range(n)]


def _binary_ops(frames: list[str | bytes], with_seq: bool) -> list[int]:
    return [f[2] if with_seq else f[0] for f in frames if isinstance(f, bytes)]


def _assert_e2ee(net: MemNet, sender: int, n: int = 20) -> None:
    frames = [*_opus(n), *silence_frames()]
    for _uid, got in net.play(sender, frames).items():
        assert [opus for _, opus in got] == frames
        for dave_frame, opus in got:
            if opus == SILENCE_FRAME:
                assert dave_frame == SILENCE_FRAME
                continue
            footer = parse_footer(dave_frame)
            assert dave_frame[-2:] == b"\xfa\xfa"
            assert footer.supplemental_size == 8 + footer.nonce_size + 0 + 1 + 2
            assert footer.ciphertext_size == len(opus)


def _assert_rtp_invariants(net: MemNet, sender: int) -> None:
    session = net.server.sessions[sender]
    assert session.cipher is not None
    opened = [session.cipher.open(p) for p in net.packets[sender]]
    ssrc = net.server.ssrcs[sender]
    for prev, cur in itertools.pairwise(opened):
        assert (cur.header.sequence - prev.header.sequence) % 2**16 == 1
        assert (cur.header.timestamp - prev.header.timestamp) % 2**32 == 960
        assert cur.nonce == prev.nonce + 1
    assert {o.header.ssrc for o in opened} == {ssrc}
    assert {o.header.payload_type for o in opened} == {0x78}


@pytest.mark.parametrize("mode", BOTH)
def test_two_members_form_a_group_and_exchange_e2ee_audio(mode: str) -> None:
    net = MemNet(BOTH)
    a = net.connect(A, (mode,))
    ch = net.server.channel
    # Alone: op 25 and our op 26, but nobody to commit with; frames go out plain.
    assert (
        a.session.gateway.state is ClientState.ACTIVE
        and a.session.cipher is not None
        and a.session.cipher.mode == mode
    )
    assert _binary_ops(a.received, True) == [Op.DAVE_MLS_EXTERNAL_SENDER]
    assert not a.dave.ready and ch.in_group() == [] and ch.epoch == 0
    assert a.dave.encrypt_opus(b"\xfcalone") == b"\xfcalone"

    b = net.connect(B, (mode,))
    assert a.dave.ready and b.dave.ready and ch.in_group() == [A, B] and ch.epoch == 1
    assert a.dave.epoch == b.dave.epoch == 1
    assert a.dave.voice_privacy_code == b.dave.voice_privacy_code is not None
    assert ch.pending_transition is None  # op 23 from both → op 22 went out
    # Client binary frames carry no seq; one key package per (re)init; op 23 for tid 1.
    assert _binary_ops(a.sent, False) == [Op.DAVE_MLS_KEY_PACKAGE, Op.DAVE_MLS_COMMIT_WELCOME]
    assert _binary_ops(b.sent, False) == [Op.DAVE_MLS_KEY_PACKAGE]
    assert a.dave.key_packages_sent == b.dave.key_packages_sent == 1
    ready = a.session.gateway.send(Outgoing(Op.DAVE_TRANSITION_READY, DaveTransitionReady(1)))
    assert ready in a.sent and ready in b.sent
    # seq_ack counts JSON seq and binary prefixes alike.
    assert _binary_ops(b.received, True) == [Op.DAVE_MLS_EXTERNAL_SENDER, Op.DAVE_MLS_WELCOME]
    for c in (a, b):
        assert c.session.gateway.seq_ack == net.server.sessions[c.user_id].gw.last_seq > 0
    hb = a.session.gateway.heartbeat(12345)
    assert f'"seq_ack":{a.session.gateway.seq_ack}' in hb

    _assert_e2ee(net, A)
    _assert_e2ee(net, B)
    _assert_rtp_invariants(net, A)


@pytest.mark.parametrize("mode", BOTH)
def test_third_member_competing_commits_then_a_member_leaves(mode: str) -> None:
    net = MemNet([mode])
    a, b = net.connect(A), net.connect(B)
    c = net.connect(C)
    ch = net.server.channel
    # a and b both committed the Add; the first won, the other was stale.
    assert _binary_ops(b.sent, False).count(Op.DAVE_MLS_COMMIT_WELCOME) == 1
    assert _binary_ops(a.sent, False).count(Op.DAVE_MLS_COMMIT_WELCOME) == 2
    assert ch.last_rejection is not None and "stale" in ch.last_rejection
    assert ch.epoch == 2 and ch.leaves == [A, B, C]
    assert a.dave.epoch == b.dave.epoch == c.dave.epoch == 2
    assert c.dave.session is not None and c.dave.session.own_leaf_index == 2
    assert len({x.dave.voice_privacy_code for x in (a, b, c)}) == 1
    _assert_e2ee(net, C)

    net.leave(B)
    assert ch.epoch == 3 and ch.leaves == [A, None, C] and ch.in_group() == [A, C]
    assert B not in a.dave.recognized and B not in c.dave.recognized
    assert a.dave.session is not None and sorted(a.dave.session.get_user_ids()) == [str(A), str(C)]
    _assert_e2ee(net, A)
    d = net.connect(D)  # fills the blank leaf 1
    assert ch.leaves == [A, D, C] and d.dave.session is not None
    assert d.dave.session.own_leaf_index == 1 and d.dave.epoch == 4
    _assert_e2ee(net, D)


def test_downgrade_then_plain_frames() -> None:
    net = MemNet([AES_GCM_MODE])
    a, b = net.connect(A), net.connect(B)
    ch = net.server.channel
    net.deliver(net.server.route(ch.prepare_downgrade()))
    tid = 2
    assert (
        a.session.gateway.send(Outgoing(Op.DAVE_TRANSITION_READY, DaveTransitionReady(tid)))
        in a.sent
    )
    assert a.dave.downgraded and a.dave.protocol_version == 0 and not a.dave.ready
    assert ch.protocol_version == 0 and ch.in_group() == []
    frames = _opus(10)
    got = net.play(A, frames)[B]
    assert [o for _, o in got] == frames
    assert not any(is_dave_frame(d) for d, _ in got)
    assert b.dave.decrypt(A, frames[0]) == frames[0]


def test_sole_member_reset_then_a_new_group() -> None:
    net = MemNet([XCHACHA_MODE])
    a, _ = net.connect(A), net.connect(B)
    net.leave(B)
    ch = net.server.channel
    assert ch.in_group() == [A] and ch.epoch == 2 and a.dave.ready
    net.deliver(
        [
            *net.server.send(A, Outgoing(Op.DAVE_PREPARE_EPOCH, DavePrepareEpoch(1, 1))),
            *net.server.send(A, Outgoing(Op.DAVE_PREPARE_TRANSITION, DavePrepareTransition(0, 1))),
        ]
    )
    assert a.dave.key_packages_sent == 2 and not a.dave.ready
    assert _binary_ops(a.sent, False).count(Op.DAVE_MLS_KEY_PACKAGE) == 2
    assert ch.epoch == 0 and ch.in_group() == []  # the server forgot the old group
    c = net.connect(C)
    assert ch.epoch == 1 and ch.in_group() == [A, C] and a.dave.epoch == c.dave.epoch == 1
    _assert_e2ee(net, A)


def test_invalid_commit_sends_op31_and_the_member_is_re_added() -> None:
    net = MemNet([AES_GCM_MODE])
    a, b = net.connect(A), net.connect(B)
    ch = net.server.channel
    bogus = struct.pack(">H", 9) + b"not a commit"
    net.deliver(net.server.send(B, Outgoing(Op.DAVE_MLS_ANNOUNCE_COMMIT_TRANSITION, bogus)))
    assert '{"op":31,"d":{"transition_id":9}}' in b.sent
    assert b.dave.key_packages_sent == 2
    # op 31 → Remove of b's dead leaf (epoch 2); b's new op 26 → Add at the next epoch (3).
    assert ch.epoch == 3 and ch.leaves == [A, B] and b.dave.epoch == a.dave.epoch == 3
    _assert_e2ee(net, A)


def test_resume_replays_missed_messages_and_media_counters_continue() -> None:
    net = MemNet([AES_GCM_MODE])
    a, b = net.connect(A), net.connect(B)
    net.play(A, _opus(5))
    assert a.session.packetizer is not None
    before = (
        a.session.packetizer.sequence,
        a.session.packetizer.timestamp,
        a.session.packetizer.nonce,
    )
    a.online = False  # the socket died; frames to it are lost
    c = net.connect(C)  # op 11, op 27, op 29 for a are missed
    ch = net.server.channel
    assert ch.pending_transition is not None and ch.epoch == 2  # b's commit won; a not ready
    seen = a.session.gateway.seq_ack
    assert seen < net.server.sessions[A].gw.last_seq
    # The session's side of §1.6: a lost socket (no close frame) → Closed, then a resume.
    a.session.socket_closed(None, "connection lost", True, 1.0)
    assert a.session.take() == [Closed(1006, "connection lost", True, True), Reopen(0.0, True)]
    assert a.session.ready and a.session.audio_ready, "UDP and key stay valid meanwhile"
    probe = ServerGateway()
    a.feed(probe.hello())
    [resume] = probe.feed(a.start()[0])
    assert isinstance(resume, Resume) and resume.seq_ack == seen
    replay = net.server.sessions[A].gw.resume_connection(seen)
    assert replay is not None and len(replay) > 2
    assert any(isinstance(f, bytes) for f in replay)  # binary DAVE frames are replayed too
    a.online = True
    net.deliver([(A, f) for f in replay])
    assert a.session.gateway.state is ClientState.ACTIVE
    assert a.session.gateway.seq_ack == net.server.sessions[A].gw.last_seq
    assert ch.pending_transition is None and a.dave.epoch == c.dave.epoch == b.dave.epoch == 2
    net.play(A, _opus(3))
    first_after = rtp.seq_ts_ssrc(net.packets[A][5])
    assert first_after[:2] == before[:2]
    assert struct.unpack(">I", net.packets[A][5][-4:])[0] == before[2]
    _assert_rtp_invariants(net, A)
    _assert_e2ee(net, A)


def test_client_without_dave_is_refused_when_required() -> None:
    net = MemNet([AES_GCM_MODE])
    client = MemClient(B, dave_enabled=False)
    net.clients[B] = client
    net.to_clients.extend(net.server.open(B))
    net.to_server.extend((B, f) for f in client.start())
    net.pump()
    assert net.server.closed == {B: 4017}
