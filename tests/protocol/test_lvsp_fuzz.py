"""Property tests for LVSP: the codec and the session state machine against a model.

Documented outcomes only (docs/protocols/lvsp.md): :func:`decode_client` returns a message or
raises :class:`LvspError` 4002; :meth:`LvspConnection.receive` never raises, and closes with
4001/4002/4003 only; every server frame is ``{"op", "d", "s"}`` with ``s`` growing by one per
session; RESUME replays exactly the INFOs after ``seq`` that were neither acknowledged nor pushed
out of the buffer, and refuses (4003) exactly when one of those is gone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from audionode.protocol.lvsp import CloseCode, LvspError, decode_client
from audionode.protocol.lvsp_session import (
    Authenticated,
    CloseConnection,
    InfoReceived,
    LvspConnection,
    LvspSessions,
    Phase,
    VstRequested,
)

from .strategies import json_values, scalars

TOKEN = "fuzz-token"

_scalar = scalars
_json = json_values()
_snowflake = st.one_of(
    st.integers(0, 2**64).map(str),
    st.text("0123456789²٣", min_size=0, max_size=25),
    _scalar,
)
_fields = {
    "token": st.one_of(st.just(TOKEN), _scalar),
    "seq": st.one_of(st.integers(-2, 2**70), _scalar),
    "s": st.one_of(st.integers(-2, 2**70), _scalar),
    "session_id": _scalar,
    "id": _snowflake,
    "user_id": _snowflake,
    "channel_id": _snowflake,
    "guild_id": _snowflake,
    "bitrate": st.one_of(st.integers(0, 10**6), _scalar),
    "dave_required": _scalar,
    "deleted": _scalar,
    "mute": _scalar,
    "deaf": _scalar,
}
_payload = st.fixed_dictionaries({}, optional={k: v for k, v in _fields.items()}) | _json
_info = st.fixed_dictionaries({"type": st.one_of(st.integers(-1, 2), _scalar), "info": _payload})
_near_valid = st.builds(
    lambda op, d: json.dumps({"op": op, "d": d}),
    st.one_of(st.integers(-1, 8), st.integers(), _scalar),
    st.one_of(_payload, _info, _json),
)
_frames = st.one_of(_near_valid, st.text(max_size=60), st.binary(max_size=60))


@settings(max_examples=400)
@given(_frames)
def test_decode_client_returns_or_raises_decode_error(raw: str | bytes) -> None:
    try:
        decode_client(raw)
    except LvspError as e:
        assert e.code == CloseCode.DECODE_ERROR and "\n" not in e.reason


@given(st.integers(1, 6).map(lambda k: 10**k), st.sampled_from(["[", '{"a":', '[{"b":']))
def test_any_nesting_depth_is_a_decode_error_or_a_message(depth: int, opener: str) -> None:
    closer = {"[": "]", '{"a":': "}", '[{"b":': "}]"}[opener]
    raw = '{"op": 6, "d": {"type": 0, "info": {"id": ' + opener * depth + "1" + closer * depth
    raw += "}}}"
    try:
        decode_client(raw)
    except LvspError as e:
        assert e.code == CloseCode.DECODE_ERROR


# --- the state machine against a model ----------------------------------------------------


@dataclass
class _Model:
    """What a correct server must remember about one session."""

    last_s: int = 0
    infos: list[tuple[int, str]] = field(default_factory=list)
    acked: int = 0


@dataclass(eq=False)
class _Client:
    conn: LvspConnection
    seen: int = 0
    """The highest ``s`` this client received (what it would RESUME from)."""
    session_id: str | None = None


class LvspMachine(RuleBasedStateMachine):
    """Clients come and go, send good and bad frames, resume from what they saw or not."""

    MAX_BUFFER = 4

    clients = Bundle("clients")

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.sessions = LvspSessions(max_buffer=self.MAX_BUFFER, resume_window=10.0, max_detached=3)
        self.models: dict[str, _Model] = {}

    # -- helpers --

    def _deliver(self, client: _Client, events: list[Any]) -> None:
        """Act as the driver: answer INFO/VST with an INFO, then check every frame sent."""
        for ev in events:
            if isinstance(ev, InfoReceived | VstRequested):
                info = ev.info if isinstance(ev, InfoReceived) else None
                if info is not None:
                    client.conn.send_info(info)
            elif isinstance(ev, Authenticated):
                client.session_id = ev.session.id
                self.models.setdefault(ev.session.id, _Model())
            else:
                assert isinstance(ev, CloseConnection)
                assert ev.code in (4000, 4001, 4002, 4003) and len(ev.reason) <= 120
        for text in client.conn.data_to_send():
            self._check_frame(client, json.loads(text), text)

    def _check_frame(self, client: _Client, frame: dict[str, Any], text: str) -> None:
        assert set(frame) == {"op", "d", "s"}
        model = self.models[client.session_id] if client.session_id else None
        assert model is not None, "a server frame before IDENTIFY/RESUME (HELLO aside)"
        if frame["s"] > model.last_s:  # new message (a replayed INFO has an old s)
            assert frame["s"] == model.last_s + 1, "s grows by one per session"
            model.last_s = frame["s"]
            if frame["op"] == 6:
                model.infos.append((frame["s"], text))
        client.seen = max(client.seen, frame["s"])

    def _expected_replay(self, model: _Model, seq: int) -> list[str] | None:
        kept = [(s, t) for s, t in model.infos if s > model.acked][-self.MAX_BUFFER :]
        gone = [s for s, _ in model.infos if (s, _) not in kept]
        if seq > model.last_s or seq < max(gone, default=0):
            return None
        return [t for s, t in kept if s > seq]

    # -- rules --

    @rule(target=clients)
    def connect(self) -> _Client:
        conn = LvspConnection(
            token=TOKEN,
            sessions=self.sessions,
            endpoint="e:1",
            heartbeat_interval_ms=5000,
            now=self.now,
            identify_timeout=2.0,
        )
        assert json.loads(conn.hello())["s"] == 0
        return _Client(conn)

    @rule(target=clients, infos=st.integers(0, 7))
    def busy_client(self, infos: int) -> _Client:
        """A client that identified and got ``infos`` INFO answers (a shortcut to the states
        where RESUME has something to replay)."""
        client = self.connect()
        self.identify(client, True)
        for cid in range(infos):
            self.channel_info(client, cid + 1)
        return client

    @rule(client=clients, good=st.booleans())
    def identify(self, client: _Client, good: bool) -> None:
        events = client.conn.receive(
            json.dumps({"op": 1, "d": {"token": TOKEN if good else "nope"}}), self.now
        )
        self._deliver(client, events)

    @rule(target=clients, client=clients, back=st.integers(0, 6), by_id=st.booleans())
    def reconnect(self, client: _Client, back: int, by_id: bool) -> _Client:
        """The usual case: the socket drops and the client resumes from what it saw (or from
        a little earlier, as a client that lost its last frames would)."""
        client.conn.connection_lost(self.now)
        new = self.connect()
        self._resume(new, client.session_id if by_id else None, max(client.seen - back, 0))
        return new

    @rule(client=clients, data=st.data())
    def resume(self, client: _Client, data: st.DataObject) -> None:
        known = sorted(self.models)
        sid = data.draw(st.sampled_from([None, "unknown", *known]))
        seq = data.draw(st.one_of(st.just(client.seen), st.integers(0, 30)))
        self._resume(client, sid, seq)

    def _resume(self, client: _Client, sid: str | None, seq: int) -> None:
        d: dict[str, Any] = {"token": TOKEN, "seq": seq}
        if sid is not None:
            d["session_id"] = sid
        fresh = client.conn.phase is Phase.AWAITING_AUTH
        target = sid if sid is not None else self._latest_detached()
        expected = None
        if fresh and target in self.models and self.sessions.find(target, self.now):
            expected = self._expected_replay(self.models[target], seq)
        closed = client.conn.phase is Phase.CLOSED
        events = client.conn.receive(json.dumps({"op": 2, "d": d}), self.now)
        out = client.conn.data_to_send()
        if closed:
            assert events == [] and out == []
        elif not fresh:
            assert isinstance(events[0], CloseConnection) and events[0].code in (4001, 4002)
        elif expected is None:
            assert isinstance(events[0], CloseConnection) and events[0].code == 4003
            event("resume refused")
        else:
            event(f"resume replayed {min(len(expected), 3)}+ INFOs")
            assert isinstance(events[0], Authenticated) and events[0].resumed
            client.session_id = events[0].session.id
            old = events[0].previous_owner
            if isinstance(old, LvspConnection):  # the driver closes a half-open holder
                old.connection_lost(self.now)
            assert out[: len(expected)] == expected and json.loads(out[-1])["op"] == 3
        for text in out:
            self._check_frame(client, json.loads(text), text)

    def _latest_detached(self) -> str | None:
        s = self.sessions.find(None, self.now)
        return None if s is None else s.id

    @rule(client=clients, ahead=st.integers(-1, 3))
    def heartbeat(self, client: _Client, ahead: int) -> None:
        s = max(client.seen + ahead, 0)
        events = client.conn.receive(json.dumps({"op": 4, "d": {"s": s}}), self.now)
        if client.conn.phase is not Phase.CLOSED and client.session_id:
            model = self.models[client.session_id]
            model.acked = max(model.acked, s)
        self._deliver(client, events)

    @rule(client=clients, cid=st.integers(1, 9))
    def channel_info(self, client: _Client, cid: int) -> None:
        d = {"type": 0, "info": {"id": str(cid), "bitrate": 64000}}
        self._deliver(client, client.conn.receive(json.dumps({"op": 6, "d": d}), self.now))

    @rule(client=clients, raw=_frames)
    def garbage(self, client: _Client, raw: str | bytes) -> None:
        self._deliver(client, client.conn.receive(raw, self.now))

    @rule(client=clients)
    def drop(self, client: _Client) -> None:
        client.conn.connection_lost(self.now)

    @rule(seconds=st.floats(0, 6))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        self.sessions.expire(self.now)

    @rule(client=clients)
    def deadline(self, client: _Client) -> None:
        close = client.conn.expire(self.now)
        if close is not None:
            assert close.code == 4000 and self.now >= client.conn.deadline

    # -- invariants --

    @invariant()
    def no_session_outlives_its_resume_window(self) -> None:
        self.sessions.expire(self.now)
        assert all(self.now - s.detached_at <= 10.0 for s in self.sessions._detached())


LvspMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
test_lvsp_state_machine = LvspMachine.TestCase
