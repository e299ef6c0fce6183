"""One Discord voice client session, sans-I/O: events and bytes in, bytes and events out.

The only voice client of the project (the node's connections, the demo's listener and the
in-memory test network all drive this class); ``transport/voice_conn.py`` is its asyncio driver.
It owns the handshake (docs/discord-voice.md §1.2: op 0 → op 8/op 2 → IP discovery §1.8 → op 1 →
op 4 → op 5), heartbeats with ``seq_ack`` (§1.4, §1.5), resume (§1.6), the close-code policy's
application (:func:`~audionode.voice.opcodes.decide_close`, §1.7), DAVE (§2.7, through
:class:`~audionode.voice.dave.DaveState`) and both media paths: :meth:`VoiceClient.seal` (opus →
datagram) and :meth:`VoiceClient.receive_datagram` (others' RTP → :class:`AudioPacket`).

Driving it (what ``transport/`` does; the in-memory test network does the same with queues)::

    c = VoiceClient(creds)
    c.socket_opened(now)                 # a websocket is open: op 0 (or op 7) is queued
    for out in c.take(): ...             # perform each Action, hand each event to the owner
    c.receive(frame, now)                # every websocket frame (or parse() + handle())
    c.udp_opened(now)                    # after performing UdpOpen
    c.receive_datagram(data, now)        # every UDP datagram
    c.poll(now)                          # at c.next_deadline(): heartbeats, discovery retries
    c.socket_closed(code, reason, by_remote, now)   # → Closed, then Reopen or final
    datagram = c.seal(opus)              # per 20 ms frame, when c.ready

``now`` is seconds on any monotonic clock the driver chooses; heartbeat ``t`` values are its
milliseconds (the server only echoes ``t``, §1.5). The timers themselves are in ``timers.py``,
the receive path in ``receive.py``; the rest stays one class on purpose (about 500 lines): op 4
installs the key the media path uses, op 11/13 open and close the DAVE gate of :meth:`seal`, a
close decides whether UDP survives; split further, one state machine would share every field
across several objects.

DAVE never leaks (issue 11 item 7): an audio frame is sealed in the clear only when no DAVE
protocol is in force (never negotiated, or a downgrade executed) or when nobody else is in the
channel (no group can exist: §2.2 "alone in the channel"). While another member is present and
the group is being (re)established (a rejoin, a move, op 24 re-creation, a recovery from an
invalid commit), :attr:`VoiceClient.audio_ready` is false: the sender holds its audio and sends
only silence frames, which DAVE leaves in the clear by design (§2.1). :meth:`VoiceClient.seal`
enforces it again for any caller: a frame that would leak goes out as silence instead.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import msgspec

from audionode.errors import VoiceError
from audionode.voice.crypto import SUPPORTED_MODES, TransportCipher, choose_mode, cipher_for
from audionode.voice.dave import MAX_PROTOCOL_VERSION, DaveError, DaveState
from audionode.voice.events import (
    Closed,
    Connected,
    MemberLeft,
    Output,
    Reopen,
    Resumed,
    SpeakingChanged,
    UdpClose,
    UdpOpen,
    UdpSend,
    WsClose,
    WsSend,
)
from audionode.voice.gateway import ClientGateway, ClientState
from audionode.voice.opcodes import (
    MAX_ATTEMPTS,
    ClientDisconnect,
    ClientsConnect,
    CloseAction,
    CloseCode,
    DaveExecuteTransition,
    DavePrepareEpoch,
    DavePrepareTransition,
    HeartbeatAck,
    Hello,
    Op,
    Outgoing,
    Ready,
    SessionDescription,
    Speaking,
    decide_close,
    is_bug,
)
from audionode.voice.packetizer import (
    SILENCE_FRAME,
    AnyPacketizer,
    NativePacketizer,
    new_packetizer,
)
from audionode.voice.receive import Receiver
from audionode.voice.rtp import DatagramKind, RtpError, classify
from audionode.voice.timers import Beat, DiscoveryFailed, Heartbeats, IpDiscovery
from audionode.voice.wire import BinaryMessage, GatewayError
from audionode.voice.wire import Resumed as ResumedMessage

if TYPE_CHECKING:
    from audionode.native import _packet

log = logging.getLogger(__name__)

ABANDON_CODE: Final = 4000
"""Close code for a socket this side drops in order to resume: anything but 1000 keeps the
session resumable on the server."""

_DAVE_JSON_OPS: Final[dict[type, Op]] = {
    DavePrepareTransition: Op.DAVE_PREPARE_TRANSITION,
    DaveExecuteTransition: Op.DAVE_EXECUTE_TRANSITION,
    DavePrepareEpoch: Op.DAVE_PREPARE_EPOCH,
}
_HEAVY: Final = (BinaryMessage, SessionDescription, DavePrepareEpoch)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the bot's VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE give a voice client (§1.2)."""

    guild_id: int
    """op 0 ``server_id``."""
    user_id: int
    channel_id: int
    """The DAVE (MLS) group id (§2.1)."""
    session_id: str
    token: str


