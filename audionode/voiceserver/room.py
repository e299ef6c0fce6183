"""One voice channel at run time: its connected clients, its DAVE group, its membership messages.

docs/discord-voice.md "Serving the other side", websocket steps 2-8. A :class:`Session` is one
client's voice session (it outlives a websocket: resume re-attaches it); a :class:`Room` is the
channel those sessions share. Nothing here awaits: every message is framed by the recipient's
``ServerGateway`` (which numbers it and keeps it for replay) and put on that session's outbox in
the same step, so that seq order and send order are the same. The websocket driver
(``gateway_server.py``) owns the sockets and the outbox writers.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from audionode.voice.crypto import AES_GCM_MODE, XCHACHA_MODE
from audionode.voice.gateway import ServerGateway, ServerState
from audionode.voice.opcodes import (
    DaveInvalidCommitWelcome,
    DaveTransitionReady,
    Op,
    SelectProtocol,
    Speaking,
)
from audionode.voice.wire import BinaryMessage, GatewayError
from audionode.voiceserver.dave_delivery import DaveChannel, Send, negotiate_protocol_version
from audionode.voiceserver.state import VoiceState
from audionode.voiceserver.udp import Forwarder, Member

MODES: Final = [AES_GCM_MODE, XCHACHA_MODE]
"""Offered in op 2 Ready, in Discord's order (discord.py takes the first it knows: XChaCha)."""
TRANSITION_TIMEOUT: Final = 5.0
"""Seconds to wait for every op 23 before sending op 22 Execute anyway (step 7)."""

_log = logging.getLogger("audionode.voiceserver.room")


class ChannelLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefixes every record with the channel (and user) it concerns: per-channel logs."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = self.extra or {}
        who = f"channel {extra.get('channel')}"
        if "user" in extra:
            who += f" user {extra['user']}"
        return f"[{who}] {msg}", kwargs


@dataclass(frozen=True, slots=True)
class Close:
    """Outbox item: close the socket after everything queued before it."""

    code: int
    reason: str


Outbox = asyncio.Queue[str | bytes | Close]


@dataclass(eq=False)
class Session:
    """One client's voice session in a room."""

    state: VoiceState
    gw: ServerGateway
    ssrc: int
    member: Member
    outbox: Outbox | None = None
    """The writer queue of the attached websocket; None while detached (frames are then only
    kept in the gateway's replay buffer)."""
    speaking: int | None = None
    dave_version: int = 0
    grace: asyncio.TimerHandle | None = None
    log: ChannelLog = field(init=False)

    def __post_init__(self) -> None:
        extra = {"channel": self.state.channel_id, "user": self.state.user_id}
        self.log = ChannelLog(_log, extra)

    @property
    def user_id(self) -> int:
        return self.state.user_id

    def post(self, frame: str | bytes) -> None:
        if self.outbox is not None:
            self.outbox.put_nowait(frame)

    def close(self, code: int, reason: str) -> None:
        """Close the attached socket (if any) after what is queued; detach it."""
        if self.outbox is not None:
            self.outbox.put_nowait(Close(code, reason))
            self.outbox = None


