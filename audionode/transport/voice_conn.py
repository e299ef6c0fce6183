"""VoiceConnection: the asyncio driver of one guild's Discord voice session.

A thin shell around the sans-I/O core (docs/discord-voice.md; ARCHITECTURE.md "transport/"):
``VoiceGateway(Side.CLIENT)`` frames and parses the websocket, ``DaveState`` runs DAVE,
``Packetizer`` turns opus into sealed RTP. This module owns only the I/O: the aiohttp websocket,
the UDP socket (:mod:`.udp`), the heartbeat timer, and the resume/reconnect loop whose decisions
come from the one close-code policy, :func:`audionode.voice.opcodes.close_action` (§1.7).

Call sequence (§1.2, §2.7): op 0 Identify (with ``max_dave_protocol_version``) → op 8 Hello /
op 2 Ready → UDP IP discovery → op 1 Select Protocol (AES-GCM rtpsize when offered, else
XChaCha) → op 4 Session Description → op 5 Speaking → DAVE ops → RTP. A resume (§1.6) opens a
new websocket and sends op 7 with ``seq_ack``, keeping UDP, SSRC, key, RTP counters and the DAVE
group; :meth:`VoiceConnection.reconnect` starts over with new credentials and a new DAVE group.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Final

import aiohttp
import msgspec
from yarl import URL

from audionode.config import VoiceConfig
from audionode.errors import VoiceError
from audionode.transport.cpugate import gate_for_loop
from audionode.transport.events import Closed, Connected, EventCallback, Resumed, VoiceEvent
from audionode.transport.udp import DatagramCallback, VoiceUdp
from audionode.transport.ws import GatewaySocket
from audionode.voice import wire
from audionode.voice.crypto import SUPPORTED_MODES, choose_mode, cipher_for
from audionode.voice.dave import MAX_PROTOCOL_VERSION, DaveError, DaveState
from audionode.voice.gateway import ClientGateway, ClientState, Side, VoiceGateway
from audionode.voice.opcodes import (
    GATEWAY_VERSION,
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
    close_action,
    is_bug,
)
from audionode.voice.packetizer import Packetizer

__all__ = [
    "Closed",
    "Connected",
    "EventCallback",
    "Resumed",
    "VoiceConnection",
    "VoiceEvent",
    "backoff",
    "gateway_url",
]

log = logging.getLogger(__name__)

MAX_ATTEMPTS: Final = 6
"""Consecutive failed (re)connection attempts before giving up (backoff 0, .5, 1, 2, 4, 8 s)."""
MISSED_ACKS: Final = 2
"""Heartbeats without an op 6 before the socket counts as dead (then resumed)."""
_WS_TIMEOUT: Final = aiohttp.ClientWSTimeout(ws_close=2.0)
_DAVE_JSON_OPS: Final[dict[type, Op]] = {
    DavePrepareTransition: Op.DAVE_PREPARE_TRANSITION,
    DaveExecuteTransition: Op.DAVE_EXECUTE_TRANSITION,
    DavePrepareEpoch: Op.DAVE_PREPARE_EPOCH,
}

_DAVE_HEAVY: Final = (wire.BinaryMessage, SessionDescription, DavePrepareEpoch)
"""Messages whose DAVE handling runs MLS (sessions, key packages, welcomes, commits): a few
milliseconds each in davey with the GIL held, so they go through ``transport.cpugate``."""


def gateway_url(endpoint: str) -> str:
    """``wss://{endpoint}/?v=8``; an endpoint that already has a ``ws://``/``wss://`` scheme is
    kept as it is (loopback voice servers), with ``v=8`` added (§1.1, §1.2)."""
    endpoint = endpoint.strip()
    if not endpoint:
        raise VoiceError("endpoint is empty: wait for the next VOICE_SERVER_UPDATE")
    if not endpoint.startswith(("ws://", "wss://")):
        endpoint = f"wss://{endpoint}"
    url = URL(endpoint)
    if not url.path:
        url = url.with_path("/")
    return str(url.update_query(v=GATEWAY_VERSION))


def backoff(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt`` (1-based) of a resume or reconnect."""
    return 0.0 if attempt <= 1 else min(0.5 * 2 ** (attempt - 2), 8.0)


