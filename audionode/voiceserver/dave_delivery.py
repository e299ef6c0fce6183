"""The voice server's DAVE delivery service for one channel, sans-I/O.

Facts: docs/discord-voice.md §2.2 (flow) and "Serving the other side" (steps 4, 6-8, epoch
bookkeeping). The server is the MLS Delivery Service and the group's only external sender: it
proposes Add/Remove, members commit, the first valid commit per epoch wins, op 29/30 carry it,
op 23 readiness leads to op 22 execute.

Rules this implementation follows (and why):
- Proposals are signed at the group's *current* epoch (0 while no group exists).
- While no group exists, only one member (the earliest with a key package, the "creator")
  receives Add proposals: every pending client has its own epoch-0 group, and only one of them
  may become the real one. Once a group exists, *all* its members receive every proposal (a
  member must hold a proposal to process a commit that references it).
- At most one proposal batch per epoch: a member that received two batches would hold two
  commits for one epoch, and davey merges its *latest* pending commit when it sees any own
  commit, which would fork the group. Changes that arrive meanwhile wait for the next epoch.
- The server tracks the ratchet tree's leaves itself (removes blank a leaf, adds fill the
  leftmost blank leaf in commit order, trailing blanks are truncated: RFC 9420 §12.3/§7.7) so
  that it can address Remove proposals.

Drive it with the ``on_*`` methods; each returns ``[(recipient_user_id, Outgoing), ...]`` for the
I/O driver to frame with the recipient's ``ServerGateway.send`` and send, in order.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final, NamedTuple

from audionode.voice.opcodes import (
    CloseCode,
    DaveExecuteTransition,
    DavePrepareTransition,
    Op,
    Outgoing,
)
from audionode.voiceserver.mls import (
    CommitHeader,
    ExternalSender,
    MlsError,
    group_id_for,
    parse_key_package,
    proposal_ref,
    proposals_payload,
    split_commit_welcome,
    welcome_recipients,
)

DAVE_PROTOCOL_VERSION: Final = 1


class Send(NamedTuple):
    recipient: int
    message: Outgoing


@dataclass
class _Member:
    user_id: int
    key_package: bytes | None = None
    kp_ref: bytes | None = None
    leaf: int | None = None  # set while the member is in the group


@dataclass
class _Proposal:
    kind: str  # "add" | "remove"
    user_id: int | None = None
    leaf: int | None = None
    kp_ref: bytes | None = None


def identify_close_code(max_dave_protocol_version: int, *, dave_required: bool) -> int | None:
    """Policy for op 0: ``4017`` when DAVE is required and the client cannot do it, else None."""
    if dave_required and max_dave_protocol_version < DAVE_PROTOCOL_VERSION:
        return int(CloseCode.DAVE_REQUIRED)
    return None


def negotiate_protocol_version(max_dave_protocol_version: int) -> int:
    """op 4's ``dave_protocol_version``: the lowest version both sides speak (§2.2)."""
    return max(0, min(max_dave_protocol_version, DAVE_PROTOCOL_VERSION))


