"""The state file's schema: a new file, the migration from v1, and every file it refuses."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from audionode.store import SCHEMA_VERSION, StateFileError, Store
from audionode.store.schema import APPLICATION_ID, MIGRATIONS, prepare


def v1_file(path: Path, node_id: str = "a1b2c3d4e5f6", secret: bytes = b"k" * 32) -> None:
    """A state file as the first schema wrote it: the node identity only."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        assert prepare(db, path, target=1) == 0
        db.executemany(
            "INSERT INTO node (key, value) VALUES (?, ?)",
            [("node_id", node_id.encode()), ("token_secret", secret)],
        )


def tables(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_a_new_file_runs_every_migration_and_is_marked_ours(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    assert store.migrated_from == 0
    store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "s.db")) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert db.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert tables(tmp_path / "s.db") == {"schema_version", "node", "sessions", "players", "queues"}
    assert sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION + 1))


def test_a_v1_file_is_migrated_and_keeps_its_identity(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    v1_file(path)
    assert tables(path) == {"schema_version", "node"}
    store = Store.open(path)
    assert store.migrated_from == 1
    snapshot = store.load()
    store.close()
    # the token secret survives: tokens issued before the upgrade stay valid
    assert snapshot.identity.node_id == "a1b2c3d4e5f6"
    assert snapshot.identity.token_secret == b"k" * 32
    assert snapshot.sessions == {} and snapshot.players == ()
    assert {"sessions", "players", "queues"} <= tables(path)
    again = Store.open(path)
    assert again.migrated_from == SCHEMA_VERSION  # nothing left to migrate
    again.close()


def test_a_failed_migration_leaves_the_file_at_its_version(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    v1_file(path)
    with contextlib.closing(sqlite3.connect(path)) as db:  # v2's table already there: v2 fails
        db.execute("CREATE TABLE players (x)")
        db.commit()
    with pytest.raises(StateFileError, match="players already exists"):
        Store.open(path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
        assert "sessions" not in {r[0] for r in db.execute("SELECT name FROM sqlite_master")}


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p.write_bytes(b"\x00garbage" * 600), "not an SQLite database"),
        (
            lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\x13" * 4000),
            "not an SQLite database",
        ),
        (lambda p: p.mkdir(), "not a regular file"),
    ],
)
def test_a_file_that_is_not_a_database_is_refused(
    tmp_path: Path, make: object, problem: str
) -> None:
    path = tmp_path / "s.db"
    make(path)  # type: ignore[operator]
    with pytest.raises(StateFileError) as e:
        Store.open(path)
    assert e.value.message == f"state file {path}: {problem}" or problem in e.value.message
    assert str(path) in e.value.message and "\n" not in e.value.message


def test_another_programs_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "places.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
        db.commit()
    before = path.read_bytes()
    with pytest.raises(StateFileError, match=r"another program.*moz_places"):
        Store.open(path)
    assert path.read_bytes() == before


def test_a_file_from_a_newer_audionode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store.open(path).close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
        db.commit()
    with pytest.raises(
        StateFileError, match=rf"newer audionode \(schema version {SCHEMA_VERSION + 1}"
    ):
        Store.open(path)


def test_ours_without_a_version_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store.open(path).close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("DELETE FROM schema_version")
        db.commit()
    with pytest.raises(StateFileError, match=r"corrupt \(schema_version holds \[\]\)"):
        Store.open(path)


def test_damaged_pages_fail_the_integrity_check(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store.open(path)
    store.load()
    store.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute("CREATE TABLE filler (x)")
        db.executemany("INSERT INTO filler VALUES (?)", [(b"x" * 900,)] * 40)
        db.commit()
    data = bytearray(path.read_bytes())
    page = 4096
    data[page * 3 : page * 3 + 64] = b"\xff" * 64  # a b-tree page header destroyed
    path.write_bytes(bytes(data))
    with pytest.raises(StateFileError, match=r"state file .*: (corrupt|unusable)") as e:
        Store.open(path)
    assert "\n" not in e.value.message


def test_a_second_node_on_the_same_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    first = Store.open(path)
    first.load()
    first.start()
    try:
        with pytest.raises(StateFileError, match="in use by another running node"):
            Store.open(path)
    finally:
        first.close()
    Store.open(path).close()  # free again once the first one is gone


def test_a_v2_file_keeps_its_positions_as_they_were_written(tmp_path: Path) -> None:
    """Version 2 wrote a playing track's position moved on to the checkpoint's time, and that
    time in position_at; version 3 reads position_at as "playing on since": the migration
    clears it, so the stored position is where the track resumes, as before."""
    path = tmp_path / "v2.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        assert prepare(db, path, target=2) == 0
        db.execute(
            "INSERT INTO players (session, guild_id, record, position, position_at) "
            "VALUES ('1/-', 5, x'00', 12.5, 1000.0)"
        )
    store = Store.open(path)
    assert store.migrated_from == 2
    store.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT position, position_at FROM players").fetchall() == [(12.5, None)]
