"""Property test: no server frame, however malformed, breaks VoiceConnection's receive path.

Random text/binary frames and well-formed envelopes with arbitrary ``d`` go through
``VoiceConnection._feed`` on a fresh and on an active DAVE session. A frame may only end in an
anticipated way: ignored with a warning (bad JSON, wrong shape, DAVE rejects it) or a
:class:`VoiceError` that makes the driver drop the socket (e.g. an op 4 key of the wrong length).
The safety net that logs unexpected exceptions must never fire. op 2 Ready is left out: a valid
one opens a UDP socket to the address it names.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from audionode.config import VoiceConfig
from audionode.errors import VoiceError
from audionode.transport.voice_conn import VoiceConnection
from audionode.voice.gateway import ClientState
from audionode.voice.packetizer import Packetizer


class OutboxOnly:
    """Stands in for the websocket: the receive path only ever queues replies on it."""

    def __init__(self) -> None:
        self.sent: list[str | bytes] = []
        self.heartbeat: asyncio.Task[None] | None = None
        self.unacked = 0

    def send(self, message: str | bytes) -> None:
        self.sent.append(message)

    async def abandon(self, reason: str) -> None:
        pass


class Unexpected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


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
    "mode": st.sampled_from(["aead_aes256_gcm_rtpsize", "nope"]),
    "secret_key": st.lists(st.integers(-1, 300), max_size=33),
    "dave_protocol_version": st.integers(-1, 2),
    "speaking": ints,
    "ssrc": ints,
}
# Every field any client-side op reads, mostly well-typed (so frames get past the decoder and
# into the handlers), sometimes not.
known_fields = st.fixed_dictionaries(
    {k: st.one_of(v, v, v, json_values) for k, v in _typed.items()}
)
envelopes = st.builds(
    lambda op, d, seq: json.dumps({"op": op, "d": d, "seq": seq}),
    st.sampled_from([4, 5, 6, 8, 9, 11, 13, 21, 22, 24])
    | st.integers(-1, 40).filter(lambda op: op != 2),
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
    envelopes | binaries | st.binary(max_size=40) | st.text(max_size=40), min_size=1, max_size=5
)


async def feed_all(active: bool, batch: list[str | bytes]) -> None:
    vc = VoiceConnection(1, 2, "s", 3, "t", "ws://127.0.0.1:9", VoiceConfig(), lambda e: None)
    if active:  # as after op 2 + op 4 with DAVE on
        vc.gateway.state, vc.gateway.ssrc, vc.gateway.resumable = ClientState.ACTIVE, 7, True
        vc._packetizer = Packetizer(7)
        vc.dave.on_session_description(1)
    sock = OutboxOnly()
    try:
        for frame in batch:
            await vc._feed(sock, frame)  # type: ignore[arg-type]
    except VoiceError:
        pass  # anticipated: the driver drops this socket and resumes/reconnects
    finally:
        if sock.heartbeat is not None:
            sock.heartbeat.cancel()


@given(active=st.booleans(), batch=frames)
@settings(max_examples=300, deadline=None)
def test_no_frame_breaks_the_receive_path(active: bool, batch: list[str | bytes]) -> None:
    net = Unexpected()
    logger = logging.getLogger("audionode.transport.voice_conn")
    logger.addHandler(net)
    try:
        asyncio.run(feed_all(active, batch))
    finally:
        logger.removeHandler(net)
    assert not net.records, [r.getMessage() for r in net.records]