class DaveChannel:
    """DAVE delivery for one voice channel (one MLS group). Not thread-safe.

    Call :meth:`on_join` after sending a member op 4 with DAVE on, then feed its op 26/28/23/31
    and call :meth:`on_leave` when it disconnects. When :attr:`pending_transition` becomes
    non-None, arm a timer and call :meth:`on_transition_timeout` if it is still pending then.
    Messages are returned, never sent; :attr:`last_rejection` explains the last ignored input.
    """

    def __init__(self, channel_id: int, sender: ExternalSender | None = None) -> None:
        self.channel_id = channel_id
        self.group_id = group_id_for(channel_id)
        self.sender = sender if sender is not None else ExternalSender()
        self.members: dict[int, _Member] = {}
        self.leaves: list[int | None] = []
        """Leaf index → user id of the group as the server tracks it (None = blank)."""
        self.epoch = 0
        self.protocol_version = DAVE_PROTOCOL_VERSION
        """What op 4 should announce to new members (0 after a downgrade executed)."""
        self.pending_transition: int | None = None
        self._pending_version = DAVE_PROTOCOL_VERSION
        self.last_rejection: str | None = None
        self._waiting: set[int] = set()
        self._proposed: dict[bytes, _Proposal] = {}
        self._removals: set[int] = set()
        self._batch_to: frozenset[int] = frozenset()
        self._last_tid = 0

    # --- views -----------------------------------------------------------------------------

    @property
    def established(self) -> bool:
        """True once a commit created the group (it may later hold a single member)."""
        return self.epoch > 0

    def in_group(self) -> list[int]:
        """Members currently in the group (sorted by leaf)."""
        return [m.user_id for m in sorted(self._in_group(), key=lambda m: m.leaf or 0)]

    def _in_group(self) -> list[_Member]:
        return [m for m in self.members.values() if m.leaf is not None]

    def _committers(self) -> frozenset[int]:
        if self.established:
            return frozenset(m.user_id for m in self._in_group())
        creator = next((m for m in self.members.values() if m.key_package is not None), None)
        return frozenset() if creator is None else frozenset({creator.user_id})

    # --- inputs ----------------------------------------------------------------------------

    def on_join(self, user_id: int) -> list[Send]:
        """A member got op 4 with DAVE on: send it op 25 (the external sender package)."""
        self.members[user_id] = _Member(user_id)
        if not self.protocol_version:
            return []
        return [Send(user_id, Outgoing(Op.DAVE_MLS_EXTERNAL_SENDER, self.sender.package()))]

    def on_key_package(self, user_id: int, key_package: bytes) -> list[Send]:
        """op 26: validate (suite, identity == sender) and propose its Add when possible."""
        member = self.members.get(user_id)
        if member is None:
            return self._reject(f"key package from {user_id}, who has not joined")
        try:
            info = parse_key_package(key_package)
        except MlsError as exc:
            return self._reject(f"key package from {user_id}: {exc}")
        if info.user_id != user_id:
            return self._reject(f"key package of {user_id} names user {info.user_id}")
        if member.leaf is not None:  # a re-init without op 31: its old leaf is dead
            self._drop_leaf(member)
        member.key_package, member.kp_ref = key_package, info.ref
        return self._propose()

    def on_commit_welcome(self, user_id: int, data: bytes) -> list[Send]:
        """op 28: the first valid commit of the current epoch wins; later ones are ignored."""
        try:
            split = split_commit_welcome(data)
        except MlsError as exc:
            return self._reject(f"commit from {user_id}: {exc}")
        reason = self._validate(user_id, split.header, split.welcome)
        if reason is not None:
            return self._reject(f"commit from {user_id}: {reason}")
        return self._apply(user_id, split.commit, split.welcome, split.header.proposal_refs)

    def on_transition_ready(self, user_id: int, transition_id: int) -> list[Send]:
        """op 23: when every awaited member is ready, op 22 Execute to the group."""
        if transition_id != self.pending_transition:
            return []
        self._waiting.discard(user_id)
        return self._execute() if not self._waiting else []

    def on_transition_timeout(self, transition_id: int) -> list[Send]:
        """The caller's readiness timer for ``transition_id`` fired: execute anyway."""
        return self._execute() if transition_id == self.pending_transition else []

    def on_invalid_commit_welcome(self, user_id: int, transition_id: int) -> list[Send]:
        """op 31: the member reset its state; drop its leaf, re-add it on its next op 26."""
        member = self.members.get(user_id)
        if member is None:
            return []
        member.key_package = member.kp_ref = None
        out: list[Send] = []
        if member.leaf is not None:
            self._drop_leaf(member)
        if transition_id == self.pending_transition:
            out += self.on_transition_ready(user_id, transition_id)
        return out + self._propose()

    def on_leave(self, user_id: int) -> list[Send]:
        """The member disconnected: Remove proposal for its leaf (if any) to the rest."""
        member = self.members.pop(user_id, None)
        if member is None:
            return []
        out: list[Send] = []
        if member.leaf is not None:
            self._drop_leaf(member)
        if self.pending_transition is not None and user_id in self._waiting:
            out += self.on_transition_ready(user_id, self.pending_transition)
        return out + self._propose()

    # --- internals -------------------------------------------------------------------------

    def _reject(self, reason: str) -> list[Send]:
        self.last_rejection = reason
        return []

    def _drop_leaf(self, member: _Member) -> None:
        """The member's leaf is dead (left, or re-initialized its MLS state): remove it by
        proposal, or forget the group when nobody who can commit is left in it."""
        assert member.leaf is not None
        self._removals.add(member.leaf)
        member.leaf = None
        if not self._in_group():
            self._reset_group()

    def _reset_group(self) -> None:
        """Nobody is left in the group: the next commit starts a new one at epoch 0."""
        self.epoch, self.leaves = 0, []
        self._removals.clear()
        self._proposed.clear()
        self._batch_to = frozenset()
        self.pending_transition, self._waiting = None, set()

    def _propose(self) -> list[Send]:
        if not self.protocol_version:
            return []
        committers = self._committers()
        if self._proposed and self._batch_to & committers:
            return []  # one batch per epoch, and some of its recipients can still commit it
        self._proposed.clear()
        msgs: list[bytes] = []
        for leaf in sorted(self._removals):
            msg = self.sender.remove_proposal(self.group_id, self.epoch, leaf)
            self._proposed[proposal_ref(msg)] = _Proposal("remove", leaf=leaf)
            msgs.append(msg)
        for m in self.members.values():
            if m.key_package is None or m.leaf is not None or m.user_id in committers:
                continue
            msg = self.sender.add_proposal(self.group_id, self.epoch, m.key_package)
            self._proposed[proposal_ref(msg)] = _Proposal("add", m.user_id, kp_ref=m.kp_ref)
            msgs.append(msg)
        if not msgs or not committers:
            self._proposed.clear()
            return []
        self._batch_to = committers
        payload = proposals_payload(0, msgs)
        return [Send(u, Outgoing(Op.DAVE_MLS_PROPOSALS, payload)) for u in sorted(committers)]

    def _validate(self, user_id: int, h: CommitHeader, welcome: bytes | None) -> str | None:
        """Why this commit cannot be the epoch's winner, or None when it can."""
        if h.group_id != self.group_id:
            return f"group id {h.group_id.hex()} is not this channel's {self.group_id.hex()}"
        if h.epoch != self.epoch:
            return f"made at epoch {h.epoch} but the group is at epoch {self.epoch} (stale)"
        if user_id not in self._batch_to or not self._proposed:
            return "no proposals are outstanding for this member"
        member = self.members[user_id]
        leaf = member.leaf if self.established else 0
        if h.sender_type != 1 or h.sender_index != leaf:
            return f"sender {h.sender_type}/{h.sender_index} is not member leaf {leaf}"
        if h.inline_proposals or not h.proposal_refs:
            return "must commit our proposals by reference, and at least one"
        if any(r not in self._proposed for r in h.proposal_refs):
            return "references proposals we did not send at this epoch"
        committed = [self._proposed[r] for r in h.proposal_refs]
        adds = {p.kp_ref for p in committed if p.kind == "add"}
        if not adds:
            return None
        try:
            named = set(welcome_recipients(welcome)) if welcome else set()
        except MlsError as exc:
            return f"welcome: {exc}"
        return None if adds <= named else "welcome does not cover every added member"

    def _apply(
        self, committer: int, commit: bytes, welcome: bytes | None, refs: tuple[bytes, ...]
    ) -> list[Send]:
        out = self._execute() if self.pending_transition is not None else []
        if not self.established:
            self.leaves = [committer]
            self.members[committer].leaf = 0
        existing = self.in_group()
        welcomed = self._apply_proposals([self._proposed[r] for r in refs])
        self.epoch += 1
        self._proposed.clear()
        self._batch_to = frozenset()
        self._last_tid = self._last_tid % 0xFFFF + 1  # 1..65535: tid 0 means "no transition"
        tid = self._last_tid
        head = struct.pack(">H", tid)
        out += [
            Send(u, Outgoing(Op.DAVE_MLS_ANNOUNCE_COMMIT_TRANSITION, head + commit))
            for u in existing
        ]
        if welcome is not None:
            out += [Send(u, Outgoing(Op.DAVE_MLS_WELCOME, head + welcome)) for u in welcomed]
        self.pending_transition, self._waiting = tid, {*existing, *welcomed}
        self._pending_version = self.protocol_version
        return out + self._propose()

    def _apply_proposals(self, proposals: list[_Proposal]) -> list[int]:
        """Update the tracked tree (removes, truncation, then adds); return welcomed users."""
        for p in proposals:
            if p.kind == "remove" and p.leaf is not None and p.leaf < len(self.leaves):
                self.leaves[p.leaf] = None
                self._removals.discard(p.leaf)
        while self.leaves and self.leaves[-1] is None:
            self.leaves.pop()
        welcomed: list[int] = []
        for p in proposals:
            if p.kind != "add" or p.user_id is None:
                continue
            idx = next((i for i, u in enumerate(self.leaves) if u is None), len(self.leaves))
            if idx == len(self.leaves):
                self.leaves.append(None)
            self.leaves[idx] = p.user_id
            member = self.members.get(p.user_id)
            if member is not None and member.kp_ref == p.kp_ref and member.leaf is None:
                member.leaf = idx
                welcomed.append(p.user_id)
            else:  # left, or re-keyed, since we proposed it: that leaf is a ghost
                self._removals.add(idx)
        return welcomed

    def _execute(self) -> list[Send]:
        tid = self.pending_transition
        if tid is None:
            return []
        self.pending_transition, self._waiting = None, set()
        msg = Outgoing(Op.DAVE_EXECUTE_TRANSITION, DaveExecuteTransition(tid))
        if self._pending_version:
            return [Send(u, msg) for u in self.in_group()]
        # A downgrade executed: E2EE is off for this channel, the group is gone.
        self.protocol_version = 0
        for m in self.members.values():
            m.leaf = m.key_package = m.kp_ref = None
        self._reset_group()
        return [Send(u, msg) for u in sorted(self.members)]

    def prepare_downgrade(self) -> list[Send]:
        """Ask every member to stop E2EE (op 21, protocol_version 0), e.g. when a client
        without DAVE joins a channel where DAVE is not required. Readiness then execute as for
        commits; afterwards the group is gone and new members get op 4 with version 0."""
        out = self._execute()
        self._last_tid = self._last_tid % 0xFFFF + 1
        tid = self._last_tid
        self.pending_transition, self._waiting = tid, set(self.members)
        self._pending_version = 0
        msg = Outgoing(Op.DAVE_PREPARE_TRANSITION, DavePrepareTransition(tid, 0))
        return out + [Send(u, msg) for u in sorted(self.members)]
