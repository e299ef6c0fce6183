"""Property tests for the voice gateway's server end, from outside.

Two levels: the sans-I/O ``ServerGateway`` (``audionode/voice/gateway_server.py``, shared with
the voice client: driven here only through its public API) in each of its states, and the real
voice server's websocket driver on loopback. Documented outcomes only: the core returns events
or raises :class:`GatewayError` with a voice close code; the driver answers with a close code
from the documented set and never with 4015 ("our bug") or a logged traceback.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audionode.voice.gateway import ServerGateway, ServerState, Side, VoiceGateway
from audionode.voice.wire import GatewayError
from audionode.voiceserver.app import VoiceServer
from audionode.voiceserver.lvsp_client import LvspClient, LvspClosed

from ..protocol.strategies import json_values, scalars
from .conftest import LvspFactory, errors_logged
from .test_gateway_server import raw_socket, voice_state

CORE_CODES = {4001, 4002, 4003, 4005, 4016, 4020}
"""What ServerGateway.feed may raise (voice close codes, docs/discord-voice.md)."""
DRIVER_CODES = CORE_CODES | {4004, 4006, 4017, 1009}
"""Plus what the driver decides: credentials, resume, DAVE required, frame too big."""
MODES = ["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize"]

_scalar = scalars
_json = json_values(max_leaves=10)
_int = st.one_of(st.integers(-1, 5), st.integers(), st.integers(2**63, 2**80), _scalar)
_str = st.one_of(
    st.text(max_size=12), st.sampled_from(["udp", "1", "²", "9" * 30, *MODES]), _scalar
)
_FIELDS: dict[str, Any] = {
    "server_id": _str,
    "user_id": _str,
    "session_id": _str,
    "token": _str,
    "max_dave_protocol_version": _int,
    "protocol": _str,
    "data": st.fixed_dictionaries({}, optional={"address": _str, "port": _int, "mode": _str})
    | _json,
    "t": _int,
    "seq_ack": _int,
    "speaking": _int,
    "delay": _int,
    "ssrc": _int,
    "transition_id": _int,
}
_d = st.fixed_dictionaries({}, optional=_FIELDS) | _json
_text_frame = st.builds(
    lambda op, d: json.dumps({"op": op, "d": d}),
    st.one_of(st.integers(0, 33), st.integers(), _scalar),
    _d,
)
_binary_frame = st.builds(
    lambda op, rest: bytes([op]) + rest, st.integers(0, 255), st.binary(max_size=40)
) | st.just(b"")
_frames = st.lists(
    st.one_of(_text_frame, _binary_frame, st.text(max_size=40)), min_size=1, max_size=5
)


def _gateway(state: ServerState) -> ServerGateway:
    gw = VoiceGateway(side=Side.SERVER)
    if state is ServerState.CONNECTED:
        return gw
    ident = {"server_id": "1", "user_id": "2", "session_id": "s", "token": "t"}
    gw.feed(json.dumps({"op": 0, "d": {**ident, "max_dave_protocol_version": 1}}))
    gw.ready(1234, "127.0.0.1", 5000, MODES)
    if state is ServerState.SESSION:
        select = {"protocol": "udp", "data": {"address": "1.2.3.4", "port": 9, "mode": MODES[0]}}
        gw.feed(json.dumps({"op": 1, "d": select}))
        gw.session_description(bytes(32), 1)
    assert gw.state is state
    return gw


@settings(max_examples=300)
@given(st.sampled_from(list(ServerState)), _frames)
def test_server_gateway_feed_raises_only_gateway_errors(
    state: ServerState, frames: list[str | bytes]
) -> None:
    gw = _gateway(state)
    for frame in frames:
        try:
            gw.feed(frame)
        except GatewayError as e:
            assert e.close_code in CORE_CODES, (e.close_code, e)
            return  # the driver closes the socket: nothing more is fed


# --- the driver on a real server ------------------------------------------------------------

_live = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
"""One server per test, many examples against it."""


async def _outcome(
    ws: aiohttp.ClientWebSocketResponse, sentinel: dict[str, Any], ack: int
) -> int | None:
    """Send a heartbeat as a sentinel: its ACK (op ``ack``) means "still open" (then close it);
    else return the close code."""
    with contextlib.suppress(ConnectionError):
        await ws.send_json(sentinel)
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type is aiohttp.WSMsgType.TEXT and json.loads(msg.data)["op"] == ack:
            await ws.close()
            return None
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return ws.close_code


@_live
@given(identify_first=st.booleans(), frames=_frames)
async def test_the_running_server_answers_any_frames_with_a_documented_code(
    server: VoiceServer,
    control: LvspClient,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    identify_first: bool,
    frames: list[str | bytes],
) -> None:
    info = await voice_state(control, 9001)
    ws = await raw_socket(server, http)
    if identify_first:
        ident = {k: info[k] for k in ("user_id", "session_id", "token")}
        ident |= {"server_id": info["guild_id"], "max_dave_protocol_version": 1}
        await ws.send_json({"op": 0, "d": ident})
    for f in frames:
        await (ws.send_str(f) if isinstance(f, str) else ws.send_bytes(f))
    code = await _outcome(ws, {"op": 3, "d": {"t": 1, "seq_ack": -1}}, ack=6)
    assert code is None or code in DRIVER_CODES, code
    assert errors_logged(caplog) == []


_lvsp_frames = st.lists(
    st.one_of(
        st.builds(
            lambda op, d: json.dumps({"op": op, "d": d}),
            st.one_of(st.integers(0, 8), _scalar),
            st.one_of(
                _d,
                st.fixed_dictionaries(
                    {"type": st.one_of(st.integers(0, 2), _scalar), "info": _d | _json}
                ),
            ),
        ),
        st.text(max_size=40),
        st.binary(max_size=20),
    ),
    min_size=1,
    max_size=4,
)


async def _lvsp_outcome(c: LvspClient) -> int | None:
    """The same sentinel over LVSP: HEARTBEAT, whose ACK (op 5) means "still open"."""
    try:
        await c.send(4, {"s": 0})
        while (await c.recv())["op"] != 5:
            pass
    except (LvspClosed, ConnectionError):
        return (await c.closed())[0]
    return None


@_live
@given(identify_first=st.booleans(), frames=_lvsp_frames)
async def test_the_running_lvsp_endpoint_answers_any_frames_with_a_documented_code(
    server: VoiceServer,
    lvsp: LvspFactory,
    caplog: pytest.LogCaptureFixture,
    identify_first: bool,
    frames: list[str | bytes],
) -> None:
    c = await lvsp()
    await (c.identify() if identify_first else c.recv())
    for f in frames:
        await (c.ws.send_str(f) if isinstance(f, str) else c.ws.send_bytes(f))
    code = await _lvsp_outcome(c)
    assert code is None or code in (4001, 4002, 4003, 1009), code
    assert errors_logged(caplog) == []
