"""The store: what goes in comes back, the file is private, and a killed writer leaves a
readable file."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from audionode.control import events as ev
from audionode.control.views import CurrentView, EntryView, PlayerState, TrackView
from audionode.protocol.filters import parse_filters
from audionode.sources.api import Track
from audionode.store import StateFileError, Store
from audionode.store import records as r

TRACK = Track(
    source="tone",
    id="tone:440?seconds=5",
    title="Tone 440 Hz",
    duration_ms=5000,
    data={"cached": ["a", 1, None]},
)
VIEW = EntryView(
    track=TrackView(source="tone", id=TRACK.id, title=TRACK.title, duration=5.0, token="t"),
    tag="tag-1",
    context={"by": "alice"},
)


def entry(tag: str, start: float = 0.0) -> r.EntryRecord:
    return r.EntryRecord(track=TRACK, tag=tag, context={"n": tag}, start_position=start)


def player(guild: int = 20, **fields: object) -> r.PlayerRecord:
    base: dict[str, object] = {
        "guild_id": guild,
        "voice_client_id": f"vc{guild}",
        "voice": r.VoiceRecord(session_id="s", channel_id=30, token="secret", endpoint="e:1"),
        "volume": 0.7,
        "crossfade": 1.5,
        "autoplay": True,
        "filters": parse_filters(
            {"equalizer": [{"band": 2, "gain": 0.25}], "raw": {"bass": "g=3"}}
        ),
        "repeat": "queue",
        "paused": True,
        "context": {"deep": {"list": [1, 2.5, "x"]}},
        "current": entry("now", 1.0),
    }
    return r.PlayerRecord(**{**base, **fields})  # type: ignore[arg-type]


KEPT = (
    ev.TrackStarted(guild_id=20, current=CurrentView(entry=VIEW, position=1.5, as_of=1e9)),
    ev.QueueChanged(guild_id=20, op="extend", entries=(VIEW,)),
    ev.PositionChanged(guild_id=20, position=2.0, as_of=1e9, state=PlayerState.PLAYING),
    ev.VoiceClosed(guild_id=20, code=4006, reason="x", by_remote=True, will_reconnect=False),
)


def test_what_is_written_is_read_back(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    identity = store.load().identity
    store.start()
    session = r.SessionRecord(user_id=10, shard_id=3, detached_at=123.5, kept=KEPT, dropped=2)
    store.put_session("10/3", session)
    store.put_player("10/3", player(), 2.5, 99.0)
    store.put_queue(
        "10/3", 20, r.QueueRecord(entries=(entry("a"), entry("b", 3.0)), history=(entry("h"),))
    )
    store.put_player("10/3", player(21, paused=False, current=None), None, 99.0)
    store.put_position("10/3", 20, 3.25, 100.0)
    assert store.close()

    again = Store.open(tmp_path / "s.db")
    snapshot = again.load()
    again.close()
    assert snapshot.identity == identity
    assert snapshot.sessions == {"10/3": session}
    by_guild = {p.record.guild_id: p for p in snapshot.players}
    assert by_guild[20] == r.StoredPlayer(
        session="10/3",
        record=player(),
        queue=r.QueueRecord(entries=(entry("a"), entry("b", 3.0)), history=(entry("h"),)),
        position=3.25,
        position_at=100.0,
    )
    assert by_guild[21].record.current is None and by_guild[21].queue == r.QueueRecord()
    assert by_guild[21].position is None


def test_drops_remove_players_and_sessions_with_their_rows(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    store.load()
    store.start()
    for key in ("1/-", "2/-"):
        store.put_session(key, r.SessionRecord(user_id=int(key[0])))
        store.put_player(key, player(20), 1.0, 1.0)
        store.put_queue(key, 20, r.QueueRecord(entries=(entry("a"),)))
        store.put_player(key, player(21), 1.0, 1.0)
    store.drop_player("1/-", 20)
    store.drop_session("2/-")
    store.close()
    again = Store.open(tmp_path / "s.db")
    snapshot = again.load()
    again.close()
    assert list(snapshot.sessions) == ["1/-"]
    assert [(p.session, p.record.guild_id) for p in snapshot.players] == [("1/-", 21)]


def test_the_file_and_its_wal_are_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "deeper" / "s.db"
    store = Store.open(path)
    store.load()
    store.start()
    store.put_session("1/-", r.SessionRecord(user_id=1))
    assert store.flush()
    files = {p.name: p.stat().st_mode & 0o777 for p in path.parent.iterdir()}
    store.close()
    assert files["s.db"] == 0o600
    assert files["s.db-wal"] == 0o600 and set(files) == {"s.db", "s.db-wal"}  # no -shm
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_a_row_that_does_not_decode_is_a_clear_error(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    store.load()
    store._conn.execute(
        "INSERT INTO players (session, guild_id, record) VALUES ('1/-', 5, x'c1c1')"
    )
    store.close()
    with pytest.raises(StateFileError, match=r"corrupt \(player 1/-/5: "):
        Store.open(tmp_path / "s.db").load()


def test_status_figures(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    store.load()
    store.start()
    store.put_session("1/-", r.SessionRecord(user_id=1))
    store.flush()
    stats = store.stats()
    store.close()
    assert stats["path"] == str(tmp_path / "s.db") and stats["errors"] == 0
    assert stats["submitted"] == 1 and stats["writes"] == 1 and stats["batches"] >= 1
    assert stats["last_commit"] is not None and stats["last_error"] is None


_CHILD = textwrap.dedent(
    """
    import sys
    from audionode.store import Store
    from tests.store.test_store import entry, player
    from audionode.store import records as r

    store = Store.open(sys.argv[1])
    store.load()
    if sys.argv[2] == "open-transaction":
        store._conn.execute("BEGIN")
        for g in range(500):
            store._conn.execute(
                "INSERT INTO sessions (key, record) VALUES (?, ?)", (f"half-{g}", b"x" * 500)
            )
        print("in the middle", flush=True)
        import time; time.sleep(60)
    store.start()
    queue = r.QueueRecord(entries=tuple(entry(f"e{i}") for i in range(200)))
    generation = 0
    while True:
        generation += 1
        store.put_session("1/-", r.SessionRecord(user_id=1, dropped=generation))
        for guild in range(20):
            store.put_player("1/-", player(guild, volume=generation / 1e6), generation, 0.0)
            store.put_queue("1/-", guild, queue)
        store.flush()
        print(generation, flush=True)
    """
)


def _child(path: Path, mode: str) -> subprocess.Popen[str]:
    root = Path(__file__).resolve().parent.parent.parent
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), mode],
        cwd=root, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_a_process_killed_inside_a_transaction_leaves_the_committed_state(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store.open(path)
    store.load()
    store.start()
    store.put_session("kept", r.SessionRecord(user_id=7))
    store.close()
    with _child(path, "open-transaction") as child:
        assert child.stdout is not None and child.stdout.readline() == "in the middle\n"
        os.kill(child.pid, signal.SIGKILL)
    again = Store.open(path)  # checks integrity and rolls the half transaction back
    snapshot = again.load()
    again.close()
    assert list(snapshot.sessions) == ["kept"]


def test_a_writer_killed_while_writing_leaves_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with _child(path, "write") as child:
        assert child.stdout is not None
        committed = [int(child.stdout.readline()) for _ in range(5)]
        os.kill(child.pid, signal.SIGKILL)  # somewhere in round 6 or later
    store = Store.open(path)
    snapshot = store.load()
    store.close()
    assert snapshot.sessions["1/-"].dropped >= committed[-1]  # flushed = committed
    assert len(snapshot.players) == 20
    for p in snapshot.players:
        assert p.position is not None and p.position >= committed[-1]
        assert len(p.queue.entries) == 200


def test_alive_at_is_read_back_and_moves_a_playing_position_on(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    assert store.load().alive_at is None  # never written
    store.start()
    store.put_player("10/3", player(), 2.5, 99.0)  # playing on from 2.5 s at t = 99
    store.put_player("10/3", player(21), 7.0, None)  # still (paused)
    store.put_alive(100.0)
    store.put_alive(104.25)  # the last one counts
    assert store.close()

    again = Store.open(tmp_path / "s.db")
    snapshot = again.load()
    again.close()
    assert snapshot.alive_at == 104.25
    by_guild = {p.record.guild_id: p for p in snapshot.players}
    assert r.position_then(by_guild[20], snapshot.alive_at) == 2.5 + 5.25
    assert r.position_then(by_guild[21], snapshot.alive_at) == 7.0
    assert r.position_then(by_guild[20], None) == 2.5


def test_a_garbled_alive_at_is_a_corrupt_file(tmp_path: Path) -> None:
    first = Store.open(tmp_path / "s.db")
    first.load()  # writes the identity
    first.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "s.db", isolation_level=None)) as db:
        db.execute("INSERT INTO node (key, value) VALUES ('alive_at', x'0102')")
    store = Store.open(tmp_path / "s.db")
    with pytest.raises(StateFileError, match=r"corrupt \(alive_at\)"):
        store.load()
    store.close()