class VoiceConnection:
    """One guild's voice connection. Create it with the bot's credentials, ``await connect()``,
    then hand it to the :class:`~audionode.media.sender.Sender`, which calls :meth:`send_frame`,
    :meth:`set_speaking` and :meth:`send_keepalive` (all synchronous and non-blocking).

    ``on_event`` receives :class:`Connected`, :class:`Resumed` and :class:`Closed` from the event
    loop; it must not block. ``on_datagram(data, kind)`` (optional) sees every received UDP
    datagram but the discovery reply: the audio the server forwards from other members, RTCP.
    After a final ``Closed`` (``will_reconnect=False``) call
    :meth:`reconnect` with a new VOICE_SERVER_UPDATE, or :meth:`close`.
    """

    def __init__(
        self,
        guild_id: int,
        user_id: int,
        session_id: str,
        channel_id: int,
        token: str,
        endpoint: str,
        settings: VoiceConfig,
        on_event: EventCallback,
        *,
        http: aiohttp.ClientSession | None = None,
        on_datagram: DatagramCallback | None = None,
        modes: Sequence[str] = SUPPORTED_MODES,
    ) -> None:
        self.guild_id, self.user_id = guild_id, user_id
        self.session_id, self.channel_id, self.token = session_id, channel_id, token
        self.url = gateway_url(endpoint)
        self.settings = settings
        self._on_event = on_event
        self._on_datagram = on_datagram
        self.modes = tuple(modes)
        """Transport modes we accept; the best offered one is chosen (AES-GCM first, §1.10)."""
        self._http, self._own_http = http, http is None
        self.gateway: ClientGateway = VoiceGateway(Side.CLIENT)
        self.dave = DaveState(user_id, channel_id)
        self._udp: VoiceUdp | None = None
        self._packetizer: Packetizer | None = None
        self.mode: str | None = None
        self._speaking = False
        self._sock: GatewaySocket | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected: asyncio.Future[None] | None = None
        self._failures = 0
        self.max_attempts = MAX_ATTEMPTS
        """Consecutive failed resumes/reconnects before the connection gives up."""
        self.frames_sent = 0
        self.frames_dropped = 0
        """Frames given to :meth:`send_frame` while not ready, or that DAVE failed to encrypt."""
        self.last_heartbeat_rtt_ms: float | None = None
        self.log = logging.LoggerAdapter(log, {"guild": guild_id})

    # --- the sender's side (synchronous, per frame) ------------------------------------------

    @property
    def ready(self) -> bool:
        """True while frames can be sent: UDP open and an op 4 key installed (also during a
        resume, when the old UDP and key stay valid)."""
        p, udp = self._packetizer, self._udp
        return p is not None and p.keyed and udp is not None and udp.is_open

    @property
    def ssrc(self) -> int | None:
        return self._packetizer.ssrc if self._packetizer is not None else None

    @property
    def packetizer(self) -> Packetizer | None:
        """The RTP state (seq, timestamp, nonce counter) of the current session."""
        return self._packetizer

    def send_frame(self, opus: bytes) -> None:
        """DAVE-encrypt (when the group is ready; never silence), packetize, seal and send one
        20 ms opus frame. Never raises and never blocks; dropped while not :attr:`ready`."""
        p, udp = self._packetizer, self._udp
        if p is None or udp is None or not p.keyed:
            self.frames_dropped += 1
            return
        try:
            udp.send(p.packet(opus))
        except Exception:  # a DAVE ratchet hiccup must not kill the sender; counters unchanged
            self.frames_dropped += 1
            return
        self.frames_sent += 1

    def set_speaking(self, on: bool) -> None:
        """Send op 5 now when the session is active; remembered and re-sent after op 4/op 9."""
        self._speaking = on
        self._send_speaking()

    def send_keepalive(self) -> None:
        """The 8-byte UDP keepalive (§1.11); the sender calls it after 5 s without a packet."""
        p, udp = self._packetizer, self._udp
        if p is not None and udp is not None:
            udp.send(p.keepalive())

    # --- lifecycle ----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the session and return once op 4 is processed (media may flow).

        Raises :class:`VoiceError` when the server refuses (the ``Closed`` event says why), on
        ``settings.connect_timeout``, or when :meth:`close` is called meanwhile. Resumes and
        reconnects after this happen in the background and are reported as events.
        """
        if self._task is not None:
            raise RuntimeError("connect() called twice; use reconnect() for new credentials")
        self._connected = asyncio.get_running_loop().create_future()
        self._failures = 0
        self._task = asyncio.create_task(self._supervise(), name=f"voice-{self.guild_id}")
        try:
            await asyncio.wait_for(asyncio.shield(self._connected), self.settings.connect_timeout)
        except TimeoutError:
            await self._stop(1000, "connect timed out")
            self._emit(Closed(1006, "connect timed out", False, False))
            raise VoiceError(
                f"voice connect to {self.url} timed out after {self.settings.connect_timeout:g} s"
            ) from None

    async def reconnect(self, token: str, endpoint: str, channel_id: int, session_id: str) -> None:
        """Start over with a new VOICE_SERVER_UPDATE/VOICE_STATE_UPDATE (channel move, region
        change, after a 4014/4006...): new websocket, UDP, SSRC, key and DAVE group (§1.2)."""
        url = gateway_url(endpoint)
        if self._sock is not None:
            self._emit(Closed(1000, "reconnecting with new credentials", False, True))
        await self._stop(1000, "reconnecting with new credentials")
        self.token, self.url, self.session_id = token, url, session_id
        self.channel_id = channel_id
        self.gateway = VoiceGateway(Side.CLIENT)
        self.dave = DaveState(self.user_id, channel_id)
        await self.connect()

    async def close(self) -> None:
        """Close the websocket (1000) and the UDP socket; idempotent. Emits a final ``Closed``
        when a websocket was open."""
        had_socket = self._sock is not None
        await self._stop(CloseCode.NORMAL, "closed by client")
        if had_socket:
            self._emit(Closed(1000, "closed by client", False, False))
        if self._own_http and self._http is not None:
            await self._http.close()
            self._http = None

    async def _stop(self, code: int, reason: str) -> None:
        """Cancel the supervisor; its socket leaves with close ``code`` (no event from it)."""
        task, self._task = self._task, None
        if self._sock is not None:
            self._sock.final = (code, reason)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._fail_connect(VoiceError(f"voice connection stopped: {reason}"))
        self._drop_udp()

    def _drop_udp(self) -> None:
        if self._udp is not None:
            self._udp.close()
        self._udp, self._packetizer, self.mode = None, None, None

    # --- supervisor: one socket after another, per the close policy ---------------------------

    async def _supervise(self) -> None:
        resume = False
        while True:
            code, reason, by_remote, opened = await self._run_socket(resume)
            action = self._next_action(code)
            again = action in (CloseAction.RESUME, CloseAction.RECONNECT)
            if action is None:
                reason = f"{reason} (gave up after {self.max_attempts} attempts)"
            level = logging.ERROR if is_bug(code) else logging.INFO
            step = action.value if action is not None else "give up"
            self.log.log(
                level, "voice ws closed %s %r (remote=%s): %s", code, reason, by_remote, step
            )
            if opened or not again:
                self._emit(Closed(code, reason, by_remote, again))
            if not again:
                self._fail_connect(VoiceError(f"voice gateway closed {code}: {reason}"))
                self._drop_udp()
                self._task = None
                return
            resume = action is CloseAction.RESUME
            if not resume:
                self._drop_udp()
            await asyncio.sleep(backoff(self._failures))

    def _next_action(self, code: int) -> CloseAction | None:
        """:func:`close_action` (the one policy), adjusted to this session: a lost socket before
        the first op 4 has nothing to resume; ``None`` after :attr:`max_attempts` failures."""
        action = close_action(code)
        if action is CloseAction.RESUME and not self.gateway.resumable:
            action = CloseAction.RECONNECT
        if action in (CloseAction.RESUME, CloseAction.RECONNECT):
            self._failures += 1
            if self._failures > self.max_attempts:
                return None
        return action

    async def _run_socket(self, resume: bool) -> tuple[int, str, bool, bool]:
        """Open one websocket, identify or resume, read until it ends.
        Returns ``(code, reason, by_remote, opened)``."""
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                ws = await self._session().ws_connect(self.url, timeout=_WS_TIMEOUT)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return CloseCode.ABNORMAL, f"cannot open {self.url}: {exc!r}", False, False
        sock = self._sock = GatewaySocket(ws)
        try:
            self.gateway.new_connection()
            if resume:
                sock.send(self.gateway.resume(self.guild_id, self.session_id, self.token))
            else:
                sock.send(
                    self.gateway.identify(
                        self.guild_id, self.user_id, self.session_id, self.token, self._max_dave()
                    )
                )
            code, reason, by_remote = await self._read(sock)
        except VoiceError as exc:  # IP discovery failed, no usable mode...: try again
            await sock.abandon(str(exc))
            code, reason, by_remote = CloseCode.ABNORMAL, str(exc), False
        finally:
            self._sock = None
            await sock.dispose()
        return code, reason, by_remote, True

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    def _max_dave(self) -> int:
        return MAX_PROTOCOL_VERSION if self.settings.dave else 0

    async def _read(self, sock: GatewaySocket) -> tuple[int, str, bool]:
        ws = sock.ws
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                await self._feed(sock, msg.data)
                continue
            if sock.abandoned is not None:
                return CloseCode.ABNORMAL, sock.abandoned, False
            if msg.type is aiohttp.WSMsgType.CLOSE:
                return int(msg.data), str(msg.extra or ""), True
            exc = ws.exception()
            return ws.close_code or CloseCode.ABNORMAL, str(exc or "connection lost"), True

    # --- received messages ------------------------------------------------------------------

    async def _feed(self, sock: GatewaySocket, data: str | bytes) -> None:
        try:
            events = self.gateway.feed(data)
        except wire.GatewayError as exc:
            self.log.warning("ignoring bad voice gateway message: %s", exc)
            return
        for event in events:
            try:
                if isinstance(event, Ready):
                    await self._on_ready(sock, event)
                elif self.settings.dave and isinstance(event, _DAVE_HEAVY):
                    async with gate_for_loop():  # MLS work: see transport/cpugate.py
                        self._on_event_sync(sock, event)
                else:
                    self._on_event_sync(sock, event)
            except VoiceError:
                raise  # this socket is unusable (no UDP, bad key): _run_socket drops it
            except Exception:  # a bug must cost one message, not the connection
                self.log.exception("voice gateway event %s failed", type(event).__name__)

    def _on_event_sync(self, sock: GatewaySocket, event: msgspec.Struct) -> None:
        if isinstance(event, Hello):
            if sock.heartbeat is None:
                interval = event.heartbeat_interval / 1000
                sock.heartbeat = asyncio.create_task(self._heartbeat(sock, interval))
        elif isinstance(event, HeartbeatAck):
            sock.unacked = 0
            self.last_heartbeat_rtt_ms = time.time() * 1000 - event.t
        elif isinstance(event, SessionDescription):
            self._on_session_description(sock, event)
        elif isinstance(event, wire.Resumed):
            self._failures = 0
            self._send_speaking()
            self._emit(Resumed())
        elif isinstance(event, ClientsConnect | ClientDisconnect):
            self._recognize(event)
        elif isinstance(event, wire.BinaryMessage):
            self._dave_op(sock, event.op, event.payload)
        elif (op := _DAVE_JSON_OPS.get(type(event))) is not None:
            self._dave_op(sock, op, event)
        # op 5 from other members (SSRC -> user) matters only for receiving audio: ignored.

    def _recognize(self, event: ClientsConnect | ClientDisconnect) -> None:
        """ops 11/13 feed DAVE's recognized-user set (§2.2); ids must be snowflakes."""
        try:
            if isinstance(event, ClientsConnect):
                self.dave.on_clients_connect(event.user_ids)
            else:
                self.dave.on_client_disconnect(event.user_id)
        except ValueError:
            self.log.warning(
                "op %d ignored: user ids must be snowflakes, got %r",
                11 if isinstance(event, ClientsConnect) else 13,
                event,
            )

    def _dave_op(self, sock: GatewaySocket, op: Op, data: msgspec.Struct | bytes) -> None:
        try:
            out = self.dave.handle(op, data)
        except DaveError as exc:
            self.log.warning("DAVE message dropped: %s", exc)
            return
        self._send_all(sock, out)

    def _send_all(self, sock: GatewaySocket, messages: list[Outgoing]) -> None:
        for message in messages:
            sock.send(self.gateway.send(message))

    async def _on_ready(self, sock: GatewaySocket, ready: Ready) -> None:
        """op 2: UDP socket + IP discovery (§1.8), then op 1 with our mode (§1.10)."""
        mode = choose_mode(m for m in ready.modes if m in self.modes)
        self._drop_udp()
        self._udp = await VoiceUdp.open(ready.ip, ready.port, self._on_datagram)
        found = await self._udp.discover(ready.ssrc)
        self._packetizer = Packetizer(
            ready.ssrc, sequence=secrets.randbelow(1 << 16), timestamp=secrets.randbelow(1 << 32)
        )
        sock.send(self.gateway.select_protocol(found.ip, found.port, mode))

    def _on_session_description(self, sock: GatewaySocket, sd: SessionDescription) -> None:
        """op 4: new key (nonce restarts at 0), DAVE (re)init + key package, then op 5."""
        p = self._packetizer
        if p is None:
            self.log.warning("op 4 before op 2 Ready: ignored")
            return
        p.set_cipher(cipher_for(sd.mode, sd.secret_key))
        p.set_encryptor(self.dave)
        self.mode = sd.mode
        try:
            self._send_all(sock, self.dave.on_session_description(sd.dave_protocol_version))
        except DaveError as exc:
            self.log.warning("DAVE init failed: %s", exc)
        self._failures = 0
        self._send_speaking()
        self._emit(Connected(p.ssrc, sd.mode, sd.dave_protocol_version))
        if self._connected is not None and not self._connected.done():
            self._connected.set_result(None)

    # --- helpers ----------------------------------------------------------------------------

    def _send_speaking(self) -> None:
        sock = self._sock
        if sock is not None and self.gateway.state is ClientState.ACTIVE:
            sock.send(self.gateway.speaking(1 if self._speaking else 0))

    async def _heartbeat(self, sock: GatewaySocket, interval: float) -> None:
        """op 3 every Hello interval with ``seq_ack`` (§1.4, §1.5); close after missed ACKs."""
        while True:
            await asyncio.sleep(interval)
            if sock.unacked >= MISSED_ACKS:
                await sock.abandon(f"no heartbeat ACK for {sock.unacked} beats")
                return
            sock.send(self.gateway.heartbeat(int(time.time() * 1000)))
            sock.unacked += 1

    def _emit(self, event: VoiceEvent) -> None:
        try:
            self._on_event(event)
        except Exception:
            self.log.exception("voice event callback failed for %r", event)

    def _fail_connect(self, exc: VoiceError) -> None:
        fut = self._connected
        if fut is not None and not fut.done():
            fut.set_exception(exc)
            fut.exception()  # retrieved here: connect() may already have given up waiting
