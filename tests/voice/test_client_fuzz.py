"""Property tests (issue 11 item 10, voice part): whatever the network sends, the voice session
raises nothing and its safety net never fires.

The session is fed arbitrary gateway JSON (well-formed envelopes with arbitrary or mostly
well-typed ``d``, and junk), arbitrary server binary frames (DAVE ops 25, 27, 29, 30 with
arbitrary payloads) and arbitrary datagrams, on a fresh session and on an active one with DAVE on
and the receive path open. Documented outcomes only: a bad frame is logged at WARNING and
ignored, an unusable session is dropped (a ``WsClose`` action, then resumed or re-identified). An
ERROR record from ``audionode.voice`` means an exception reached the "a bug costs one message"
net, which fails the test. RTP, RTCP and DAVE-binary parsers get their own properties.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import struct
from collections.abc import Iterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audionode.errors import VoiceError
from audionode.voice.client import Credentials, VoiceClient
from audionode.voice.crypto import AES_GCM_MODE, XCHACHA_MODE, CryptoError, cipher_for
from audionode.voice.dave import DaveError, DaveState
from audionode.voice.events import AudioPacket, ReceiveFailed, WsClose
from audionode.voice.gateway import ClientState
from audionode.voice.opcodes import Op
from audionode.voice.packetizer import Packetizer
from audionode.voice.receive import Receiver
from audionode.voice.rtp import RtpError, is_rtcp
from audionode.voiceserver import mls

CREDS = Credentials(1, 2, 3, "s", "t")
KEY = bytes(range(32))


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def no_errors_logged() -> Iterator[None]:
    net, logger = Errors(), logging.getLogger("audionode.voice")
    logger.addHandler(net)
    try:
        yield
    finally:
        logger.removeHandler(net)
    assert not net.records, [r.getMessage() for r in net.records]


def active_client() -> VoiceClient:
    """As after op 2, discovery and op 4 with DAVE v1, receive path on."""
    c = VoiceClient(CREDS, receive=True)
    c.socket_opened(0.0)
    c.gateway.state, c.gateway.ssrc, c.gateway.resumable = ClientState.ACTIVE, 7, True
    c.packetizer = Packetizer(7, cipher_for(AES_GCM_MODE, KEY))
    c.cipher = cipher_for(AES_GCM_MODE, KEY)
    c.dave.on_external_sender(mls.ExternalSender().package())
    c.dave.on_session_description(1)
    c.take()
    return c


ints = st.integers(-(2**40), 2**40)
json_values = st.recursive(
    st.none() | st.booleans() | ints | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_typed = {
    "transition_id": ints,
    "protocol_version": ints,
    "epoch": ints,
    "user_ids": st.lists(st.text(max_size=20) | ints, max_size=3),
    "user_id": st.text(max_size=20) | ints,
    "heartbeat_interval": st.integers(1, 10**6),
    "t": ints,
    "mode": st.sampled_from([AES_GCM_MODE, XCHACHA_MODE, "nope"]),
    "modes": st.lists(st.sampled_from([AES_GCM_MODE, "xsalsa20_poly1305", "x"]), max_size=3),
    "secret_key": st.lists(st.integers(-1, 300), max_size=33),
    "dave_protocol_version": st.integers(-1, 2),
    "speaking": ints,
    "ssrc": ints,
    "ip": st.sampled_from(["127.0.0.1", "", "::1"]),
    "port": st.integers(-1, 70000),
}
# Every field any client-side op reads, mostly well-typed (so frames get past the decoder and
# into the handlers), sometimes not.
known_fields = st.fixed_dictionaries(
    {k: st.one_of(v, v, v, json_values) for k, v in _typed.items()}
)
envelopes = st.builds(
    lambda op, d, seq: json.dumps({"op": op, "d": d, "seq": seq}),
    st.sampled_from([2, 4, 5, 6, 8, 9, 11, 13, 21, 22, 24]) | st.integers(-1, 40),
    known_fields | json_values,
    st.none() | st.integers(-5, 70000),
)
binaries = st.builds(
    lambda seq, op, payload: struct.pack(">HB", seq, op) + payload,
    st.integers(0, 65535),
    st.sampled_from([25, 26, 27, 29, 30, 3, 200]),
    st.binary(max_size=80),
)
frames = st.lists(
    envelopes | binaries | st.binary(max_size=40) | st.text(max_size=40), min_size=1, max_size=6
)


@given(active=st.booleans(), batch=frames, datagrams=st.lists(st.binary(max_size=80), max_size=3))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_frame_or_datagram_breaks_the_session(
    active: bool, batch: list[str | bytes], datagrams: list[bytes]
) -> None:
    with no_errors_logged():
        c = active_client() if active else VoiceClient(CREDS, receive=True)
        if not active:
            c.socket_opened(0.0)
        for i, frame in enumerate(batch):
            c.receive(frame, float(i))
            c.poll(float(i) + 0.5)
        for data in datagrams:
            c.receive_datagram(data, 10.0)
        c.seal(b"\xfc" * 20)
        out = c.take()
        c.socket_closed(None, "end", True, 11.0)
    # The session closes a socket by itself only to resume or re-identify (4000), never 1000.
    assert all(o.code == 4000 for o in out if isinstance(o, WsClose))


@given(op=st.sampled_from([25, 27, 29, 30]), payload=st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_dave_binary_ops_raise_only_dave_error(op: int, payload: bytes) -> None:
    dave = DaveState(2, 3)
    dave.on_external_sender(mls.ExternalSender().package())
    dave.on_session_description(1)
    try:
        out = dave.handle(Op(op), payload)
    except DaveError:
        return
    assert all(
        m.op
        in (
            Op.DAVE_MLS_COMMIT_WELCOME,
            Op.DAVE_TRANSITION_READY,
            Op.DAVE_MLS_INVALID_COMMIT_WELCOME,
            Op.DAVE_MLS_KEY_PACKAGE,
        )
        for m in out
    )


@given(st.binary(max_size=120))
def test_rtcp_open_of_arbitrary_bytes_raises_only_crypto_error(data: bytes) -> None:
    for mode in (AES_GCM_MODE, XCHACHA_MODE):
        with contextlib.suppress(CryptoError):
            cipher_for(mode, KEY).open_rtcp(data)
    assert is_rtcp(data) == (len(data) >= 8 and data[0] >> 6 == 2 and 200 <= data[1] <= 206)


@given(
    st.lists(st.binary(max_size=120), max_size=8),
    st.dictionaries(st.integers(0, 2**32 - 1), st.integers(1, 2**63), max_size=3),
)
def test_the_receive_path_never_raises(datagrams: list[bytes], users: dict[int, int]) -> None:
    r, dave, cipher = Receiver(), DaveState(2, 3), cipher_for(AES_GCM_MODE, KEY)
    sender = Packetizer(next(iter(users), 5), cipher)
    for ssrc, user in users.items():
        r.on_speaking(ssrc, user, dave)
    for data in [*datagrams, sender.packet(os.urandom(30))]:
        for event in r.on_datagram(data, cipher, dave):
            assert isinstance(event, AudioPacket | ReceiveFailed)
    assert r.stats.packets + r.stats.ignored == len(datagrams) + 1


@given(st.binary(min_size=12, max_size=120))
def test_open_of_rtp_shaped_bytes_raises_only_our_errors(data: bytes) -> None:
    packet = bytes([0x80 | (data[0] & 0x3F)]) + data[1:]
    try:
        cipher_for(XCHACHA_MODE, KEY).open(packet)
    except (CryptoError, RtpError) as exc:
        assert isinstance(exc, VoiceError)

