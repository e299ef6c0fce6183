"""The writer thread: batches, the last write of a key wins in the order of last submission,
submitting never waits on the disk, and a failed transaction is retried with nothing lost."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from audionode.store import writer as w
from audionode.store.writer import Writer


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "w.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)")
    yield path


def connect(path: Path, timeout: float = 5.0) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=timeout)


def put(k: str, v: int) -> tuple[w.Statement, ...]:
    return (("INSERT INTO kv VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", (k, v)),)


def drop(k: str) -> tuple[w.Statement, ...]:
    return (("DELETE FROM kv WHERE k = ?", (k,)),)


def rows(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return dict(conn.execute("SELECT k, v FROM kv"))


def test_writes_queued_together_are_one_transaction_with_the_last_of_each_key(db: Path) -> None:
    writer = Writer(connect(db))
    for i in range(1000):
        writer.submit(("kv", f"k{i % 10}"), put(f"k{i % 10}", i))
    writer.start()
    assert writer.flush()
    assert writer.close()
    assert (writer.submitted, writer.writes, writer.batches) == (1000, 10, 1)
    assert rows(db) == {f"k{j}": 990 + j for j in range(10)}


def test_a_drop_between_puts_keeps_the_order_of_the_last_submissions(db: Path) -> None:
    writer = Writer(connect(db))
    writer.submit(("kv", "a"), put("a", 1))
    writer.submit(("kv-", "a"), drop("a"))  # a removal has a key of its own
    writer.submit(("kv", "b"), put("b", 1))
    writer.submit(("kv-", "b"), drop("b"))
    writer.submit(("kv", "a"), put("a", 2))  # re-created after its removal
    writer.start()
    writer.close()
    assert rows(db) == {"a": 2}


def test_submitting_never_waits_for_a_blocked_disk(db: Path) -> None:
    blocker = connect(db)
    blocker.execute("BEGIN EXCLUSIVE")  # the writer's commit now waits for the lock
    writer = Writer(connect(db, timeout=10.0))
    writer.start()
    writer.submit(("kv", "first"), put("first", 0))
    time.sleep(0.1)  # the thread is now stuck in its transaction
    slowest, began = 0.0, time.perf_counter()
    for i in range(2000):
        started = time.perf_counter()
        writer.submit(("kv", f"k{i % 50}"), put(f"k{i % 50}", i))
        slowest = max(slowest, time.perf_counter() - started)
    took = time.perf_counter() - began
    assert not writer.flush(timeout=0.2)  # nothing committed while the lock is held
    blocker.execute("ROLLBACK")
    assert writer.flush(timeout=10)
    writer.close()
    print(f"2000 submits, disk blocked: {took * 1e3:.1f} ms, slowest {slowest * 1e6:.0f} us")
    assert took < 1.0  # the lock was held throughout: a submit that waited would hang
    assert len(rows(db)) == 51


def test_a_failed_transaction_is_retried_without_losing_writes(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(w, "RETRY_DELAY", 0.05)
    with contextlib.closing(connect(db)) as setup:
        setup.execute("CREATE TABLE gate (open INTEGER)")
        setup.execute(
            "CREATE TRIGGER shut BEFORE INSERT ON kv WHEN (SELECT count(*) FROM gate) = 0 "
            "BEGIN SELECT RAISE(ABORT, 'simulated: disk full'); END"
        )
    writer = Writer(connect(db))
    writer.start()
    writer.submit(("kv", "a"), put("a", 1))
    assert not writer.flush(timeout=0.3)
    assert writer.errors >= 2 and writer.last_error == "simulated: disk full"
    writer.submit(("kv", "b"), put("b", 2))  # joins the batch being retried
    with contextlib.closing(connect(db)) as other:
        other.execute("INSERT INTO gate VALUES (1)")
    assert writer.flush(timeout=5)
    assert writer.last_error is None and rows(db) == {"a": 1, "b": 2}
    writer.close()


def test_runs_of_one_statement_keep_their_place_among_the_others(db: Path) -> None:
    """A run of one statement is executed together (executemany), in the place and order it
    had: a row inserted before a run of updates is updated, one inserted after is not."""
    bump = "UPDATE kv SET v = v + ? WHERE k = ?"
    writer = Writer(connect(db))
    writer.submit(("kv", "a"), put("a", 0))
    for i in range(100):
        writer.submit(("bump", i), ((bump, (1, "a")), (bump, (1, "b"))))
    writer.submit(("kv", "b"), put("b", 0))
    writer.submit(
        ("twice", "b"), ((bump, (5, "b")), (bump, (5, "a")), ("DELETE FROM kv WHERE k = ?", ("c",)))
    )
    writer.submit(("late", "a"), ((bump, (1000, "a")),))
    writer.start()
    assert writer.close()
    assert rows(db) == {"a": 1105, "b": 5}
