"""LVSP server state (seeds 000/001): resumable sessions and the per-socket state machine.

Pure: no asyncio, no sockets. The asyncio driver is ``audionode/voiceserver/lvsp_server.py``; the
decisions taken where the seeds are silent are written down in ``docs/protocols/lvsp.md`` (cited
below as "lvsp.md §n").

Call contract of :class:`LvspConnection` (one per websocket):

1. ``conn = LvspConnection(token, sessions, endpoint, heartbeat_interval_ms, now)``; send
   :meth:`LvspConnection.hello` first.
2. For every text frame: ``events = conn.receive(text, now)``; then send every string of
   :meth:`LvspConnection.data_to_send` in order. A :class:`CloseConnection` event means: send what
   is queued, then close the socket with its code and reason.
3. Answer :class:`InfoReceived` / :class:`VstRequested` with :meth:`LvspConnection.send_info`.
4. When nothing arrived by :attr:`LvspConnection.deadline`, call :meth:`LvspConnection.expire`.
5. When the socket is gone, call :meth:`LvspConnection.connection_lost` so the session can be
   resumed by another connection.
"""

from __future__ import annotations

import enum
import hmac
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from msgspec import UNSET

from audionode.protocol.lvsp import (
    ChannelInfo,
    ClientMessage,
    CloseCode,
    Heartbeat,
    Identify,
    Info,
    InfoType,
    LvspError,
    Op,
    Resume,
    VoiceInfo,
    VstRequest,
    decode_client,
    encode_server,
)

# --- sessions and replay (lvsp.md §2-3) ---------------------------------------------------------


@dataclass(eq=False)
class LvspSession:
    """What survives a dropped LVSP socket: the seq counter and the unacknowledged INFOs."""

    id: str
    max_buffer: int
    seq: int = 0
    buffer: deque[tuple[int, str]] = field(default_factory=deque)
    owner: object | None = None
    """The connection that currently holds the session (None = detached, resumable)."""
    detached_at: float = 0.0
    forgotten: int = 0
    """The highest seq of a kept message no longer in the buffer (acked or overflowed)."""

    def number(self, op: Op, d: Any, *, keep: bool) -> str:
        """Encode the next numbered message; ``keep`` puts it in the replay buffer."""
        self.seq += 1
        text = encode_server(op, d, self.seq)
        if keep:
            self.buffer.append((self.seq, text))
            while len(self.buffer) > self.max_buffer:
                self.forgotten = self.buffer.popleft()[0]
        return text

    def ack(self, s: int) -> None:
        """The client has seen everything up to ``s``: forget it."""
        while self.buffer and self.buffer[0][0] <= s:
            self.forgotten = self.buffer.popleft()[0]

    def replay_after(self, s: int) -> list[str] | None:
        """Kept messages after ``s``; None when ``s`` is in the future or one was forgotten.

        Only INFOs are kept (lvsp.md §3): READY and HEARTBEAT_ACK belong to their connection.
        """
        if s > self.seq or s < self.forgotten:
            return None
        return [text for seq, text in self.buffer if seq > s]


class LvspSessions:
    """The server-wide store of LVSP sessions.

    A detached session stays resumable for ``resume_window`` seconds and is then forgotten
    (:meth:`expire` runs on every create/find; the driver also calls it periodically so that
    sessions nobody resumes do not linger). At most ``max_detached`` detached sessions are kept:
    a new IDENTIFY beyond that forgets the oldest (lvsp.md "Hardening").
    """

    def __init__(
        self, *, max_buffer: int = 1000, resume_window: float = 60.0, max_detached: int = 16
    ) -> None:
        self.max_buffer = max_buffer
        self.resume_window = resume_window
        self.max_detached = max_detached
        self._by_id: dict[str, LvspSession] = {}

    def create(self, owner: object, now: float) -> LvspSession:
        self.expire(now)
        detached = sorted(self._detached(), key=lambda s: s.detached_at)
        for old in detached[: max(len(detached) - self.max_detached + 1, 0)]:
            del self._by_id[old.id]
        session = LvspSession(secrets.token_hex(8), self.max_buffer, owner=owner)
        self._by_id[session.id] = session
        return session

    def find(self, session_id: str | None, now: float) -> LvspSession | None:
        """The session to resume: by id, or else the most recently detached one."""
        self.expire(now)
        if session_id is not None:
            return self._by_id.get(session_id)
        return max(self._detached(), key=lambda s: s.detached_at, default=None)

    def detach(self, session: LvspSession, now: float) -> None:
        session.owner = None
        session.detached_at = now

    def expire(self, now: float) -> int:
        """Forget detached sessions older than the resume window; returns how many."""
        old = [s.id for s in self._detached() if now - s.detached_at > self.resume_window]
        for sid in old:
            del self._by_id[sid]
        return len(old)

    def _detached(self) -> list[LvspSession]:
        return [s for s in self._by_id.values() if s.owner is None]

    def __len__(self) -> int:
        return len(self._by_id)


