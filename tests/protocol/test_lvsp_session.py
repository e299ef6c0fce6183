"""LVSP server state machine and sessions, no network (seed 001; docs/protocols/lvsp.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audionode.protocol.lvsp import ChannelInfo, VstRequest
from audionode.protocol.lvsp_session import (
    Authenticated,
    CloseConnection,
    InfoReceived,
    LvspConnection,
    LvspSessions,
    Phase,
    VstRequested,
)

from .strategies import json_values
from .test_lvsp import frame

TOKEN = "sekrit"


def new_conn(sessions: LvspSessions | None = None, now: float = 0.0) -> LvspConnection:
    return LvspConnection(
        token=TOKEN,
        sessions=LvspSessions() if sessions is None else sessions,
        endpoint="127.0.0.1:9999",
        heartbeat_interval_ms=1000,
        now=now,
    )


def sent(conn: LvspConnection) -> list[dict[str, Any]]:
    return [json.loads(t) for t in conn.data_to_send()]


def identified(sessions: LvspSessions | None = None) -> LvspConnection:
    conn = new_conn(sessions)
    [ev] = conn.receive(frame(1, {"token": TOKEN}), 0.0)
    assert isinstance(ev, Authenticated) and not ev.resumed
    return conn


_json = json_values(max_leaves=10)


@given(st.integers(-1, 9), _json, st.lists(st.integers(0, 7), max_size=4))
def test_connection_never_raises_on_structured_garbage(op: int, d: Any, more: list[int]) -> None:
    conn = identified()
    conn.data_to_send()
    for o in [op, *more]:
        for ev in conn.receive(json.dumps({"op": o, "d": d}), 1.0):
            assert isinstance(ev, CloseConnection | InfoReceived | VstRequested)
            if isinstance(ev, CloseConnection):
                assert ev.code in (4001, 4002) and len(ev.reason.encode()) <= 123


# --- state machine -------------------------------------------------------------------------


def test_hello_identify_ready_heartbeat() -> None:
    conn = new_conn()
    assert json.loads(conn.hello()) == {"op": 0, "d": {"heartbeat_interval": 1000}, "s": 0}
    conn.receive(frame(1, {"token": TOKEN}), 0.0)
    [ready] = sent(conn)
    assert ready["op"] == 3 and ready["s"] == 1
    assert ready["d"]["endpoint"] == "127.0.0.1:9999" and ready["d"]["session_id"]
    assert conn.receive(frame(4, {"s": 1}), 0.5) == []
    assert sent(conn) == [{"op": 5, "d": {"s": 1}, "s": 2}]
    assert conn.deadline == pytest.approx(0.5 + 1.5)


def test_info_is_numbered_and_kept() -> None:
    conn = identified()
    conn.data_to_send()
    conn.send_info(ChannelInfo("7", bitrate=64000, dave_required=True))
    [msg] = sent(conn)
    assert msg == {
        "op": 6,
        "d": {"type": 0, "info": {"id": "7", "bitrate": 64000, "dave_required": True}},
        "s": 2,
    }


def test_wrong_token_and_ops_before_auth_are_4001() -> None:
    conn = new_conn()
    [ev] = conn.receive(frame(1, {"token": "nope"}), 0.0)
    assert ev == CloseConnection(4001, "authentication failed: wrong token")
    conn = new_conn()
    [ev] = conn.receive(frame(4, {"s": 0}), 0.0)
    assert ev == CloseConnection(4001, "HEARTBEAT before IDENTIFY/RESUME")
    assert conn.phase is Phase.CLOSED and conn.receive(frame(1, {"token": TOKEN}), 0) == []


def test_second_identify_and_future_heartbeat_are_4002() -> None:
    conn = identified()
    [ev] = conn.receive(frame(1, {"token": TOKEN}), 0.0)
    assert ev == CloseConnection(4002, "IDENTIFY: already authenticated")
    conn = identified()
    [ev] = conn.receive(frame(4, {"s": 50}), 0.0)
    assert isinstance(ev, CloseConnection) and ev.code == 4002 and "ahead" in ev.reason


def test_heartbeat_timeout_is_4000_and_session_stays_resumable() -> None:
    sessions = LvspSessions()
    conn = new_conn(sessions)
    assert conn.expire(1.4) is None
    assert conn.expire(1.5) == CloseConnection(4000, "no IDENTIFY or RESUME within 1.5s")
    conn = identified(sessions)
    conn.receive(frame(4, {"s": 1}), 1.0)
    assert conn.expire(2.4) is None
    assert conn.expire(2.6) == CloseConnection(4000, "no HEARTBEAT within 1.5s")
    assert conn.session is not None and conn.session.owner is None
    assert sessions.find(None, 3.0) is conn.session


def test_resume_replays_infos_after_seq_then_ready() -> None:
    sessions = LvspSessions()
    conn = identified(sessions)
    for i in range(3):  # s = 2, 3, 4
        conn.send_info(ChannelInfo(str(i), bitrate=64000))
    conn.receive(frame(4, {"s": 1}), 0.1)  # ACK is s = 5, not replayed
    conn.connection_lost(0.2)
    again = new_conn(sessions, now=0.3)
    [ev] = again.receive(frame(2, {"token": TOKEN, "seq": 2}), 0.3)
    assert isinstance(ev, Authenticated) and ev.resumed and ev.previous_owner is None
    out = sent(again)
    assert [(m["op"], m["s"]) for m in out] == [(6, 3), (6, 4), (3, 6)]
    assert [m["d"]["info"]["id"] for m in out[:2]] == ["1", "2"]
    assert out[2]["d"]["session_id"] == ev.session.id


def test_resume_by_id_takes_over_a_half_open_connection() -> None:
    sessions = LvspSessions()
    first = identified(sessions)
    sid = first.session.id  # type: ignore[union-attr]
    second = new_conn(sessions)
    [ev] = second.receive(frame(2, {"token": TOKEN, "seq": 1, "session_id": sid}), 0.0)
    assert isinstance(ev, Authenticated) and ev.previous_owner is first
    first.connection_lost(0.1)  # must not detach the session from its new owner
    assert ev.session.owner is second


def test_resume_failures_are_4003_or_4001() -> None:
    sessions = LvspSessions(max_buffer=2)
    [ev] = new_conn(sessions).receive(frame(2, {"token": TOKEN, "seq": 0}), 0.0)
    assert isinstance(ev, CloseConnection) and ev.code == 4003 and "no session" in ev.reason
    conn = identified(sessions)
    for i in range(4):  # s = 2..5, only 4 and 5 kept
        conn.send_info(ChannelInfo(str(i)))
    conn.connection_lost(0.0)
    [ev] = new_conn(sessions).receive(frame(2, {"token": TOKEN, "seq": 2}), 0.0)
    assert isinstance(ev, CloseConnection) and ev.code == 4003 and "cannot resume" in ev.reason
    [ev] = new_conn(sessions).receive(frame(2, {"token": TOKEN, "seq": 99}), 0.0)
    assert isinstance(ev, CloseConnection) and ev.code == 4003
    [ev] = new_conn(sessions).receive(frame(2, {"token": "bad", "seq": 3}), 0.0)
    assert ev == CloseConnection(4001, "authentication failed: wrong token")
    # The session is still there after failed attempts, and expires after the window.
    assert sessions.find(None, 1.0) is conn.session
    assert sessions.find(None, 61.0) is None


def test_acked_infos_are_forgotten() -> None:
    sessions = LvspSessions()
    conn = identified(sessions)
    conn.send_info(ChannelInfo("1"))  # s = 2
    conn.receive(frame(4, {"s": 2}), 0.0)  # ACK s = 3
    assert conn.session is not None and not conn.session.buffer
    conn.connection_lost(0.0)
    [ev] = new_conn(sessions).receive(frame(2, {"token": TOKEN, "seq": 1}), 0.0)
    assert isinstance(ev, CloseConnection) and ev.code == 4003
    other = new_conn(sessions)
    [ev] = other.receive(frame(2, {"token": TOKEN, "seq": 3}), 0.0)
    assert isinstance(ev, Authenticated)
    assert [m["op"] for m in sent(other)] == [3]


def test_info_and_vst_request_become_events() -> None:
    conn = identified()
    [ev] = conn.receive(frame(6, {"type": 0, "info": {"id": "1", "deleted": True}}), 0.0)
    assert ev == InfoReceived(ChannelInfo("1", deleted=True))
    [ev] = conn.receive(frame(7, {"user_id": "1", "channel_id": "2"}), 0.0)
    assert ev == VstRequested(VstRequest("1", "2"))


def test_send_info_before_identify_is_a_local_bug() -> None:
    with pytest.raises(RuntimeError):
        new_conn().send_info(ChannelInfo("1"))
    with pytest.raises(ValueError, match="non-empty"):
        LvspConnection(
            token="", sessions=LvspSessions(), endpoint="x", heartbeat_interval_ms=1, now=0
        )
