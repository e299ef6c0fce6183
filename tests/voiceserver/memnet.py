"""An in-memory voice network for tests: real client and server gateways, DaveState, DaveChannel,
packetizer and transport ciphers, wired with FIFO queues instead of sockets.

The server part is a deliberately small driver (the real one lives in the voice server's I/O
layer); it does what "Serving the other side" lists: identify → ready + op 11, select → op 4 +
op 25, speaking relay, heartbeat ACK, DAVE delivery, an SFU step for RTP.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from audionode.voice import rtp
from audionode.voice.client import Credentials, VoiceClient
from audionode.voice.crypto import SUPPORTED_MODES, TransportCipher, cipher_for
from audionode.voice.dave import DaveState
from audionode.voice.events import (
    AudioPacket,
    Output,
    Reopen,
    UdpClose,
    UdpOpen,
    UdpSend,
    WsClose,
    WsSend,
)
from audionode.voice.gateway import ServerGateway, Side, VoiceGateway
from audionode.voice.opcodes import (
    DaveInvalidCommitWelcome,
    DaveTransitionReady,
    Heartbeat,
    Identify,
    Op,
    Outgoing,
    SelectProtocol,
    Speaking,
)
from audionode.voice.wire import BinaryMessage
from audionode.voiceserver.dave_delivery import (
    DaveChannel,
    Send,
    identify_close_code,
    negotiate_protocol_version,
)

GUILD = 77
LOCAL = "127.0.0.1"
CHANNEL = 0x1234_5678_9ABC
BINARY_CLIENT_OPS = (Op.DAVE_MLS_KEY_PACKAGE, Op.DAVE_MLS_COMMIT_WELCOME)


@dataclass
class MemClient:
    """One voice client: the project's sans-I/O :class:`VoiceClient`, driven in memory (UDP
    discovery is answered on the spot, as the server would)."""

    user_id: int
    modes_wanted: tuple[str, ...] | None = None
    dave_enabled: bool = True
    session: VoiceClient = field(init=False)
    sent: list[str | bytes] = field(default_factory=list)
    received: list[str | bytes] = field(default_factory=list)
    heard: list[Output] = field(default_factory=list)
    """Receive events (audio of others, speaking, leaves) in arrival order."""
    online: bool = True

    def __post_init__(self) -> None:
        creds = Credentials(GUILD, self.user_id, CHANNEL, f"s{self.user_id}", f"t{self.user_id}")
        modes = self.modes_wanted or SUPPORTED_MODES
        self.session = VoiceClient(creds, dave=self.dave_enabled, modes=modes, receive=True)

    @property
    def dave(self) -> DaveState:
        return self.session.dave

    def start(self) -> list[str | bytes]:
        """A new websocket: op 0 (or op 7 after a resumable loss)."""
        self.session.socket_opened(0.0)
        return self._outputs()

    def feed(self, frame: str | bytes) -> list[str | bytes]:
        self.received.append(frame)
        self.session.receive(frame, 0.0)
        return self._outputs()

    def _outputs(self) -> list[str | bytes]:
        """Perform the session's actions in memory; return the websocket frames it sent."""
        frames: list[str | bytes] = []
        pending = self.session.take()
        while pending:
            out = pending.pop(0)
            if isinstance(out, WsSend):
                frames.append(out.frame)
            elif isinstance(out, UdpOpen):
                self.session.udp_opened(0.0)
            elif isinstance(out, UdpSend):  # IP discovery: answered as the server would
                ssrc = rtp.parse_discovery(out.data).ssrc
                port = 40000 + self.user_id % 1000
                self.session.receive_datagram(rtp.pack_discovery_response(ssrc, LOCAL, port), 0.0)
            elif not isinstance(out, WsClose | UdpClose | Reopen):
                self.heard.append(out)
            pending += self.session.take()
        self.sent += frames
        return frames

    def receive_rtp(self, packet: bytes) -> tuple[int, bytes, bytes]:
        """Transport-decrypt then DAVE-decrypt: (sender user id, dave frame, opus)."""
        cipher = self.session.cipher
        assert cipher is not None
        dave_frame = cipher.open(packet).payload
        self.session.receive_datagram(packet, 0.0)
        [event] = self.session.take()
        assert isinstance(event, AudioPacket), event
        return event.user_id, dave_frame, event.opus


@dataclass
class _Session:
    gw: ServerGateway
    key: bytes = b""
    cipher: TransportCipher | None = None
    nonce: int = 0