class Room:
    """A channel's connected sessions and DAVE group."""

    def __init__(
        self, channel_id: int, forwarder: Forwarder, on_empty: Callable[[Room], None]
    ) -> None:
        self.channel_id = channel_id
        self.sessions: dict[int, Session] = {}
        self.dave = DaveChannel(channel_id)
        self._forwarder = forwarder
        self._on_empty = on_empty
        self._timer: asyncio.TimerHandle | None = None
        self._timer_tid: int | None = None
        self.log = ChannelLog(_log, {"channel": channel_id})

    # -- membership (steps 2 and 8) --

    def join(self, session: Session, ready: str) -> None:
        """After an accepted op 0: Ready, op 11 with who is here, op 11 to the others, and the
        last op 5 of each present member so the newcomer can map their SSRCs."""
        others = list(self.sessions.values())
        self.sessions[session.user_id] = session
        self._forwarder.add(session.member)
        session.post(ready)
        session.post(session.gw.clients_connect([s.user_id for s in others]))
        for other in others:
            other.post(other.gw.clients_connect([session.user_id]))
            if other.speaking is not None:
                session.post(session.gw.speaking(other.user_id, other.ssrc, other.speaking))
        self.log.info(
            "user %d joined (SSRC %d), %d present",
            session.user_id,
            session.ssrc,
            len(self.sessions),
        )

    def leave(self, session: Session) -> None:
        """The session is over: op 13 to the others and a Remove proposal for its leaf."""
        if self.sessions.get(session.user_id) is not session:
            return
        del self.sessions[session.user_id]
        if session.grace is not None:
            session.grace.cancel()
        self._forwarder.remove(session.ssrc)
        for other in self.sessions.values():
            other.post(other.gw.client_disconnect(session.user_id))
        self.route(self.dave.on_leave(session.user_id))
        self.log.info("user %d left, %d present", session.user_id, len(self.sessions))
        if not self.sessions:
            if self._timer is not None:
                self._timer.cancel()
            self._on_empty(self)

    # -- events of an identified session --

    def handle(self, session: Session, event: msgspec.Struct) -> None:
        """Apply one event fed by the session's gateway (Heartbeat is the driver's)."""
        if isinstance(event, SelectProtocol):
            self._select_protocol(session, event)
        elif isinstance(event, Speaking):
            session.speaking = event.speaking
            session.member.announced |= event.speaking != 0
            for other in self.sessions.values():
                if other is not session:
                    other.post(other.gw.speaking(session.user_id, session.ssrc, event.speaking))
        elif isinstance(event, BinaryMessage) and event.op == Op.DAVE_MLS_KEY_PACKAGE:
            self._dave(session, self.dave.on_key_package(session.user_id, event.payload))
        elif isinstance(event, BinaryMessage) and event.op == Op.DAVE_MLS_COMMIT_WELCOME:
            self._dave(session, self.dave.on_commit_welcome(session.user_id, event.payload))
        elif isinstance(event, DaveTransitionReady):
            self._dave(session, self.dave.on_transition_ready(session.user_id, event.transition_id))
        elif isinstance(event, DaveInvalidCommitWelcome):
            self._dave(
                session, self.dave.on_invalid_commit_welcome(session.user_id, event.transition_id)
            )

    def _select_protocol(self, session: Session, event: SelectProtocol) -> None:
        """Step 4: op 4 with a fresh key, THEN op 25 (clients drop op 25 before op 4)."""
        if session.gw.state is not ServerState.IDENTIFIED:
            raise GatewayError(4020, "Select Protocol was already accepted for this session")
        assert session.gw.identity is not None
        version = negotiate_protocol_version(session.gw.identity.max_dave_protocol_version)
        version = min(version, self.dave.protocol_version)
        key = os.urandom(32)
        session.post(session.gw.session_description(key, version, os.urandom(16).hex()))
        self._forwarder.select(session.ssrc, event.data.address, event.data.port)
        self._forwarder.set_key(session.ssrc, event.data.mode, key)
        session.dave_version = version
        session.log.info("mode %s, DAVE v%d", event.data.mode, version)
        if version:
            self.route(self.dave.on_join(session.user_id))
        elif any(s.dave_version for s in self.sessions.values()):
            # A client without DAVE in a channel that allows it: everybody downgrades (op 21).
            self.route(self.dave.prepare_downgrade())

    def _dave(self, session: Session, sends: list[Send]) -> None:
        if not sends and self.dave.last_rejection:
            session.log.info("DAVE input ignored: %s", self.dave.last_rejection)
            self.dave.last_rejection = None
        self.route(sends)

    def route(self, sends: list[Send]) -> None:
        """Frame each DAVE message with its recipient's gateway, then watch op 22 timing."""
        for send in sends:
            target = self.sessions.get(send.recipient)
            if target is not None:
                target.post(target.gw.send(send.message))
        self._arm_transition_timer()

    def _arm_transition_timer(self) -> None:
        tid = self.dave.pending_transition
        if tid == self._timer_tid:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_tid = tid
        if tid is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(TRANSITION_TIMEOUT, self._transition_timeout, tid)

    def _transition_timeout(self, tid: int) -> None:
        self._timer = None
        self._timer_tid = None
        sends = self.dave.on_transition_timeout(tid)
        if sends:
            self.log.info(
                "transition %d: not every member was ready in %.0fs, executing",
                tid,
                TRANSITION_TIMEOUT,
            )
        self.route(sends)
