"""MLS external sender against real davey members.

See docs/discord-voice.md "Serving the other side".
"""

from __future__ import annotations

import contextlib
import hashlib
import struct

import davey
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from audionode.voiceserver import mls
from audionode.voiceserver.mls import ExternalSender, MlsError
from audionode.voiceserver.mls_codec import Reader, varint, vec

CHANNEL = 0x0123456789ABCDEF
GID = mls.group_id_for(CHANNEL)
APPEND = davey.ProposalsOperationType.append
REVOKE = davey.ProposalsOperationType.revoke


def _member(uid: int, sender: ExternalSender) -> davey.DaveSession:
    s = davey.DaveSession(1, uid, CHANNEL)
    s.set_external_sender(sender.package())
    return s


def test_varint_vectors_follow_rfc9420() -> None:
    assert varint(0) == b"\x00" and varint(63) == b"\x3f"
    assert varint(64) == b"\x40\x40" and varint(16383) == b"\x7f\xff"
    assert varint(16384) == b"\x80\x00\x40\x00"
    for n in (0, 5, 63, 64, 300, 16383, 16384, 70000):
        r = Reader(vec(bytes(n)), "t")
        assert r.vec() == bytes(n) and r.done()
    with pytest.raises(MlsError, match="prefix 0b11"):
        Reader(b"\xc0", "t").varint()
    with pytest.raises(ValueError, match="outside"):
        varint(1 << 30)


def test_package_layout_and_group_id() -> None:
    es = ExternalSender(identity=b"srv")
    pkg = es.package()
    # 65 > 63, so the vector length takes the 2-byte form 0x40 0x41.
    assert pkg[:3] == b"\x40\x41\x04" and pkg[2:67] == es.public_key
    assert pkg[67:] == b"\x00\x01\x03srv"
    assert bytes.fromhex("0123456789abcdef") == GID


def test_add_proposal_bytes_and_signature_verify_independently() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    es = ExternalSender(key=key)
    kp = _member(2, es).get_serialized_key_package()
    msg = es.add_proposal(GID, 7, kp)
    head = b"\x00\x01\x00\x01"
    content = vec(GID) + struct.pack(">QBI", 7, 2, 0) + b"\x00" + b"\x02" + b"\x00\x01" + kp
    assert msg.startswith(head + content)
    sig = Reader(msg[len(head + content) :], "sig")
    signature = sig.vec()
    sig.end()
    tbs = vec(b"MLS 1.0 FramedContentTBS") + vec(head + content)
    key.public_key().verify(signature, tbs, ec.ECDSA(hashes.SHA256()))
    label = vec(b"MLS 1.0 Proposal Reference")
    assert mls.proposal_ref(msg) == hashlib.sha256(label + vec(msg[2:])).digest()
    rm = es.remove_proposal(GID, 3, 5)
    assert b"\x02\x00\x03\x00\x00\x00\x05" in rm


def test_key_package_identity_is_the_user_id() -> None:
    es = ExternalSender()
    kp = _member(987654321, es).get_serialized_key_package()
    assert kp[:4] == bytes.fromhex("00010002")
    info = mls.parse_key_package(kp)
    assert info.user_id == 987654321 and info.ref == mls.key_package_ref(kp)
    with pytest.raises(MlsError, match="suite 2"):
        mls.parse_key_package(b"\x00\x01\x00\x01" + kp[4:])
    with pytest.raises(MlsError, match="trailing"):
        mls.parse_key_package(kp + b"\x00")
    with pytest.raises(MlsError, match="truncated"):
        mls.parse_key_package(kp[:-3])