class MemServer:
    """A tiny voice server driver over ServerGateway + DaveChannel (+ an SFU step)."""

    def __init__(self, modes: list[str], *, dave_required: bool = True) -> None:
        self.modes = modes
        self.dave_required = dave_required
        self.channel = DaveChannel(CHANNEL)
        self.sessions: dict[int, _Session] = {}
        self.ssrcs: dict[int, int] = {}
        self.closed: dict[int, int] = {}

    def open(self, user_id: int) -> list[tuple[int, str | bytes]]:
        session = _Session(VoiceGateway(side=Side.SERVER, replay_capacity=256))
        self.sessions[user_id] = session
        return [(user_id, session.gw.hello())]

    def feed(self, user_id: int, frame: str | bytes) -> list[tuple[int, str | bytes]]:
        gw = self.sessions[user_id].gw
        out: list[tuple[int, str | bytes]] = []
        for ev in gw.feed(frame):
            out += self._on_event(user_id, gw, ev)
        return out

    def _on_event(
        self, uid: int, gw: ServerGateway, ev: msgspec.Struct
    ) -> list[tuple[int, str | bytes]]:
        if isinstance(ev, Identify):
            required = self.dave_required
            code = identify_close_code(ev.max_dave_protocol_version, dave_required=required)
            if code is not None:
                self.closed[uid] = code
                return []
            ssrc = self.ssrcs[uid] = 1000 + len(self.ssrcs)
            others = [u for u in self.sessions if u != uid]
            out = [(uid, gw.ready(ssrc, "127.0.0.1", 50000, self.modes))]
            out.append((uid, gw.clients_connect(others)))
            return out + [(u, self.sessions[u].gw.clients_connect([uid])) for u in others]
        if isinstance(ev, SelectProtocol):
            s = self.sessions[uid]
            s.key = os.urandom(32)
            s.cipher = cipher_for(ev.data.mode, s.key)
            assert gw.identity is not None
            version = negotiate_protocol_version(gw.identity.max_dave_protocol_version)
            version = min(version, self.channel.protocol_version)
            out = [(uid, gw.session_description(s.key, version))]
            return out + self.route(self.channel.on_join(uid) if version else [])
        if isinstance(ev, Heartbeat):
            return [(uid, gw.heartbeat_ack(ev.t))]
        if isinstance(ev, Speaking):
            return [
                (u, s.gw.speaking(uid, ev.ssrc, ev.speaking))
                for u, s in self.sessions.items()
                if u != uid
            ]
        if isinstance(ev, BinaryMessage) and ev.op == Op.DAVE_MLS_KEY_PACKAGE:
            return self.route(self.channel.on_key_package(uid, ev.payload))
        if isinstance(ev, BinaryMessage) and ev.op == Op.DAVE_MLS_COMMIT_WELCOME:
            return self.route(self.channel.on_commit_welcome(uid, ev.payload))
        if isinstance(ev, DaveTransitionReady):
            return self.route(self.channel.on_transition_ready(uid, ev.transition_id))
        if isinstance(ev, DaveInvalidCommitWelcome):
            return self.route(self.channel.on_invalid_commit_welcome(uid, ev.transition_id))
        return []

    def route(self, sends: list[Send]) -> list[tuple[int, str | bytes]]:
        return [(s.recipient, self.sessions[s.recipient].gw.send(s.message)) for s in sends]

    def send(self, uid: int, message: Outgoing) -> list[tuple[int, str | bytes]]:
        return [(uid, self.sessions[uid].gw.send(message))]

    def leave(self, uid: int) -> list[tuple[int, str | bytes]]:
        del self.sessions[uid]
        out = [(u, s.gw.client_disconnect(uid)) for u, s in self.sessions.items()]
        return out + self.route(self.channel.on_leave(uid))

    def forward(self, uid: int, packet: bytes) -> dict[int, bytes]:
        """SFU: open with the sender's key, re-seal for each other member with theirs."""
        src = self.sessions[uid].cipher
        assert src is not None
        opened = src.open(packet)
        out = {}
        for u, s in self.sessions.items():
            if u != uid and s.cipher is not None:
                out[u] = s.cipher.seal(opened.aad, opened.plaintext, s.nonce)
                s.nonce = (s.nonce + 1) % 2**32
        return out


class MemNet:
    """Clients and the server with FIFO delivery; :meth:`pump` runs until quiet."""

    def __init__(self, modes: list[str], **server_kw: bool) -> None:
        self.server = MemServer(modes, **server_kw)
        self.clients: dict[int, MemClient] = {}
        self.to_server: deque[tuple[int, str | bytes]] = deque()
        self.to_clients: deque[tuple[int, str | bytes]] = deque()
        self.drop: Callable[[int, str | bytes], bool] = lambda uid, frame: False
        """Return True to lose a server→client frame (tests of missing replies)."""
        self.packets: dict[int, list[bytes]] = {}
        """Every datagram each client's packetizer produced, in order."""

    def connect(
        self, user_id: int, modes_wanted: tuple[str, ...] | None = None, *, pump: bool = True
    ) -> MemClient:
        client = self.clients[user_id] = MemClient(user_id, modes_wanted)
        self.to_clients.extend(self.server.open(user_id))
        self.to_server.extend((user_id, f) for f in client.start())
        if pump:
            self.pump()
        return client

    def leave(self, user_id: int) -> None:
        del self.clients[user_id]
        self.to_clients.extend(self.server.leave(user_id))
        self.pump()

    def deliver(self, frames: list[tuple[int, str | bytes]]) -> None:
        self.to_clients.extend(frames)
        self.pump()

    def pump(self, limit: int = 10000) -> None:
        for _ in range(limit):
            if self.to_clients:
                uid, frame = self.to_clients.popleft()
                client = self.clients.get(uid)
                if client is not None and client.online and not self.drop(uid, frame):
                    self.to_server.extend((uid, f) for f in client.feed(frame))
            elif self.to_server:
                uid, frame = self.to_server.popleft()
                if uid in self.server.sessions and uid not in self.server.closed:
                    self.to_clients.extend(self.server.feed(uid, frame))
            else:
                return
        raise AssertionError("network did not settle")

    def play(self, sender: int, frames: list[bytes]) -> dict[int, list[tuple[bytes, bytes]]]:
        """Send frames from ``sender`` through the SFU; each receiver's (dave frame, opus)."""
        client = self.clients[sender]
        # Speaking before audio (§1.11): it also tells the others our SSRC.
        client.session.set_speaking(True)
        self.to_server.extend((sender, f) for f in client._outputs())
        self.pump()
        got: dict[int, list[tuple[bytes, bytes]]] = {u: [] for u in self.clients if u != sender}
        for frame in frames:
            datagram = client.session.seal(frame)
            assert datagram is not None, "the sender's session is not ready"
            self.packets.setdefault(sender, []).append(datagram)
            for uid, pkt in self.server.forward(sender, datagram).items():
                src, dave_frame, opus = self.clients[uid].receive_rtp(pkt)
                assert src == sender
                got[uid].append((dave_frame, opus))
        return got
