"""DaveChannel: the server's DAVE delivery rules, with real davey clients over memnet."""

from __future__ import annotations

import davey
import pytest

from audionode.voice.opcodes import DaveExecuteTransition, Op
from audionode.voiceserver import mls
from audionode.voiceserver.dave_delivery import (
    DaveChannel,
    identify_close_code,
    negotiate_protocol_version,
)
from tests.voiceserver.memnet import CHANNEL, MemNet

A, B, C, D = 11, 22, 33, 44


def _kp(uid: int, ch: DaveChannel) -> bytes:
    s = davey.DaveSession(1, uid, CHANNEL)
    s.set_external_sender(ch.sender.package())
    return s.get_serialized_key_package()


def _ops(sends: list) -> list[tuple[int, Op]]:  # type: ignore[type-arg]
    return [(s.recipient, s.message.op) for s in sends]


def test_policy_helpers() -> None:
    assert identify_close_code(0, dave_required=True) == 4017
    assert identify_close_code(1, dave_required=True) is None
    assert identify_close_code(0, dave_required=False) is None
    assert [negotiate_protocol_version(v) for v in (0, 1, 7, -1)] == [0, 1, 1, 0]


def test_lone_member_gets_the_external_sender_and_nothing_else() -> None:
    ch = DaveChannel(CHANNEL)
    [(rcpt, msg)] = ch.on_join(A)
    assert rcpt == A and msg.op == Op.DAVE_MLS_EXTERNAL_SENDER
    assert msg.payload == ch.sender.package()
    assert ch.on_key_package(A, _kp(A, ch)) == []
    assert ch.last_rejection is None and not ch.established


def test_add_goes_to_the_creator_only_until_a_group_exists() -> None:
    ch = DaveChannel(CHANNEL)
    for u in (A, B, C):
        ch.on_join(u)
    assert ch.on_key_package(A, _kp(A, ch)) == []
    sends = ch.on_key_package(B, _kp(B, ch))
    assert _ops(sends) == [(A, Op.DAVE_MLS_PROPOSALS)]
    payload = sends[0].message.payload
    assert isinstance(payload, bytes) and payload[0] == 0
    # Another key package while that batch is outstanding waits for the next epoch.
    assert ch.on_key_package(C, _kp(C, ch)) == []


def test_key_package_checks() -> None:
    ch = DaveChannel(CHANNEL)
    ch.on_join(A)
    assert ch.on_key_package(B, _kp(B, ch)) == []
    assert ch.last_rejection is not None and "has not joined" in ch.last_rejection
    assert ch.on_key_package(A, _kp(B, ch)) == []
    assert ch.last_rejection is not None and f"names user {B}" in ch.last_rejection
    assert ch.on_key_package(A, b"\x00\x01") == []
    assert ch.last_rejection is not None and "truncated" in ch.last_rejection


def test_two_batches_two_epochs_when_members_arrive_together() -> None:
    net = MemNet(["aead_aes256_gcm_rtpsize"])
    a, b = net.connect(A), net.connect(B)
    seen = len(a.received)
    c, d = net.connect(C, pump=False), net.connect(D, pump=False)
    net.pump()
    ch = net.server.channel
    assert ch.in_group() == [A, B, C, D] and ch.epoch == 3
    proposals_to_a = [f for f in a.received[seen:] if isinstance(f, bytes) and f[2] == 27]
    assert len(proposals_to_a) == 2  # Add(c) at epoch 1, then Add(d) at epoch 2
    codes = {x.dave.voice_privacy_code for x in (a, b, c, d)}
    assert len(codes) == 1 and None not in codes


def test_added_member_that_left_before_the_commit_is_removed_next_epoch() -> None:
    net = MemNet(["aead_aes256_gcm_rtpsize"])
    net.connect(A)
    net.connect(B)
    ch = net.server.channel
    net.connect(C, pump=False)
    # Run until the Add batch for c is on its way to a and b, then c vanishes.
    while not any(isinstance(f, bytes) and f[2] == 27 for _, f in net.to_clients):
        if net.to_clients:
            uid, frame = net.to_clients.popleft()
            net.to_server.extend((uid, f) for f in net.clients[uid].feed(frame))
        else:
            uid, frame = net.to_server.popleft()
            net.to_clients.extend(net.server.feed(uid, frame))
    net.leave(C)
    assert ch.in_group() == [A, B] and ch.leaves == [A, B] and ch.epoch == 3
    assert net.clients[A].dave.session is not None
    assert sorted(net.clients[A].dave.session.get_user_ids()) == [str(A), str(B)]


