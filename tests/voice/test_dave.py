"""DaveState (docs/discord-voice.md §2.7) driven by a real MLS external sender and davey peers."""

from __future__ import annotations

import contextlib
import os
import struct

import davey
import pytest
from hypothesis import given
from hypothesis import strategies as st

from audionode.voice.dave import DaveError, DaveState
from audionode.voice.dave_frame import DaveFrameError, is_dave_frame, parse_footer
from audionode.voice.opcodes import (
    DaveExecuteTransition,
    DaveInvalidCommitWelcome,
    DavePrepareEpoch,
    DavePrepareTransition,
    DaveTransitionReady,
    Op,
    Outgoing,
)
from audionode.voice.packetizer import SILENCE_FRAME
from audionode.voiceserver import mls

CHANNEL = 4242
GID = mls.group_id_for(CHANNEL)
BOT, USER = 1001, 2002


def _only(out: list[Outgoing], op: Op) -> Outgoing:
    assert [m.op for m in out] == [op], out
    return out[0]


def _tid(tid: int, body: bytes) -> bytes:
    return struct.pack(">H", tid) + body


def _pair() -> tuple[DaveState, DaveState, mls.ExternalSender]:
    """Bot and user in one group at epoch 1 (user welcomed), transition 1 executed."""
    es = mls.ExternalSender()
    bot, user = DaveState(BOT, CHANNEL), DaveState(USER, CHANNEL)
    bot.on_clients_connect([str(USER)])
    user.on_clients_connect([str(BOT)])
    for s in (bot, user):
        s.on_external_sender(es.package())
    _only(bot.on_session_description(1), Op.DAVE_MLS_KEY_PACKAGE)
    kp_user = _only(user.on_session_description(1), Op.DAVE_MLS_KEY_PACKAGE).payload
    assert isinstance(kp_user, bytes)
    props = mls.proposals_payload(0, [es.add_proposal(GID, 0, kp_user)])
    cw = _only(bot.on_proposals(props), Op.DAVE_MLS_COMMIT_WELCOME).payload
    assert isinstance(cw, bytes)
    split = mls.split_commit_welcome(cw)
    assert split.welcome is not None
    r1 = _only(bot.on_announce_commit(_tid(1, split.commit)), Op.DAVE_TRANSITION_READY)
    r2 = _only(user.on_welcome(_tid(1, split.welcome)), Op.DAVE_TRANSITION_READY)
    assert r1.payload == r2.payload == DaveTransitionReady(1)
    for s in (bot, user):
        assert s.on_execute_transition(1) == []
    return bot, user, es


def test_external_sender_before_op4_is_buffered_and_key_package_follows_op4() -> None:
    es = mls.ExternalSender()
    s = DaveState(BOT, CHANNEL)
    assert s.on_external_sender(es.package()) == []
    assert s.session is None
    kp = _only(s.on_session_description(1), Op.DAVE_MLS_KEY_PACKAGE).payload
    assert isinstance(kp, bytes) and kp[:4] == bytes.fromhex("00010002")
    assert mls.parse_key_package(kp).user_id == BOT
    assert s.session is not None and s.session.status == davey.SessionStatus.pending
    assert s.key_packages_sent == 1 and not s.ready


def test_no_dave_means_no_session_and_plain_frames() -> None:
    s = DaveState(BOT, CHANNEL)
    assert s.on_session_description(0) == []
    assert s.session is None and s.encrypt_opus(b"\xfcabc") == b"\xfcabc"
    assert s.on_proposals(b"\x00\x00") == [] and s.on_welcome(b"\x00\x01xx") == []


def test_alone_in_the_channel_sends_plain_opus() -> None:
    s = DaveState(BOT, CHANNEL)
    s.on_external_sender(mls.ExternalSender().package())
    s.on_session_description(1)
    frame = b"\xfc" + os.urandom(50)
    assert s.encrypt_opus(frame) == frame and s.encrypt_opus(SILENCE_FRAME) == SILENCE_FRAME


def test_group_formation_then_e2ee_frames_with_the_spec_footer() -> None:
    bot, user, _ = _pair()
    assert bot.ready and user.ready and bot.epoch == user.epoch == 1
    assert bot.voice_privacy_code == user.voice_privacy_code is not None
    nonces = []
    for size in (101, 20, 300):
        opus = b"\xfc" + os.urandom(size - 1)
        frame = bot.encrypt_opus(opus)
        footer = parse_footer(frame)
        assert frame[-2:] == b"\xfa\xfa" and len(frame) > len(opus)
        assert footer.supplemental_size == 8 + footer.nonce_size + 0 + 1 + 2
        assert footer.ciphertext_size == len(opus) and footer.ranges == b""
        assert user.decrypt(BOT, frame) == opus
        nonces.append(footer.nonce)
    assert nonces == sorted(nonces) and len(set(nonces)) == 3
    assert len(bot.encrypt_opus(b"\xfc" + bytes(100))) == 113  # §2.1 measurement
    assert bot.encrypt_opus(SILENCE_FRAME) == SILENCE_FRAME
    assert user.decrypt(BOT, SILENCE_FRAME) == SILENCE_FRAME
    with pytest.raises(DaveError, match="cannot decrypt"):
        user.decrypt(BOT, bytes(20) + b"\x01\x0c\xfa\xfa")