def test_two_members_then_a_third_with_competing_commits_then_a_remove() -> None:
    es = ExternalSender()
    a, b, c = _member(1, es), _member(2, es), _member(3, es)
    kp_b = b.get_serialized_key_package()
    add_b = es.add_proposal(GID, 0, kp_b)
    cw = a.process_proposals(APPEND, mls.proposals_payload(0, [add_b])[1:], [1, 2])
    assert cw is not None and cw.welcome is not None
    split = mls.split_commit_welcome(cw.commit + cw.welcome)
    assert (split.commit, split.welcome) == (cw.commit, cw.welcome)
    h = split.header
    assert (h.group_id, h.epoch, h.sender_type, h.sender_index) == (GID, 0, 1, 0)
    assert h.proposal_refs == (mls.proposal_ref(add_b),) and h.inline_proposals == 0
    assert mls.welcome_recipients(cw.welcome) == [mls.key_package_ref(kp_b)]
    a.process_commit(split.commit)
    b.process_welcome(split.welcome)
    assert a.epoch == b.epoch == 1 and a.voice_privacy_code == b.voice_privacy_code

    add_c = es.add_proposal(GID, 1, c.get_serialized_key_package())
    payload = mls.proposals_payload(0, [add_c])[1:]
    cw_a = a.process_proposals(APPEND, payload, [1, 2, 3])
    cw_b = b.process_proposals(APPEND, payload, [1, 2, 3])
    assert cw_a is not None and cw_b is not None and cw_b.welcome is not None
    win = mls.split_commit_welcome(cw_b.commit + cw_b.welcome)
    assert (win.header.epoch, win.header.sender_index) == (1, 1)
    for member in (a, b):
        member.process_commit(win.commit)
    c.process_welcome(win.welcome or b"")
    assert a.epoch == b.epoch == c.epoch == 2 and c.own_leaf_index == 2

    remove_b = es.remove_proposal(GID, 2, 1)
    payload = mls.proposals_payload(0, [remove_b])[1:]
    cw_a = a.process_proposals(APPEND, payload, [1, 3])
    c.process_proposals(APPEND, payload, [1, 3])
    assert cw_a is not None and cw_a.welcome is None
    rm = mls.split_commit_welcome(cw_a.commit)
    assert rm.welcome is None and rm.header.has_path
    a.process_commit(rm.commit)
    c.process_commit(rm.commit)
    assert sorted(a.get_user_ids()) == sorted(c.get_user_ids()) == ["1", "3"]
    assert a.decrypt(3, davey.MediaType.audio, c.encrypt_opus(b"\xfcok")) == b"\xfcok"


def test_unexpected_user_is_rejected_by_members() -> None:
    es = ExternalSender()
    a, b = _member(1, es), _member(555, es)
    add = es.add_proposal(GID, 0, b.get_serialized_key_package())
    with pytest.raises(Exception, match="555"):
        a.process_proposals(APPEND, mls.proposals_payload(0, [add])[1:], [1, 2])


def test_revoke_uses_proposal_refs() -> None:
    es = ExternalSender()
    a, b, c = _member(1, es), _member(2, es), _member(3, es)
    add_b = es.add_proposal(GID, 0, b.get_serialized_key_package())
    add_c = es.add_proposal(GID, 0, c.get_serialized_key_package())
    a.process_proposals(APPEND, mls.proposals_payload(0, [add_b, add_c])[1:])
    revoke = mls.proposals_payload(1, mls.revoke_items([mls.proposal_ref(add_c)]))
    cw = a.process_proposals(REVOKE, revoke[1:])
    assert cw is not None
    assert mls.split_commit_welcome(cw.commit).header.proposal_refs == (mls.proposal_ref(add_b),)
    with pytest.raises(ValueError, match="optype"):
        mls.proposals_payload(2, [])


def test_split_rejects_non_commits_with_reasons() -> None:
    es = ExternalSender()
    add = es.add_proposal(GID, 0, b"\x00")
    with pytest.raises(MlsError, match="content_type must be 3"):
        mls.split_commit_welcome(add)
    with pytest.raises(MlsError, match="PublicMessage"):
        mls.split_commit_welcome(b"\x00\x01\x00\x02")
    with pytest.raises(MlsError, match="truncated"):
        mls.split_commit_welcome(b"")


@given(st.binary(max_size=300))
def test_parsers_raise_only_mls_error(data: bytes) -> None:
    for parse in (mls.split_commit_welcome, mls.parse_key_package, mls.welcome_recipients):
        with contextlib.suppress(MlsError):
            parse(data)


@given(st.binary(max_size=40))
def test_split_of_commit_prefix_plus_junk_raises_only_mls_error(junk: bytes) -> None:
    prefix = b"\x00\x01\x00\x01" + vec(GID) + bytes(8) + b"\x01" + bytes(4) + b"\x00\x03"
    with contextlib.suppress(MlsError):
        mls.split_commit_welcome(prefix + junk)
