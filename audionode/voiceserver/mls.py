"""The voice server's MLS external sender (RFC 9420 subset for DAVE v1), pure Python.

Facts: ``docs/discord-voice.md`` "Serving the other side" (the external sender) and §2.2 (op 25,
27, 28 layouts). Ciphersuite 2 (P-256, SHA-256, ECDSA DER signatures). The server never holds
group secrets: it signs Add/Remove proposals as the group's single external sender, and reads just
enough of the members' commits and welcomes to route them (epoch, committed proposal refs, welcome
recipients). Every parser raises :class:`MlsError` on malformed input and nothing else.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from typing import Final, NamedTuple

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audionode.voiceserver.mls_codec import MlsError, Reader, u16, vec

__all__ = [
    "CommitHeader",
    "ExternalSender",
    "KeyPackageInfo",
    "MlsError",
    "SplitCommit",
    "group_id_for",
    "key_package_ref",
    "parse_key_package",
    "proposal_ref",
    "proposals_payload",
    "split_commit_welcome",
    "welcome_recipients",
]

MLS10: Final = 1
CIPHERSUITE: Final = 2  # DHKEMP256_AES128GCM_SHA256_P256 (§2.1)
WIRE_PUBLIC_MESSAGE: Final = 1
SENDER_MEMBER: Final = 1
SENDER_EXTERNAL: Final = 2
CONTENT_PROPOSAL: Final = 2
CONTENT_COMMIT: Final = 3
PROPOSAL_ADD: Final = 1
PROPOSAL_REMOVE: Final = 3
CREDENTIAL_BASIC: Final = 1
OPTYPE_APPEND: Final = 0
OPTYPE_REVOKE: Final = 1
_SIGN_LABEL: Final = b"MLS 1.0 FramedContentTBS"


def group_id_for(channel_id: int) -> bytes:
    """DAVE's MLS group id: the channel id as a big-endian u64 (§2.1)."""
    return channel_id.to_bytes(8, "big")


def _ref_hash(label: bytes, value: bytes) -> bytes:
    """RFC 9420 §5.2 RefHash with SHA-256."""
    return hashlib.sha256(vec(label) + vec(value)).digest()


def key_package_ref(key_package: bytes) -> bytes:
    """KeyPackageRef of a raw KeyPackage (how a Welcome names its recipients)."""
    return _ref_hash(b"MLS 1.0 KeyPackage Reference", key_package)


def proposal_ref(message: bytes) -> bytes:
    """ProposalRef of a PublicMessage proposal we built: RefHash over its AuthenticatedContent
    (the MLSMessage minus its 2-byte version field). Commits reference proposals by it."""
    return _ref_hash(b"MLS 1.0 Proposal Reference", message[2:])


class ExternalSender:
    """The group's single external sender (one per channel, or one per server).

    ``package()`` is the op 25 payload; ``add_proposal``/``remove_proposal`` return signed
    MLSMessages to wrap with :func:`proposals_payload` into an op 27 payload.
    """

    def __init__(
        self, identity: bytes = b"", key: ec.EllipticCurvePrivateKey | None = None
    ) -> None:
        self._key = key if key is not None else ec.generate_private_key(ec.SECP256R1())
        self.identity = identity
        self.public_key = self._key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )

    def package(self) -> bytes:
        """ExternalSender struct: ``vec(pub65) ‖ u16 basic ‖ vec(identity)`` (op 25 payload)."""
        return vec(self.public_key) + u16(CREDENTIAL_BASIC) + vec(self.identity)

    def add_proposal(self, group_id: bytes, epoch: int, key_package: bytes) -> bytes:
        """A signed Add proposal for the raw op-26 ``key_package`` at ``epoch``."""
        return self._proposal(group_id, epoch, u16(PROPOSAL_ADD) + key_package)

    def remove_proposal(self, group_id: bytes, epoch: int, leaf_index: int) -> bytes:
        """A signed Remove proposal for the member at ``leaf_index``."""
        return self._proposal(group_id, epoch, u16(PROPOSAL_REMOVE) + struct.pack(">I", leaf_index))

    def _proposal(self, group_id: bytes, epoch: int, proposal: bytes) -> bytes:
        content = (
            vec(group_id)
            + struct.pack(">QBI", epoch, SENDER_EXTERNAL, 0)
            + vec(b"")
            + bytes([CONTENT_PROPOSAL])
            + proposal
        )
        head = u16(MLS10) + u16(WIRE_PUBLIC_MESSAGE)
        # External senders sign FramedContentTBS without GroupContext and carry no membership tag.
        tbs = vec(_SIGN_LABEL) + vec(head + content)
        signature = self._key.sign(tbs, ec.ECDSA(hashes.SHA256()))
        return head + content + vec(signature)


