"""The sans-I/O /ws session (seed 002): frames in, frames and typed requests out, no sockets."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from audionode.control import commands as c
from audionode.control.views import Identified, VoiceClientView
from audionode.errors import NotFound
from audionode.protocol.discodo_routes import WS_OPS
from audionode.protocol.discodo_session import Close, DiscodoSession, Identify, Request


def frames(conn: DiscodoSession) -> list[dict[str, Any]]:
    return [json.loads(t) for t in conn.data_to_send()]


def send(conn: DiscodoSession, op: str, d: Any = None, now: float = 1.0) -> list[Any]:
    return conn.receive(json.dumps({"op": op, "d": d}), now)


def identified(conn: DiscodoSession, user: int = 5, shard: int | None = None) -> None:
    [item] = send(conn, "IDENTIFY", {"user_id": str(user), "shard_id": shard})
    assert item == Identify(c.SessionRef(user_id=user, shard_id=shard))
    conn.identified(Identified(user_id=user, shard_id=shard, resumed=False))
    conn.data_to_send()


def test_hello_and_heartbeat_and_the_deadline() -> None:
    conn = DiscodoSession(heartbeat_interval=10, version="9.9", now=0.0)
    conn.hello()
    assert frames(conn) == [{"op": "HELLO", "d": {"heartbeat_interval": 10, "version": "9.9"}}]
    assert send(conn, "HEARTBEAT", {"t": 1}, now=5.0) == []
    assert frames(conn) == [{"op": "HEARTBEAT_ACK", "d": {"t": 1}}]
    assert conn.deadline == 5.0 + 2 * 10 + 1.0
    assert conn.expire(25.9) is None
    assert conn.expire(26.0) == Close(4003, "no message within 2 x heartbeat_interval")


def test_forbidden_then_close_4001() -> None:
    conn = DiscodoSession(heartbeat_interval=10, version="1", now=0.0)
    assert conn.forbid("wrong password") == Close(4001, "wrong password")
    assert frames(conn) == [{"op": "FORBIDDEN", "d": "wrong password"}]


def test_ops_before_identify_are_refused_with_discodos_traceback_and_the_guild() -> None:
    conn = DiscodoSession(heartbeat_interval=10, version="1", now=0.0)
    assert send(conn, "getState", {"guild_id": 42}) == []
    [reply] = frames(conn)
    assert reply == {
        "op": "getState",
        "d": {
            "error": {"code": "NOT_IDENTIFIED", "message": "send IDENTIFY first"},
            "traceback": {"NOT_IDENTIFIED": "send IDENTIFY first"},
            "guild_id": "42",
        },
    }


def test_a_guild_op_becomes_a_typed_request_and_its_reply() -> None:
    conn = DiscodoSession(heartbeat_interval=10, version="1", now=0.0)
    identified(conn, 5, 2)
    [req] = send(conn, "getQueue", {"guild_id": "77"})
    assert isinstance(req, Request) and req.command == c.GetQueue()
    assert req.key == c.PlayerRef(user_id=5, shard_id=2, guild_id=77)
    conn.fail(
        req.op, NotFound("no voice client for guild 77", code="VOICE_CLIENT_NOT_FOUND"), req.guild
    )
    [reply] = frames(conn)
    assert reply["op"] == "getQueue" and reply["d"]["guild_id"] == "77"
    assert reply["d"]["traceback"] == {"VOICE_CLIENT_NOT_FOUND": "no voice client for guild 77"}


def test_discord_events_of_other_users_are_ignored_and_the_bots_own_are_typed() -> None:
    conn = DiscodoSession(heartbeat_interval=10, version="1", now=0.0)
    identified(conn, 5)
    state = {"guild_id": "1", "user_id": "6", "channel_id": "2"}  # someone else, no session_id
    [req] = send(conn, "DISCORD_EVENT", {"t": "VOICE_STATE_UPDATE", "d": state})
    assert req.command == c.Ignored() and req.key == c.SessionRef(user_id=5)
    state = {"guild_id": "1", "user_id": "5", "channel_id": "2", "session_id": "s"}
    [req] = send(conn, "DISCORD_EVENT", {"t": "VOICE_STATE_UPDATE", "d": state})
    assert req.command == c.VoiceState(guild_id=1, session_id="s", channel_id=2)


def test_a_resume_sends_resumed_then_vc_created_for_every_voice_client() -> None:
    conn = DiscodoSession(heartbeat_interval=10, version="1", now=0.0)
    send(conn, "IDENTIFY", {"user_id": 5})
    clients = (
        VoiceClientView(guild_id=1, voice_client_id="a" * 32, channel_id=2),
        VoiceClientView(guild_id=3, voice_client_id="b" * 32, channel_id=None),
    )
    conn.identified(Identified(user_id=5, shard_id=None, resumed=True, voice_clients=clients))
    assert frames(conn) == [
        {"op": "IDENTIFIED", "d": {"user_id": "5", "shard_id": None, "resumed": True}},
        {"op": "RESUMED", "d": {"voice_clients": [["1", "2"], ["3", None]], "dropped": 0}},
        {"op": "VC_CREATED", "d": {"guild_id": "1", "id": "a" * 32}},
        {"op": "VC_CREATED", "d": {"guild_id": "3", "id": "b" * 32}},
    ]


def test_not_json_closes_4002_and_deep_json_is_an_error_reply() -> None:
    conn = DiscodoSession(heartbeat_interval=10, version="1", now=0.0, max_depth=8)
    [close] = conn.receive("{nope", 1.0)
    assert isinstance(close, Close) and close.code == 4002
    assert conn.receive(b"\x00", 1.0)[0].code == 4002  # type: ignore[union-attr]
    deep = '{"op": "HEARTBEAT", "d": ' + "[" * 20 + "]" * 20 + "}"
    assert conn.receive(deep, 1.0) == []
    [reply] = frames(conn)
    assert reply["d"]["error"]["message"] == "frame: JSON nested deeper than 8 levels"


# --- property tests: any frame sequence is answered, never raises ----------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
ops = st.sampled_from(["HEARTBEAT", "IDENTIFY", "NOPE", "", *WS_OPS]) | st.text(max_size=12)
payloads = json_values | st.fixed_dictionaries(
    {"guild_id": st.integers(-5, 2**70) | st.text(max_size=25)},
    optional={"user_id": st.integers(-5, 2**70) | st.text(max_size=25), "t": st.text(max_size=25)},
)
raw_frames = st.one_of(
    st.builds(lambda op, d: json.dumps({"op": op, "d": d}), ops, payloads),
    st.text(max_size=60),
    st.builds(json.dumps, json_values),
)


@settings(max_examples=400)
@given(st.lists(raw_frames, max_size=12))
def test_any_frame_sequence_is_answered_and_never_raises(sequence: list[str]) -> None:
    conn = DiscodoSession(heartbeat_interval=10, version="1", now=0.0)
    for i, text in enumerate(sequence):
        items = conn.receive(text, float(i))
        for item in items:
            if isinstance(item, Identify) and conn.ref is None:
                ref = item.ref
                conn.identified(
                    Identified(user_id=ref.user_id, shard_id=ref.shard_id, resumed=False)
                )
            elif isinstance(item, Request):
                assert conn.ref is not None, "a request only after IDENTIFY"
        for frame in frames(conn):
            assert frame["op"] is None or isinstance(frame["op"], str)
            if isinstance(frame["d"], dict) and "error" in frame["d"]:
                err = frame["d"]["error"]
                assert err["code"] and err["message"] and err["code"] != "INTERNAL"
                assert frame["d"]["traceback"] == {err["code"]: err["message"]}