def test_transition_timeout_executes_without_the_missing_member() -> None:
    net = MemNet(["aead_aes256_gcm_rtpsize"])
    a = net.connect(A)
    # b never gets its op 30 welcome, so it never answers op 23.
    net.drop = lambda uid, frame: uid == B and isinstance(frame, bytes) and frame[2] == 30
    b = net.connect(B)
    ch = net.server.channel
    tid = ch.pending_transition
    assert tid is not None and ch.epoch == 1
    assert ch.on_transition_timeout(tid + 1) == []
    sends = ch.on_transition_timeout(tid)
    assert [(s.recipient, s.message.payload) for s in sends] == [
        (A, DaveExecuteTransition(tid)),
        (B, DaveExecuteTransition(tid)),
    ]
    assert ch.pending_transition is None
    assert a.dave.ready and not b.dave.ready


def test_bad_and_stale_commits_are_ignored_with_a_reason() -> None:
    ch = DaveChannel(CHANNEL)
    ch.on_join(A)
    ch.on_join(B)
    assert ch.on_commit_welcome(A, b"\x00\x01") == []
    assert ch.last_rejection is not None and "truncated" in ch.last_rejection
    sa = davey.DaveSession(1, A, CHANNEL)
    sa.set_external_sender(ch.sender.package())
    ch.on_key_package(A, sa.get_serialized_key_package())
    kp_b = _kp(B, ch)
    [send] = ch.on_key_package(B, kp_b)
    payload = send.message.payload
    assert isinstance(payload, bytes)
    cw = sa.process_proposals(davey.ProposalsOperationType.append, payload[1:])
    assert cw is not None and cw.welcome is not None
    # A commit from someone who was not asked to commit is refused.
    assert ch.on_commit_welcome(B, cw.commit + cw.welcome) == []
    assert ch.last_rejection is not None and "outstanding" in ch.last_rejection
    # A commit without the welcome for the added member is refused.
    assert ch.on_commit_welcome(A, cw.commit) == []
    assert ch.last_rejection is not None and "welcome" in ch.last_rejection
    sends = ch.on_commit_welcome(A, cw.commit + cw.welcome)
    assert _ops(sends) == [
        (A, Op.DAVE_MLS_ANNOUNCE_COMMIT_TRANSITION),
        (B, Op.DAVE_MLS_WELCOME),
    ]
    first = sends[0].message.payload
    assert isinstance(first, bytes) and first[:2] == b"\x00\x01" and first[2:] == cw.commit
    assert ch.on_commit_welcome(A, cw.commit + cw.welcome) == []
    assert ch.last_rejection is not None and "stale" in ch.last_rejection
    assert mls.split_commit_welcome(cw.commit).header.epoch == 0 and ch.epoch == 1


def test_after_a_downgrade_new_members_get_no_dave() -> None:
    ch = DaveChannel(CHANNEL)
    ch.on_join(A)
    sends = ch.prepare_downgrade()
    assert _ops(sends) == [(A, Op.DAVE_PREPARE_TRANSITION)]
    tid = ch.pending_transition
    assert tid is not None
    assert _ops(ch.on_transition_ready(A, tid)) == [(A, Op.DAVE_EXECUTE_TRANSITION)]
    assert ch.protocol_version == 0
    assert ch.on_join(B) == []
    assert ch.on_key_package(B, _kp(B, ch)) == []


@pytest.mark.parametrize("who", [A, B])
def test_leave_of_unknown_or_pending_members_is_harmless(who: int) -> None:
    ch = DaveChannel(CHANNEL)
    assert ch.on_leave(99) == []
    ch.on_join(A)
    ch.on_join(B)
    ch.on_key_package(A, _kp(A, ch))
    ch.on_key_package(B, _kp(B, ch))
    ch.on_leave(who)
    assert ch.in_group() == [] and not ch.established
    assert ch.on_invalid_commit_welcome(99, 1) == []