def proposals_payload(optype: int, items: Iterable[bytes]) -> bytes:
    """op 27 payload: ``u8 optype ‖ vec(concat(items))``. For append, ``items`` are MLSMessages;
    for revoke they are ``vec(proposal_ref)`` each (use :func:`revoke_items`)."""
    if optype not in (OPTYPE_APPEND, OPTYPE_REVOKE):
        raise ValueError(f"optype must be 0 (append) or 1 (revoke), got {optype}")
    return bytes([optype]) + vec(b"".join(items))


def revoke_items(refs: Iterable[bytes]) -> list[bytes]:
    """Encode proposal refs for a revoke op 27 (each ProposalRef is itself a ``vec``)."""
    return [vec(r) for r in refs]


class KeyPackageInfo(NamedTuple):
    """What the server checks in an op 26 key package."""

    user_id: int
    ref: bytes


def parse_key_package(key_package: bytes) -> KeyPackageInfo:
    """Check version/suite and read the credential identity (the user id, u64 BE, §2.1)."""
    r = Reader(key_package, "KeyPackage")
    version, suite = r.u16(), r.u16()
    if (version, suite) != (MLS10, CIPHERSUITE):
        raise MlsError(f"KeyPackage must be mls10 suite 2, got version {version} suite {suite}")
    r.vec()  # init_key
    identity = r.leaf_node()
    r.vec()  # extensions
    r.vec()  # signature
    r.end()
    if len(identity) != 8:
        raise MlsError(f"credential identity must be an 8-byte user id, got {len(identity)} bytes")
    return KeyPackageInfo(int.from_bytes(identity, "big"), key_package_ref(key_package))


class CommitHeader(NamedTuple):
    """The routing facts of a commit: who made it, at which epoch, which proposals it commits."""

    group_id: bytes
    epoch: int
    sender_type: int
    sender_index: int | None
    proposal_refs: tuple[bytes, ...]
    inline_proposals: int
    has_path: bool


class SplitCommit(NamedTuple):
    commit: bytes
    welcome: bytes | None
    header: CommitHeader


def split_commit_welcome(data: bytes) -> SplitCommit:
    """Split an op 28 payload into the commit MLSMessage and the optional trailing Welcome."""
    r = Reader(data, "CommitWelcome")
    if (r.u16(), r.u16()) != (MLS10, WIRE_PUBLIC_MESSAGE):
        raise MlsError("commit must be an mls10 PublicMessage")
    group_id, epoch = r.vec(), r.u64()
    sender_type = r.u8()
    sender_index = r.u32() if sender_type in (SENDER_MEMBER, SENDER_EXTERNAL) else None
    r.vec()  # authenticated_data
    if (content_type := r.u8()) != CONTENT_COMMIT:
        raise MlsError(f"content_type must be 3 (commit), got {content_type}")
    refs, inline = _proposal_refs(r.vec())
    has_path = r.optional()
    if has_path:
        r.leaf_node()
        r.vec()  # UpdatePathNode nodes
    r.vec()  # signature
    r.vec()  # confirmation_tag
    if sender_type == SENDER_MEMBER:
        r.vec()  # membership_tag
    end = r.pos
    header = CommitHeader(group_id, epoch, sender_type, sender_index, refs, inline, has_path)
    return SplitCommit(data[:end], data[end:] or None, header)


def _proposal_refs(raw: bytes) -> tuple[tuple[bytes, ...], int]:
    """ProposalOrRef list: refs are collected; parsing stops at the first inline proposal (we do
    not need their contents, and their length depends on the proposal type)."""
    r = Reader(raw, "Commit.proposals")
    refs: list[bytes] = []
    inline = 0
    while not r.done():
        kind = r.u8()
        if kind == 2:
            refs.append(r.vec())
        elif kind == 1:
            inline += 1
            break
        else:
            raise MlsError(f"ProposalOrRef type must be 1 or 2, got {kind}")
    return tuple(refs), inline


def welcome_recipients(welcome: bytes) -> list[bytes]:
    """KeyPackageRefs named in a Welcome's ``secrets`` (compare with :func:`key_package_ref`)."""
    r = Reader(welcome, "Welcome")
    if (suite := r.u16()) != CIPHERSUITE:
        raise MlsError(f"Welcome cipher_suite must be 2, got {suite}")
    secrets = Reader(r.vec(), "Welcome.secrets")
    out: list[bytes] = []
    while not secrets.done():
        out.append(secrets.vec())  # new_member
        secrets.vec()  # kem_output
        secrets.vec()  # ciphertext
    r.vec()  # encrypted_group_info
    r.end()
    return out
