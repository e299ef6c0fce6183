"""VoiceConnection: the asyncio driver of one :class:`~audionode.voice.client.VoiceClient`.

The voice session itself is sans-I/O (``voice/client.py``: handshake, heartbeats, resume, the
close-code policy, DAVE, both media paths). This module only moves its bytes and keeps its
time: an aiohttp websocket (:mod:`.ws`), the UDP socket (:mod:`.udp`), one timer for the
session's next deadline, and the supervisor task that opens one websocket after another as the
session's :class:`~audionode.voice.events.Reopen` actions say (docs/discord-voice.md §1.6, §1.7).

DAVE steps that run MLS go through :mod:`.cpugate` so that bursts of joins do not stall the
real-time sender (the session says which, :meth:`VoiceClient.is_heavy`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

import aiohttp
from yarl import URL

from audionode.config import VoiceConfig
from audionode.errors import VoiceError
from audionode.transport.cpugate import gate_for_loop
from audionode.transport.udp import VoiceUdp
from audionode.transport.ws import GatewaySocket
from audionode.voice.client import Credentials, VoiceClient
from audionode.voice.crypto import SUPPORTED_MODES
from audionode.voice.dave import DaveState
from audionode.voice.events import (
    Closed,
    Connected,
    ReceiveEvent,
    Reopen,
    Resumed,
    UdpClose,
    UdpOpen,
    UdpSend,
    VoiceEvent,
    WsClose,
    WsSend,
)
from audionode.voice.opcodes import GATEWAY_VERSION, backoff
from audionode.voice.packetizer import NativePacketizer

if TYPE_CHECKING:
    from audionode.native import _packet

__all__ = [
    "Closed",
    "Connected",
    "EventCallback",
    "ReceiveCallback",
    "Resumed",
    "VoiceConnection",
    "VoiceEvent",
    "backoff",
    "gateway_url",
]

log = logging.getLogger(__name__)

EventCallback = Callable[[VoiceEvent], None]
ReceiveCallback = Callable[[ReceiveEvent], None]
_WS_TIMEOUT: Final = aiohttp.ClientWSTimeout(ws_close=2.0)


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


class VoiceConnection:
    """One guild's voice connection. Create it with the bot's credentials, ``await connect()``,
    then hand it to the real-time sender (``transport/sender.py``), which calls
    :meth:`send_frame`, :meth:`set_speaking` and :meth:`send_keepalive` (all synchronous and
    non-blocking) and reads :attr:`ready` / :attr:`audio_ready`.

    ``on_event`` receives :class:`Connected`, :class:`Resumed` and :class:`Closed` from the event
    loop; it must not block. ``on_receive`` (optional) turns the receive path on: other members'
    audio (:class:`~audionode.voice.events.AudioPacket`), failures, speaking and leave events.
    After a final ``Closed`` (``will_reconnect=False``) call :meth:`reconnect` with a new
    VOICE_SERVER_UPDATE, or :meth:`close`.
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
        on_receive: ReceiveCallback | None = None,
        modes: Sequence[str] = SUPPORTED_MODES,
    ) -> None:
        self.url = gateway_url(endpoint)
        self.settings = settings
        creds = Credentials(guild_id, user_id, channel_id, session_id, token)
        self.session = VoiceClient(
            creds, dave=settings.dave, modes=modes, receive=on_receive is not None
        )
        self._on_event = on_event
        self._on_receive = on_receive
        self._http, self._own_http = http, http is None
        self._udp: VoiceUdp | None = None
        self._bound: _packet.Channel | None = None
        """The native channel :meth:`pump_channel` bound to :attr:`_udp`'s descriptor."""
        self._udp_opening: set[asyncio.Task[None]] = set()
        self._udp_wanted = 0
        """Bumped by every UdpOpen/UdpClose: an open that finishes after a newer one was asked
        for closes its socket at once (cancelling it could lose a socket already made)."""
        self._sock: GatewaySocket | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._reopen: Reopen | None = None
        self._connected: asyncio.Future[None] | None = None
        self.log = logging.LoggerAdapter(log, {"guild": guild_id})

    # --- what the session knows (the rest: ``self.session``) ---------------------------------

    @property
    def dave(self) -> DaveState:
        return self.session.dave

    @property
    def ssrc(self) -> int | None:
        p = self.session.packetizer
        return p.ssrc if p is not None else None

    @property
    def mode(self) -> str | None:
        return self.session.mode

    # --- the sender's side (synchronous, per frame) ------------------------------------------

    @property
    def ready(self) -> bool:
        """True while packets can be sent: UDP open and an op 4 key installed (also during a
        resume, when the old UDP and key stay valid)."""
        return self.session.ready

    @property
    def audio_ready(self) -> bool:
        """True while an audio frame can be sent without leaking past DAVE (else: silence)."""
        return self.session.audio_ready

    def send_frame(self, opus: bytes) -> None:
        """Seal and send one 20 ms opus frame (see :meth:`VoiceClient.seal`). Never raises and
        never blocks; dropped while not :attr:`ready`."""
        datagram = self.session.seal(opus)
        udp = self._udp
        if datagram is not None and udp is not None:
            udp.send(datagram)

    def queue_frame(self, opus: bytes, out: _packet.Batch) -> None:
        """:meth:`send_frame` through the sender's native tick batch (decision 0017): staged
        now, sealed and sent when the tick flushes ``out``; the Python path when this
        session's packetizer is not native."""
        udp = self._udp
        fd = udp.fileno if udp is not None else -1
        if fd < 0 or not self.session.stage(opus, out, fd):
            self.send_frame(opus)
        elif udp is not None:
            udp.sent += 1

    def pump_channel(self) -> _packet.Channel | None:
        """The native channel the sender's Pump may serve now (decision 0020), bound to this
        connection's UDP socket; ``None`` while audio cannot go out natively (not
        :attr:`audio_ready`, a Python packetizer, no socket). The channel stays served only
        while ``live`` (the session clears it) and bound (:meth:`_close_udp` unbinds it before
        the socket closes, so its descriptor number is never used after it is reused)."""
        udp = self._udp
        p = self.session.packetizer
        if udp is None or not self.session.audio_ready or not isinstance(p, NativePacketizer):
            return None
        fd = udp.fileno
        if fd < 0:
            return None
        if self._bound is not None and self._bound is not p.channel:
            self._bound.fd = -1
        p.channel.fd = fd
        self._bound = p.channel
        return p.channel

    def set_speaking(self, on: bool) -> None:
        """Send op 5 now when the session is active; remembered and re-sent after op 4/op 9."""
        self.session.set_speaking(on)
        self._flush()

    def send_keepalive(self) -> None:
        """The 8-byte UDP keepalive (§1.11); the sender calls it after 5 s without a packet."""
        datagram = self.session.keepalive()
        if datagram is not None and self._udp is not None:
            self._udp.send(datagram)

    # --- lifecycle ----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the session and return once op 4 is processed (media may flow).

        Raises :class:`VoiceError` when the server refuses (the ``Closed`` event says why), on
        ``settings.connect_timeout``, or when :meth:`close` is called meanwhile. Resumes and
        reconnects after this happen in the background and are reported as events.
        """
        if self._task is not None:
            raise RuntimeError("connect() called twice; use reconnect() for new credentials")
        if self.session.final:
            raise VoiceError("this voice session is over; reconnect() with new credentials")
        self._connected = asyncio.get_running_loop().create_future()
        name = f"voice-{self.session.creds.guild_id}"
        self._task = asyncio.create_task(self._supervise(), name=name)
        try:
            await asyncio.wait_for(asyncio.shield(self._connected), self.settings.connect_timeout)
        except TimeoutError:
            self.session.close("connect timed out", lost=True)
            self._flush()
            await self._stop()
            raise VoiceError(
                f"voice connect to {self.url} timed out after {self.settings.connect_timeout:g} s"
            ) from None

    async def reconnect(self, token: str, endpoint: str, channel_id: int, session_id: str) -> None:
        """Start over with a new VOICE_SERVER_UPDATE/VOICE_STATE_UPDATE (channel move, region
        change, after a 4014/4006...): new websocket, UDP, SSRC, key and DAVE group (§1.2)."""
        url = gateway_url(endpoint)
        c = self.session.creds
        self.session.restart(Credentials(c.guild_id, c.user_id, channel_id, session_id, token))
        self._flush()
        await self._stop()
        self.url = url
        await self.connect()

    async def close(self) -> None:
        """Close the websocket (1000) and the UDP socket; idempotent. Emits a final ``Closed``
        when a websocket was open."""
        self.session.close()
        self._flush()
        await self._stop()
        if self._own_http and self._http is not None:
            await self._http.close()
            self._http = None

    async def _stop(self) -> None:
        """Cancel the supervisor (its socket leaves with the close code the session chose)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._fail_connect(VoiceError("voice connection stopped"))
        self._cancel_timer()
        self._close_udp()
        if self._udp_opening:  # each closes the socket it made (see _open_udp)
            await asyncio.gather(*self._udp_opening, return_exceptions=True)

    # --- supervisor: one socket after another -------------------------------------------------

    async def _supervise(self) -> None:
        try:
            while not self.session.final:
                await self._one_socket()
                reopen, self._reopen = self._reopen, None
                if reopen is None:
                    break
                await asyncio.sleep(reopen.delay)
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def _one_socket(self) -> None:
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                ws = await self._session().ws_connect(self.url, timeout=_WS_TIMEOUT)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.session.socket_failed(f"cannot open {self.url}: {exc!r}", time.monotonic())
            self._flush()
            return
        except RuntimeError as exc:  # the owner closed the HTTP session under us: we are done
            self.session.close(f"cannot open {self.url}: {exc}", lost=True)
            self._flush()
            return
        sock = self._sock = GatewaySocket(ws)
        try:
            self.session.socket_opened(time.monotonic())
            self._flush()
            code, reason, by_remote = await self._read(sock)
        finally:
            self._sock = None
            await sock.dispose()
        self.session.socket_closed(code, reason, by_remote, time.monotonic())
        self._flush()

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    async def _read(self, sock: GatewaySocket) -> tuple[int | None, str, bool]:
        ws, session = sock.ws, self.session
        while True:
            msg = await ws.receive()
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                break
            for event in session.parse(msg.data):
                if session.dave_enabled and session.is_heavy(event):
                    async with gate_for_loop():  # MLS work: see transport/cpugate.py
                        session.handle(event, time.monotonic())
                else:
                    session.handle(event, time.monotonic())
                self._flush()
        if msg.type is aiohttp.WSMsgType.CLOSE:
            return int(msg.data), str(msg.extra or ""), True
        exc = ws.exception()
        return ws.close_code, str(exc or "connection lost"), True

    # --- performing the session's output ------------------------------------------------------

    def _flush(self) -> None:
        """Perform every action the session asked for; hand its events to the owner."""
        for out in self.session.take():
            if isinstance(out, WsSend):
                if self._sock is not None:
                    self._sock.send(out.frame)
            elif isinstance(out, UdpSend):
                if self._udp is not None:
                    self._udp.send(out.data)
            elif isinstance(out, WsClose):
                if self._sock is not None:
                    self._sock.close_soon(out.code, out.reason)
            elif isinstance(out, UdpOpen):
                self._close_udp()
                task = asyncio.create_task(self._open_udp(out.host, out.port))
                self._udp_opening.add(task)
                task.add_done_callback(self._udp_opening.discard)
            elif isinstance(out, UdpClose):
                self._close_udp()
            elif isinstance(out, Reopen):
                self._reopen = out
            elif isinstance(out, Connected | Resumed | Closed):
                self._emit(out)
            elif self._on_receive is not None:
                self._on_receive(out)
        self._arm_timer()

    async def _open_udp(self, host: str, port: int) -> None:
        wanted = self._udp_wanted
        try:
            udp = await VoiceUdp.open(host, port, self._datagram)
        except VoiceError as exc:
            if wanted == self._udp_wanted:
                self.session.udp_failed(str(exc))
                self._flush()
            return
        if wanted != self._udp_wanted:  # the session moved on meanwhile
            udp.close()
            return
        self._udp = udp
        self.session.udp_opened(time.monotonic())
        self._flush()

    def _close_udp(self) -> None:
        self._udp_wanted += 1
        if self._bound is not None:  # before the descriptor can be reused by another socket
            self._bound.fd = -1
            self._bound = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None

    def _datagram(self, data: bytes) -> None:
        self.session.receive_datagram(data, time.monotonic())
        self._flush()

    def _arm_timer(self) -> None:
        at = self.session.next_deadline()
        if at == self._timer_at:
            return
        self._cancel_timer()
        if at is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, at - time.monotonic()), self._on_timer)
            self._timer_at = at

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, None

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, None
        self.session.poll(time.monotonic())
        self._flush()

    def _emit(self, event: VoiceEvent) -> None:
        if isinstance(event, Connected):
            fut = self._connected
            if fut is not None and not fut.done():
                fut.set_result(None)
        elif isinstance(event, Closed) and not event.will_reconnect:
            self._fail_connect(VoiceError(f"voice gateway closed {event.code}: {event.reason}"))
        try:
            self._on_event(event)
        except Exception:
            self.log.exception("voice event callback failed for %r", event)

    def _fail_connect(self, exc: VoiceError) -> None:
        fut = self._connected
        if fut is not None and not fut.done():
            fut.set_exception(exc)
            fut.exception()  # retrieved here: connect() may already have given up waiting