# --- the per-socket state machine ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Authenticated:
    """IDENTIFY or RESUME succeeded; READY (and any replay) is queued.

    ``previous_owner`` is the connection that still held a resumed session (a half-open socket):
    the driver closes it. After a fresh IDENTIFY the driver sends its state snapshot (lvsp.md §7).
    """

    session: LvspSession
    resumed: bool
    previous_owner: object | None = None


@dataclass(frozen=True, slots=True)
class InfoReceived:
    info: ChannelInfo | VoiceInfo


@dataclass(frozen=True, slots=True)
class VstRequested:
    request: VstRequest


@dataclass(frozen=True, slots=True)
class CloseConnection:
    code: int
    reason: str


Event = Authenticated | InfoReceived | VstRequested | CloseConnection


class Phase(enum.Enum):
    AWAITING_AUTH = "awaiting_auth"
    ESTABLISHED = "established"
    CLOSED = "closed"


class LvspConnection:
    """The server side of one LVSP websocket (see the module docstring for the call contract)."""

    TIMEOUT_FACTOR: Final = 1.5
    """A client may be this many heartbeat intervals late before 4000 (lvsp.md §4)."""

    def __init__(
        self,
        *,
        token: str,
        sessions: LvspSessions,
        endpoint: str,
        heartbeat_interval_ms: int,
        now: float,
        identify_timeout: float | None = None,
    ) -> None:
        if not token:
            raise ValueError("LVSP needs a non-empty shared token")
        self._token = token.encode()
        self._sessions = sessions
        self._endpoint = endpoint
        self._interval_ms = heartbeat_interval_ms
        self._out: list[str] = []
        self.phase = Phase.AWAITING_AUTH
        self.session: LvspSession | None = None
        self._identify_timeout = self._grace if identify_timeout is None else identify_timeout
        self.deadline = now + self._identify_timeout

    @property
    def _grace(self) -> float:
        return self._interval_ms / 1000 * self.TIMEOUT_FACTOR

    def hello(self) -> str:
        """The first frame to send. HELLO precedes any session, so its ``s`` is 0 (lvsp.md §2)."""
        return encode_server(Op.HELLO, {"heartbeat_interval": self._interval_ms}, 0)

    def data_to_send(self) -> list[str]:
        """Frames queued since the last call, in order."""
        out, self._out = self._out, []
        return out

    def receive(self, raw: str | bytes, now: float) -> list[Event]:
        """Feed one text frame; returns what happened (never raises on bad input)."""
        if self.phase is Phase.CLOSED:
            return []
        try:
            op, msg = decode_client(raw)
            return self._dispatch(op, msg, now)
        except LvspError as e:
            return [self.fail(e.code, e.reason, now)]

    def send_info(self, info: ChannelInfo | VoiceInfo) -> None:
        """Queue a numbered INFO (kept for RESUME). Only valid once established."""
        if self.session is None or self.phase is not Phase.ESTABLISHED:
            raise RuntimeError("send_info before IDENTIFY/RESUME or after close")
        typ = InfoType.CHANNEL if isinstance(info, ChannelInfo) else InfoType.VST
        d = {"type": int(typ), "info": msgspec.to_builtins(info)}
        self._out.append(self.session.number(Op.INFO, d, keep=True))

    def expire(self, now: float) -> CloseConnection | None:
        """Call when ``deadline`` passed without a frame: 4000 heartbeat timeout (lvsp.md §4)."""
        if self.phase is Phase.CLOSED or now < self.deadline:
            return None
        if self.phase is Phase.AWAITING_AUTH:
            why = f"no IDENTIFY or RESUME within {self._identify_timeout:.1f}s"
        else:
            why = f"no HEARTBEAT within {self._grace:.1f}s"
        return self.fail(CloseCode.GENERAL, why, now)

    def fail(self, code: int, reason: str, now: float) -> CloseConnection:
        """Close from the server side; the session (if any) stays resumable."""
        self.connection_lost(now)
        return CloseConnection(int(code), reason[:120])  # close reasons are limited to 123 bytes

    def connection_lost(self, now: float) -> None:
        """The socket is gone: detach the session so that a RESUME can pick it up."""
        if self.session is not None and self.session.owner is self:
            self._sessions.detach(self.session, now)
        self.phase = Phase.CLOSED

    # -- dispatch --

    def _dispatch(self, op: Op, msg: ClientMessage, now: float) -> list[Event]:
        if self.phase is Phase.AWAITING_AUTH:
            if isinstance(msg, Identify):
                return [self._identify(msg, now)]
            if isinstance(msg, Resume):
                return [self._resume(msg, now)]
            raise LvspError(CloseCode.AUTH_FAILED, f"{op.name} before IDENTIFY/RESUME")
        if isinstance(msg, Identify | Resume):
            raise LvspError(CloseCode.DECODE_ERROR, f"{op.name}: already authenticated")
        if isinstance(msg, Heartbeat):
            return self._heartbeat(msg, now)
        if isinstance(msg, Info):
            return [InfoReceived(msg.info)]
        assert isinstance(msg, VstRequest)
        return [VstRequested(msg)]

    def _check_token(self, token: str) -> None:
        if not hmac.compare_digest(token.encode(), self._token):
            raise LvspError(CloseCode.AUTH_FAILED, "authentication failed: wrong token")

    def _identify(self, msg: Identify, now: float) -> Authenticated:
        self._check_token(msg.token)
        self.session = self._sessions.create(self, now)
        self._establish(now)
        return Authenticated(self.session, resumed=False)

    def _resume(self, msg: Resume, now: float) -> Authenticated:
        self._check_token(msg.token)
        sid = None if msg.session_id is UNSET else msg.session_id
        session = self._sessions.find(sid, now)
        if session is None:
            raise LvspError(CloseCode.INVALID_SESSION, "no session to resume: IDENTIFY instead")
        replay = session.replay_after(msg.seq)
        if replay is None:
            raise LvspError(
                CloseCode.INVALID_SESSION,
                f"cannot resume from seq {msg.seq} (server is at {session.seq}, "
                f"messages up to {session.forgotten} are gone): IDENTIFY instead",
            )
        previous, session.owner, self.session = session.owner, self, session
        self._out.extend(replay)
        self._establish(now)
        return Authenticated(session, resumed=True, previous_owner=previous)

    def _establish(self, now: float) -> None:
        assert self.session is not None
        self.phase = Phase.ESTABLISHED
        self.deadline = now + self._grace
        ready = {"endpoint": self._endpoint, "session_id": self.session.id}
        self._out.append(self.session.number(Op.READY, ready, keep=False))

    def _heartbeat(self, msg: Heartbeat, now: float) -> list[Event]:
        assert self.session is not None
        if msg.s > self.session.seq:
            raise LvspError(
                CloseCode.DECODE_ERROR,
                f"HEARTBEAT: d.s={msg.s} is ahead of the last sent seq {self.session.seq}",
            )
        self.session.ack(msg.s)
        self.deadline = now + self._grace
        self._out.append(self.session.number(Op.HEARTBEAT_ACK, {"s": msg.s}, keep=False))
        return []