class VoiceClient:
    """One voice session across its websockets (see the module docstring for the driving
    contract). Not thread-safe: the driver calls it from one thread (the media path included).

    ``dave`` offers DAVE (``max_dave_protocol_version``); ``modes`` are the transport modes we
    accept (the best offered one is chosen, AES-GCM first, §1.10); ``receive`` turns on the
    receive path (other members' audio as :class:`~audionode.voice.events.AudioPacket`).
    """

    def __init__(
        self,
        creds: Credentials,
        *,
        dave: bool = True,
        modes: Sequence[str] = SUPPORTED_MODES,
        receive: bool = False,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.creds = creds
        self.dave_enabled = dave
        self.modes = tuple(modes)
        self.max_attempts = max_attempts
        """Consecutive failed resumes/reconnects before the session gives up."""
        self.receiver: Receiver | None = Receiver() if receive else None
        self.gateway = ClientGateway()
        self.dave = DaveState(creds.user_id, creds.channel_id)
        self.packetizer: AnyPacketizer | None = None
        """RTP state (seq, timestamp, nonce) of the current session; kept across a resume."""
        self.cipher: TransportCipher | None = None
        self.mode: str | None = None
        self.ready = False
        """UDP open and an op 4 key installed: packets (silence, keepalives) may go out. Stays
        true during a resume (§1.6: UDP and key stay valid)."""
        self.audio_ready = False
        """:attr:`ready`, and an audio frame sealed now would not leak past DAVE."""
        self.socket_open = False
        self.final = False
        """The session ended (closed, refused, gave up): nothing more until :meth:`restart`."""
        self._frames_sent = 0
        self._frames_dropped = 0
        self._pumped = 0
        """Frames of earlier packetizers' channels staged/dropped by the sender's Pump."""
        self._pump_dropped = 0
        self._live: _packet.Channel | None = None
        """The native channel marked ``live`` (the sender's Pump may send audio on it)."""
        self.frames_withheld = 0
        """Audio frames sent as silence because they would have left unencrypted."""
        self.heartbeats = Heartbeats()
        self.log = logging.LoggerAdapter(log, {"guild": creds.guild_id})
        self._out: list[Output] = []
        self._speaking = False
        self._udp_open = False
        self._discovery: IpDiscovery | None = None
        self._abandoned: str | None = None
        self._failures = 0
        self._resume_next = False

    # --- output ---------------------------------------------------------------------------------

    def take(self) -> list[Output]:
        """Everything produced since the last call, in order: actions and events."""
        out, self._out = self._out, []
        return out

    @property
    def last_heartbeat_rtt_ms(self) -> float | None:
        return self.heartbeats.rtt_ms

    def next_deadline(self) -> float | None:
        """When :meth:`poll` has work (heartbeat or discovery retry), or ``None``."""
        d = self._discovery
        retry = d.deadline if d is not None and d.attempts else None
        return min((t for t in (self.heartbeats.due, retry) if t is not None), default=None)

    def _send(self, frame: str | bytes) -> None:
        self._out.append(WsSend(frame))

    # --- the websocket --------------------------------------------------------------------------

    def socket_opened(self, now: float) -> None:
        """A new websocket is open: op 7 Resume when the last close said so, else op 0."""
        if self.final:
            raise RuntimeError("socket_opened() on a finished session; call restart() first")
        self.socket_open, self._abandoned = True, None
        self.heartbeats.stop()
        self.gateway.new_connection()
        c = self.creds
        if self._resume_next and self.gateway.resumable:
            self._send(self.gateway.resume(c.guild_id, c.session_id, c.token))
            return
        self._fresh_session()
        max_dave = MAX_PROTOCOL_VERSION if self.dave_enabled else 0
        self._send(self.gateway.identify(c.guild_id, c.user_id, c.session_id, c.token, max_dave))

    def socket_failed(self, reason: str, now: float) -> None:
        """Opening a websocket failed (refused, timed out): treated as a lost socket (1006)."""
        self._decide(CloseCode.ABNORMAL, reason, False, opened=False)

    def socket_closed(self, code: int | None, reason: str, by_remote: bool, now: float) -> None:
        """The websocket ended (``code`` None = no close frame). Emits :class:`Closed`, then a
        :class:`Reopen` or nothing (final). Ignored after :meth:`close` or :meth:`restart`."""
        if not self.socket_open:
            return
        self.socket_open = False
        self.heartbeats.stop()
        self._discovery = None
        if self._abandoned is not None:
            code, reason, by_remote = CloseCode.ABNORMAL, self._abandoned, False
        self._decide(CloseCode.ABNORMAL if code is None else code, reason, by_remote, opened=True)

    def _decide(self, code: int, reason: str, by_remote: bool, *, opened: bool) -> None:
        self._failures += 1
        d = decide_close(
            code,
            resumable=self.gateway.resumable,
            failures=self._failures,
            max_attempts=self.max_attempts,
        )
        if d.gave_up:
            reason = f"{reason} (gave up after {self.max_attempts} attempts)"
        step = d.action.value if not d.gave_up else "give up"
        level = logging.ERROR if is_bug(code) else logging.INFO
        self.log.log(level, "voice ws closed %s %r (remote=%s): %s", code, reason, by_remote, step)
        if opened or not d.retry:
            self._out.append(Closed(code, reason, by_remote, d.retry))
        if not d.retry:
            self.final = True
            self._drop_media()
            return
        self._resume_next = d.action is CloseAction.RESUME
        if not self._resume_next:
            self._drop_media()
        self._out.append(Reopen(d.delay, self._resume_next))

    def close(self, reason: str = "closed by client", *, lost: bool = False) -> None:
        """The owner ends the session: close 1000, drop UDP. Reports ``Closed(1000, reason)``
        when a socket was open; ``lost=True`` reports ``Closed(1006, reason)`` in any case (a
        connect that never completed)."""
        had_socket = self.socket_open
        if had_socket:
            self._out.append(WsClose(CloseCode.NORMAL, reason))
        if lost:
            self._out.append(Closed(CloseCode.ABNORMAL, reason, False, False))
        elif had_socket:
            self._out.append(Closed(CloseCode.NORMAL, reason, False, False))
        self.socket_open, self.final = False, True
        self.heartbeats.stop()
        self._drop_media()

    def restart(self, creds: Credentials) -> None:
        """New credentials (a channel move, a new VOICE_SERVER_UPDATE after 4014/4006...): the
        old session ends with close 1000; the next :meth:`socket_opened` identifies afresh, into
        a new DAVE group when the channel changed (§1.2)."""
        reason = "reconnecting with new credentials"
        if self.socket_open:
            self._out.append(WsClose(CloseCode.NORMAL, reason))
            self._out.append(Closed(CloseCode.NORMAL, reason, False, True))
        self.socket_open, self.final = False, False
        self.heartbeats.stop()
        self.creds = creds
        self.gateway = ClientGateway()
        self.dave = DaveState(creds.user_id, creds.channel_id)
        self.log = logging.LoggerAdapter(log, {"guild": creds.guild_id})
        self._failures, self._resume_next = 0, False
        self._drop_media()

    def _abandon(self, reason: str) -> None:
        """Drop this socket but keep the session (reported as a lost socket, then resumed)."""
        if self.socket_open and self._abandoned is None:
            self._abandoned = reason
            self._out.append(WsClose(ABANDON_CODE, reason))

    def _fresh_session(self) -> None:
        """Before op 0: a new session has a new SSRC, key, UDP socket and DAVE group."""
        self._drop_media()
        self.dave = DaveState(self.creds.user_id, self.creds.channel_id)
        if self.receiver is not None:
            self.receiver.reset()

    @property
    def frames_sent(self) -> int:
        """Frames sealed or staged for sending (the sender's native Pump's included)."""
        p = self.packetizer
        pumped = p.channel.pumped if isinstance(p, NativePacketizer) else 0
        return self._frames_sent + self._pumped + pumped

    @property
    def frames_dropped(self) -> int:
        """Frames not sent: not :attr:`ready`, or DAVE failed to encrypt them."""
        p = self.packetizer
        dropped = p.channel.pump_dropped if isinstance(p, NativePacketizer) else 0
        return self._frames_dropped + self._pump_dropped + dropped

    def _set_packetizer(self, p: AnyPacketizer | None) -> None:
        """Replace the packetizer, keeping its Pump counters, and recompute readiness (the
        old channel stops being ``live`` at once: the sender's Pump hands its stream back)."""
        old = self.packetizer
        if isinstance(old, NativePacketizer):
            self._pumped += old.channel.pumped
            self._pump_dropped += old.channel.pump_dropped
        self.packetizer = p
        self._refresh()

    def _drop_media(self) -> None:
        if self._udp_open or self.packetizer is not None:
            self._out.append(UdpClose())
        self._udp_open, self.cipher, self.mode = False, None, None
        self._discovery = None
        self._set_packetizer(None)

    # --- received websocket frames --------------------------------------------------------------

    def receive(self, frame: str | bytes, now: float) -> None:
        """Parse and handle one received websocket frame (never raises)."""
        for event in self.parse(frame):
            self.handle(event, now)

    def parse(self, frame: str | bytes) -> list[msgspec.Struct]:
        """Decode one frame into gateway events; a malformed frame is logged and yields []."""
        try:
            return self.gateway.feed(frame)
        except GatewayError as exc:
            self.log.warning("ignoring bad voice gateway message: %s", exc)
            return []

    @staticmethod
    def is_heavy(event: msgspec.Struct) -> bool:
        """True for events whose DAVE handling runs MLS (a few ms with the GIL held): drivers
        space them out (``transport/cpugate.py``)."""
        return isinstance(event, _HEAVY)

    def handle(self, event: msgspec.Struct, now: float) -> None:
        """Apply one event from :meth:`parse` (never raises: a bad message costs itself only)."""
        try:
            self._handle(event, now)
        except VoiceError as exc:  # the socket is unusable (no mode, bad key, no UDP): retry
            self.log.warning("voice session unusable: %s", exc)
            self._abandon(str(exc))
        except Exception:  # a bug must cost one message, not the connection
            self.log.exception("voice gateway event %s failed", type(event).__name__)
        self._refresh()

    def _handle(self, event: msgspec.Struct, now: float) -> None:
        if isinstance(event, Hello):
            self.heartbeats.start(event.heartbeat_interval, now)
        elif isinstance(event, HeartbeatAck):
            self.heartbeats.acked(event.t, now)
        elif isinstance(event, Ready):
            self._on_ready(event, now)
        elif isinstance(event, SessionDescription):
            self._on_session_description(event)
        elif isinstance(event, ResumedMessage):
            self._failures = 0
            self._send_speaking()
            self._out.append(Resumed())
        elif isinstance(event, Speaking):
            self._on_speaking(event)
        elif isinstance(event, ClientsConnect | ClientDisconnect):
            self._on_membership(event)
        elif isinstance(event, BinaryMessage):
            self._dave_op(event.op, event.payload)
        elif (op := _DAVE_JSON_OPS.get(type(event))) is not None:
            self._dave_op(op, event)

    def _on_ready(self, ready: Ready, now: float) -> None:
        """op 2: pick the mode (§1.10), open UDP; discovery starts in :meth:`udp_opened`."""
        mode = choose_mode(m for m in ready.modes if m in self.modes)
        self._drop_media()
        self._discovery = IpDiscovery(ready.ssrc, mode)
        self._out.append(UdpOpen(ready.ip, ready.port))

    def _on_session_description(self, sd: SessionDescription) -> None:
        """op 4: new key (the nonce restarts at 0), DAVE (re)init + key package, then op 5."""
        p = self.packetizer
        if p is None:
            self.log.warning("op 4 before IP discovery finished: ignored")
            return
        self.cipher = cipher_for(sd.mode, sd.secret_key)
        p.set_cipher(self.cipher)
        p.set_encryptor(self.dave)
        self.mode = sd.mode
        try:
            self._send_dave(self.dave.on_session_description(sd.dave_protocol_version))
        except DaveError as exc:
            self.log.warning("DAVE init failed: %s", exc)
        self._failures = 0
        self._send_speaking()
        self._out.append(Connected(p.ssrc, sd.mode, sd.dave_protocol_version))

    def _on_speaking(self, event: Speaking) -> None:
        """Another member's op 5: its SSRC → user id (the receive path needs it for DAVE)."""
        if isinstance(event.user_id, msgspec.UnsetType):
            return
        try:
            user = int(event.user_id)
        except ValueError:
            self.log.warning("op 5 ignored: user_id %r is not a snowflake", event.user_id)
            return
        self._out.append(SpeakingChanged(user, event.ssrc, event.speaking))
        if self.receiver is not None:
            self._out.extend(self.receiver.on_speaking(event.ssrc, user, self.dave))

    def _on_membership(self, event: ClientsConnect | ClientDisconnect) -> None:
        """ops 11/13 feed DAVE's recognized-user set (§2.2) and the audio gate."""
        try:
            if isinstance(event, ClientsConnect):
                self.dave.on_clients_connect(event.user_ids)
                return
            self.dave.on_client_disconnect(event.user_id)
            user = int(event.user_id)
        except ValueError:
            self.log.warning("op 11/13 ignored: user ids must be snowflakes, got %r", event)
            return
        if self.receiver is not None:
            self.receiver.on_member_left(user)
        self._out.append(MemberLeft(user))

    def _dave_op(self, op: Op, data: msgspec.Struct | bytes) -> None:
        try:
            self._send_dave(self.dave.handle(op, data))
        except DaveError as exc:
            self.log.warning("DAVE message dropped: %s", exc)

    def _send_dave(self, messages: list[Outgoing]) -> None:
        for message in messages:
            self._send(self.gateway.send(message))

    # --- UDP ------------------------------------------------------------------------------------

    def udp_opened(self, now: float) -> None:
        """The socket of the last :class:`UdpOpen` is open: IP discovery starts (§1.8)."""
        d = self._discovery
        if d is None or not self.socket_open:
            return  # a stale open: that session is gone
        self._udp_open = True
        self._out.append(UdpSend(d.request(now)))

    def udp_failed(self, reason: str) -> None:
        """Opening the UDP socket failed: this socket cannot carry a session; retry."""
        self._abandon(f"cannot open UDP: {reason}")

    def receive_datagram(self, data: bytes, now: float) -> None:
        """Every received datagram: the discovery reply, or media/RTCP for the receive path."""
        if classify(data) is DatagramKind.DISCOVERY_RESPONSE:
            self._discovered(data)
        elif self.receiver is not None:
            self._out.extend(self.receiver.on_datagram(data, self.cipher, self.dave))

    def _discovered(self, data: bytes) -> None:
        d = self._discovery
        if d is None or not self._udp_open:
            return
        try:
            reply = d.reply(data)
        except RtpError as exc:
            self.log.warning("ignoring malformed IP discovery reply: %s", exc)
            return
        if reply is None:
            return
        self._discovery = None
        self._set_packetizer(
            new_packetizer(
                d.ssrc, sequence=secrets.randbelow(1 << 16), timestamp=secrets.randbelow(1 << 32)
            )
        )
        self._send(self.gateway.select_protocol(reply.ip, reply.port, d.mode))

    # --- timers ---------------------------------------------------------------------------------

    def poll(self, now: float) -> None:
        """Run what is due at ``now``: a heartbeat (or, after ``MISSED_ACKS`` unanswered ones,
        dropping the socket to resume), a discovery retry (or giving this socket up)."""
        beat = self.heartbeats.poll(now)
        if beat is Beat.SEND:
            self._send(self.gateway.heartbeat(int(now * 1000)))
        elif beat is Beat.DEAD:
            self._abandon(f"no heartbeat ACK for {self.heartbeats.unacked} beats")
        d = self._discovery
        if d is not None:
            try:
                retry = d.poll(now)
            except DiscoveryFailed as exc:
                self._discovery = None
                self._abandon(str(exc))
                return
            if retry is not None:
                self._out.append(UdpSend(retry))

    # --- the media path -------------------------------------------------------------------------

    def set_speaking(self, on: bool) -> None:
        """op 5 now when the session is active; remembered and re-sent after op 4 and op 9."""
        self._speaking = on
        self._send_speaking()

    def _send_speaking(self) -> None:
        if self.socket_open and self.gateway.state is ClientState.ACTIVE:
            self._send(self.gateway.speaking(1 if self._speaking else 0))

    def _refresh(self) -> None:
        """Recompute :attr:`ready` and :attr:`audio_ready` (read per frame by the sender)."""
        p = self.packetizer
        self.ready = p is not None and p.keyed and self._udp_open
        dave = self.dave
        self.audio_ready = self.ready and (
            dave.ready or dave.protocol_version == 0 or not (dave.recognized - {dave.user_id})
        )
        # The sender's native Pump serves a stream only while its channel is live
        # (docs/decisions/0020-native-tick.md): cleared here the moment audio must stop.
        live = p.channel if self.audio_ready and isinstance(p, NativePacketizer) else None
        if live is not self._live:
            if self._live is not None:
                self._live.live = False
            if live is not None:
                live.live = True
            self._live = live

    def seal(self, opus: bytes) -> bytes | None:
        """The datagram for one 20 ms frame (DAVE, RTP header, transport AEAD), advancing seq,
        timestamp and nonce; ``None`` (counted) while not :attr:`ready` or when DAVE fails.
        An audio frame that would leave unencrypted (not :attr:`audio_ready`) goes out as a
        silence frame instead (counted in :attr:`frames_withheld`)."""
        p = self.packetizer
        if p is None or not self.ready:
            self._frames_dropped += 1
            return None
        if not self.audio_ready and opus != SILENCE_FRAME:
            self.frames_withheld += 1
            opus = SILENCE_FRAME
        try:
            datagram = p.packet(opus)
        except Exception:  # a DAVE ratchet hiccup must not kill the sender; counters unchanged
            self._frames_dropped += 1
            return None
        self._frames_sent += 1
        return datagram

    def stage(self, opus: bytes, out: _packet.Batch, fd: int) -> bool:
        """:meth:`seal` for the native path: stage the frame in the tick's ``out`` batch (sent
        on socket ``fd`` when the sender flushes it). False when it cannot be staged: not
        :attr:`ready`, or a Python packetizer (then call :meth:`seal`); a frame dropped by
        DAVE counts as handled."""
        p = self.packetizer
        if not self.ready or not isinstance(p, NativePacketizer):
            return False
        if not self.audio_ready and opus != SILENCE_FRAME:
            self.frames_withheld += 1
            opus = SILENCE_FRAME
        if out.add(p.channel, opus, fd):
            self._frames_sent += 1
        else:
            self._frames_dropped += 1
        return True

    def keepalive(self) -> bytes | None:
        """The next 8-byte UDP keepalive (§1.11), or ``None`` while there is no session."""
        p = self.packetizer
        return p.keepalive() if p is not None and self.ready else None