def test_unrecognized_user_add_is_rejected() -> None:
    es = mls.ExternalSender()
    bot, stranger = DaveState(BOT, CHANNEL), DaveState(555, CHANNEL)
    for s in (bot, stranger):
        s.on_external_sender(es.package())
    bot.on_session_description(1)
    kp = stranger.on_session_description(1)[0].payload
    assert isinstance(kp, bytes)
    props = mls.proposals_payload(0, [es.add_proposal(GID, 0, kp)])
    with pytest.raises(DaveError, match="555"):
        bot.on_proposals(props)
    bot.on_clients_connect(["555"])
    bot.on_client_disconnect("555")
    with pytest.raises(DaveError, match="rejected"):
        bot.on_proposals(props)


def test_invalid_commit_sends_op31_and_a_new_key_package() -> None:
    bot, _, _ = _pair()
    out = bot.on_announce_commit(_tid(7, b"garbage commit"))
    assert [m.op for m in out] == [Op.DAVE_MLS_INVALID_COMMIT_WELCOME, Op.DAVE_MLS_KEY_PACKAGE]
    assert out[0].payload == DaveInvalidCommitWelcome(7)
    assert bot.key_packages_sent == 2 and not bot.ready
    assert bot.encrypt_opus(b"\xfcplain") == b"\xfcplain"
    out = bot.on_welcome(_tid(8, b"garbage welcome"))
    assert out[0].payload == DaveInvalidCommitWelcome(8) and bot.key_packages_sent == 3


def test_downgrade_then_plain_frames_accepted_by_the_receiver() -> None:
    bot, user, _ = _pair()
    ready = bot.handle(Op.DAVE_PREPARE_TRANSITION, DavePrepareTransition(5, 0))
    assert ready == [Outgoing(Op.DAVE_TRANSITION_READY, DaveTransitionReady(5))]
    user.on_prepare_transition(5, 0)
    assert bot.encrypt_opus(b"\xfcx")[-2:] == b"\xfa\xfa"  # still encrypting until execute
    assert bot.handle(Op.DAVE_EXECUTE_TRANSITION, DaveExecuteTransition(5)) == []
    user.on_execute_transition(5)
    assert bot.downgraded and bot.protocol_version == 0 and not bot.ready
    plain = b"\xfc" + os.urandom(40)
    assert bot.encrypt_opus(plain) == plain and not is_dave_frame(plain)
    assert user.decrypt(BOT, plain) == plain


def test_sole_member_reset_sends_a_new_key_package_and_executes_tid0() -> None:
    bot, _, _ = _pair()
    out = bot.handle(Op.DAVE_PREPARE_EPOCH, DavePrepareEpoch(1, 1))
    kp = _only(out, Op.DAVE_MLS_KEY_PACKAGE).payload
    assert isinstance(kp, bytes) and mls.parse_key_package(kp).user_id == BOT
    assert bot.on_prepare_transition(0, 1) == []
    assert 0 not in bot.pending_transitions and bot.protocol_version == 1
    assert bot.on_prepare_epoch(1, 2) == []  # epoch != 1: nothing to do
    assert bot.key_packages_sent == 2


def test_unknown_execute_and_malformed_payloads() -> None:
    bot, _, _ = _pair()
    assert bot.on_execute_transition(99) == [] and bot.protocol_version == 1
    with pytest.raises(DaveError, match="optype"):
        bot.on_proposals(b"\x05")
    with pytest.raises(DaveError, match="optype"):
        bot.on_proposals(b"")
    with pytest.raises(DaveError, match="u16 transition id"):
        bot.on_announce_commit(b"\x01")
    with pytest.raises(DaveError, match="external sender rejected"):
        bot.on_external_sender(b"junk")
    assert bot.handle(Op.SPEAKING, None) == []


def test_decrypt_without_group_passes_plain_and_refuses_dave_frames() -> None:
    s = DaveState(USER, CHANNEL)
    assert s.decrypt(BOT, b"\xfcplain") == b"\xfcplain"
    with pytest.raises(DaveError, match="no established group"):
        s.decrypt(BOT, bytes(20) + b"\x01\x0c\xfa\xfa")


@given(st.binary(max_size=64))
def test_footer_parser_raises_only_its_error(data: bytes) -> None:
    with contextlib.suppress(DaveFrameError):
        footer = parse_footer(data)
        assert footer.ciphertext_size + footer.supplemental_size == len(data)
