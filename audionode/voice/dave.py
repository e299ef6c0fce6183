"""DAVE (E2EE) client glue over ``davey``: op handling in, messages out, frames in and out.

Implements docs/discord-voice.md §2.7 exactly (with the §2.2 flow rules): a :class:`DaveState` per
voice connection, created with the bot's user id and the channel id (the MLS group id). Feed it
op 4's ``dave_protocol_version``, ops 11/13 and every DAVE op (21, 22, 24 as structs; 25, 27, 29,
30 as binary payloads after the ``[seq][op]`` prefix); each handler returns the
:class:`~audionode.voice.opcodes.Outgoing` messages to send (op 23, 26, 28, 31), in order.

The sender calls :meth:`DaveState.encrypt_opus` per frame: plain opus while no group is
established or after a downgrade executes, silence ``F8 FF FE`` always unchanged (§2.1).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final

import davey
import msgspec

from audionode.errors import VoiceError
from audionode.voice.dave_frame import is_dave_frame
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

MAX_PROTOCOL_VERSION: Final[int] = davey.DAVE_PROTOCOL_VERSION
_APPEND: Final = davey.ProposalsOperationType.append
_REVOKE: Final = davey.ProposalsOperationType.revoke
DOWNGRADE_PASSTHROUGH_S: Final = 120
"""Passthrough window while a downgrade to v0 is prepared (§2.7, as discord.py)."""
UPGRADE_PASSTHROUGH_S: Final = 10
"""How long plain frames stay accepted after an upgrade executes (davey's default expiry)."""


class DaveError(VoiceError):
    """A DAVE message could not be used (malformed, or rejected by the MLS layer)."""


if TYPE_CHECKING:
    _DaveBase = object
else:
    try:  # frame_encrypt as a C field the native packet path reads per packet (decision 0022)
        from audionode.native._packet import EncryptorCore as _DaveBase
    except ImportError:  # not built: a plain attribute
        _DaveBase = object


class DaveState(_DaveBase):
    """One voice connection's DAVE state (§2.7). Not thread-safe; drive it from one place.

    Call order: :meth:`on_session_description` on every op 4; the other ``on_*`` handlers as
    the ops arrive (or :meth:`handle` to dispatch by opcode). Send what they return, in order.
    """

    def __init__(self, user_id: int, channel_id: int) -> None:
        self.user_id = user_id
        self.channel_id = channel_id
        self.protocol_version = 0
        """The executed protocol version; 0 means frames go out plain."""
        self.session: davey.DaveSession | None = None
        self.recognized: set[int] = set()
        """Users announced by op 11 and not removed by op 13: the only ones we accept Adds for."""
        self.pending_transitions: dict[int, int] = {}
        self.downgraded = False
        self.key_packages_sent = 0
        self._external_sender: bytes | None = None
        self._encrypting = False
        self.frame_encrypt: Callable[[bytes], bytes] | None = None
        """davey's ``encrypt_opus`` while frames leave encrypted, else ``None``: the native
        packet path calls it directly, without a Python frame per packet (decision 0017)."""

    # --- state the sender and tests read ---------------------------------------------------

    @property
    def ready(self) -> bool:
        """True when frames leave DAVE-encrypted."""
        return self._encrypting

    @property
    def epoch(self) -> int | None:
        return self.session.epoch if self.session is not None else None

    @property
    def voice_privacy_code(self) -> str | None:
        return self.session.voice_privacy_code if self.session is not None else None

    def _refresh(self) -> None:
        s = self.session
        self._encrypting = bool(self.protocol_version and s is not None and s.ready)
        self.frame_encrypt = s.encrypt_opus if self._encrypting and s is not None else None

    # --- ops -------------------------------------------------------------------------------

    def on_session_description(self, dave_protocol_version: int) -> list[Outgoing]:
        """op 4: (re)create the session when DAVE is on and send a key package (op 26)."""
        self.protocol_version = dave_protocol_version
        return self._reinit()

    def on_clients_connect(self, user_ids: Iterable[str | int]) -> None:
        """op 11: extend the recognized-user set."""
        self.recognized.update(int(u) for u in user_ids)

    def on_client_disconnect(self, user_id: str | int) -> None:
        """op 13: that user is no longer recognized until announced again."""
        self.recognized.discard(int(user_id))

    def on_external_sender(self, payload: bytes) -> list[Outgoing]:
        """op 25: remember it (it may precede op 4) and create the pending group."""
        self._external_sender = payload
        if self.session is not None:
            self._set_external_sender()
        return []

    def on_proposals(self, payload: bytes) -> list[Outgoing]:
        """op 27: append/revoke proposals; commit when davey produces one (op 28)."""
        if self.session is None:
            return []
        if not payload or payload[0] > 1:
            raise DaveError(f"op 27 optype must be 0 or 1, got {payload[:1].hex() or 'nothing'}")
        # davey's enum is a native class that cannot be called with a value (§2.7's
        # ``ProposalsOperationType(payload[0])`` raises TypeError): map by hand.
        optype = _APPEND if payload[0] == 0 else _REVOKE
        expected = [*self.recognized, self.user_id]
        try:
            cw = self.session.process_proposals(optype, payload[1:], expected)
        except ValueError as exc:
            raise DaveError(f"op 27 rejected: {exc}") from None
        if cw is None:
            return []
        return [Outgoing(Op.DAVE_MLS_COMMIT_WELCOME, cw.commit + (cw.welcome or b""))]

    def on_announce_commit(self, payload: bytes) -> list[Outgoing]:
        """op 29 ``[transition_id u16][commit]``: process, then op 23 (or op 31 + new op 26)."""
        return self._process(payload, welcome=False)

    def on_welcome(self, payload: bytes) -> list[Outgoing]:
        """op 30 ``[transition_id u16][welcome]``: join the group, then op 23 (or recover)."""
        return self._process(payload, welcome=True)

    def on_prepare_transition(self, transition_id: int, protocol_version: int) -> list[Outgoing]:
        """op 21: remember the transition; tid 0 executes at once, others answer op 23."""
        self.pending_transitions[transition_id] = protocol_version
        if transition_id == 0:
            self.on_execute_transition(0)
            return []
        if protocol_version == 0 and self.session is not None:
            self.session.set_passthrough_mode(True, DOWNGRADE_PASSTHROUGH_S)
        return [_ready(transition_id)]

    def on_execute_transition(self, transition_id: int) -> list[Outgoing]:
        """op 22: switch to the transition's protocol version (0 = stop encrypting)."""
        if transition_id not in self.pending_transitions:
            return []
        old = self.protocol_version
        self.protocol_version = self.pending_transitions.pop(transition_id)
        if old != self.protocol_version and self.protocol_version == 0:
            self.downgraded = True
        elif transition_id > 0 and self.downgraded:
            self.downgraded = False
            if self.session is not None:
                self.session.set_passthrough_mode(False, UPGRADE_PASSTHROUGH_S)
        self._refresh()
        return []

    def on_prepare_epoch(self, protocol_version: int, epoch: int) -> list[Outgoing]:
        """op 24: ``epoch == 1`` means a new group: re-init and send a new key package."""
        if epoch != 1:
            return []
        self.protocol_version = protocol_version
        return self._reinit()

    def handle(self, op: Op, data: msgspec.Struct | bytes | None) -> list[Outgoing]:
        """Dispatch any DAVE op (21, 22, 24 structs; 25, 27, 29, 30 bytes); others return []."""
        if isinstance(data, bytes):
            binary = {
                Op.DAVE_MLS_EXTERNAL_SENDER: self.on_external_sender,
                Op.DAVE_MLS_PROPOSALS: self.on_proposals,
                Op.DAVE_MLS_ANNOUNCE_COMMIT_TRANSITION: self.on_announce_commit,
                Op.DAVE_MLS_WELCOME: self.on_welcome,
            }.get(op)
            return binary(data) if binary is not None else []
        if isinstance(data, DavePrepareTransition):
            return self.on_prepare_transition(data.transition_id, data.protocol_version)
        if isinstance(data, DaveExecuteTransition):
            return self.on_execute_transition(data.transition_id)
        if isinstance(data, DavePrepareEpoch):
            return self.on_prepare_epoch(data.protocol_version, data.epoch)
        return []

    # --- frames ----------------------------------------------------------------------------

    def encrypt_opus(self, frame: bytes) -> bytes:
        """DAVE-encrypt one opus frame, or return it unchanged (no group, v0, or silence)."""
        if not self._encrypting or frame == SILENCE_FRAME:
            return frame
        assert self.session is not None  # _encrypting implies a session
        return self.session.encrypt_opus(frame)

    def decrypt(self, user_id: int, frame: bytes) -> bytes:
        """Receive side: the opus frame sent by ``user_id``. Plain frames pass while no group
        exists or DAVE is off; a DAVE frame we cannot open raises :class:`DaveError`."""
        if frame == SILENCE_FRAME:
            return frame
        s = self.session
        if s is None or not s.ready or not self.protocol_version:
            if is_dave_frame(frame):
                raise DaveError(f"DAVE frame from {user_id} but no established group")
            return frame
        try:
            return s.decrypt(user_id, davey.MediaType.audio, frame)
        except ValueError as exc:
            raise DaveError(f"cannot decrypt frame from {user_id}: {exc}") from None

    # --- internals -------------------------------------------------------------------------

    def _reinit(self) -> list[Outgoing]:
        v = self.protocol_version
        if v == 0:
            if self.session is not None:
                self.session.reset()
                self.session.set_passthrough_mode(True, UPGRADE_PASSTHROUGH_S)
            self._refresh()
            return []
        if self.session is None:
            self.session = davey.DaveSession(v, self.user_id, self.channel_id)
            if self._external_sender is not None:
                self._set_external_sender()
        else:
            self.session.reinit(v, self.user_id, self.channel_id)
        self._refresh()
        return [self._key_package()]

    def _set_external_sender(self) -> None:
        assert self.session is not None and self._external_sender is not None
        try:
            self.session.set_external_sender(self._external_sender)
        except ValueError as exc:
            raise DaveError(f"op 25 external sender rejected: {exc}") from None

    def _key_package(self) -> Outgoing:
        assert self.session is not None
        self.key_packages_sent += 1
        return Outgoing(Op.DAVE_MLS_KEY_PACKAGE, self.session.get_serialized_key_package())

    def _process(self, payload: bytes, *, welcome: bool) -> list[Outgoing]:
        if len(payload) < 2:
            raise DaveError(f"op {30 if welcome else 29} needs a u16 transition id")
        (tid,) = struct.unpack_from(">H", payload)
        if self.session is None:
            return []
        try:
            if welcome:
                self.session.process_welcome(payload[2:])
            else:
                self.session.process_commit(payload[2:])
        except ValueError:
            return self._recover(tid)
        self._refresh()
        if tid == 0:
            return []
        self.pending_transitions[tid] = self.protocol_version
        return [_ready(tid)]

    def _recover(self, transition_id: int) -> list[Outgoing]:
        """Unprocessable commit/welcome: op 31, re-init, a new key package (§2.2)."""
        invalid = DaveInvalidCommitWelcome(transition_id)
        return [Outgoing(Op.DAVE_MLS_INVALID_COMMIT_WELCOME, invalid), *self._reinit()]


def _ready(transition_id: int) -> Outgoing:
    return Outgoing(Op.DAVE_TRANSITION_READY, DaveTransitionReady(transition_id))
