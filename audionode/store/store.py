"""The node's state file: open (check, migrate), read back at start-up, write off the loop.

Call order: :meth:`Store.open` (raises :class:`~audionode.store.schema.StateFileError`),
:meth:`Store.load` once, :meth:`Store.start`, then the ``put_*``/``drop_*`` methods from the
event loop (they encode the record at once and return; the writer thread does the SQL), and
:meth:`Store.close` last, which commits everything submitted.

The file is created with mode 0600 (its folder, if made, 0700): it holds the bots' voice
tokens and the track-token secret. It is an SQLite database in WAL mode with an exclusive
lock, so a second node pointed at the same file is refused at start-up, and a process killed
in the middle of a write leaves the last committed state readable (docs/PERSISTENCE.md).
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import stat
import struct
from pathlib import Path
from typing import Any

import msgspec

from audionode.store import records as r
from audionode.store.schema import SCHEMA_VERSION, StateFileError, prepare
from audionode.store.writer import Writer

log = logging.getLogger(__name__)

_PUT_SESSION = (
    "INSERT INTO sessions (key, record) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET record = excluded.record"
)
_PUT_PLAYER = (
    "INSERT INTO players (session, guild_id, record, position, position_at) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (session, guild_id) DO UPDATE SET "
    "record = excluded.record, position = excluded.position, position_at = excluded.position_at"
)
_PUT_QUEUE = (
    "INSERT INTO queues (session, guild_id, record) VALUES (?, ?, ?) "
    "ON CONFLICT (session, guild_id) DO UPDATE SET record = excluded.record"
)
_PUT_POSITION = (
    "UPDATE players SET position = ?, position_at = ? WHERE session = ? AND guild_id = ?"
)
_PUT_ALIVE = (
    "INSERT INTO node (key, value) VALUES ('alive_at', ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_ALIVE = struct.Struct(">d")
_BUSY_TIMEOUT = 1.0
"""Seconds to wait for a lock at start-up (a node that is exiting releases it)."""


class Store:
    """One open state file. Not thread-safe: call it from the event loop's thread."""

    def __init__(self, path: Path, conn: sqlite3.Connection, migrated_from: int) -> None:
        self.path = path
        self.migrated_from = migrated_from
        """The schema version the file had when opened (0: a new file)."""
        self._conn = conn
        self._writer = Writer(conn)

    @classmethod
    def open(cls, path: str | Path) -> Store:
        """Open (or create) the state file at ``path`` and bring it to the current schema."""
        where = Path(path)
        _create(where)
        try:
            conn = sqlite3.connect(
                where, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT
            )
        except sqlite3.Error as e:
            raise StateFileError(f"state file {where}: cannot open ({e})") from None
        try:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            found = prepare(conn, where)
            conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()
            raise
        if found and found < SCHEMA_VERSION:
            log.info("state file %s migrated from schema %d to %d", where, found, SCHEMA_VERSION)
        _warn_if_shared(where)
        return cls(where, conn, found)

    # --- reading (at start-up, before start()) ---------------------------------------------

    def load(self) -> r.Snapshot:
        """Everything the file holds; a row that does not decode is a :class:`StateFileError`.
        A file without an identity gets a fresh one (written at once)."""
        try:
            identity = self._identity()
            sessions = {
                key: self._decode(blob, r.SessionRecord, f"session {key}")
                for key, blob in self._conn.execute("SELECT key, record FROM sessions")
            }
            players = tuple(self._players())
            alive = self._conn.execute("SELECT value FROM node WHERE key = 'alive_at'").fetchone()
        except sqlite3.DatabaseError as e:
            raise StateFileError(f"state file {self.path}: unreadable ({e})") from None
        alive_at = None
        if alive is not None:
            if not isinstance(alive[0], bytes) or len(alive[0]) != _ALIVE.size:
                raise StateFileError(f"state file {self.path}: corrupt (alive_at)")
            (alive_at,) = _ALIVE.unpack(alive[0])
        return r.Snapshot(identity=identity, sessions=sessions, players=players, alive_at=alive_at)

    def _identity(self) -> r.Identity:
        rows = dict(self._conn.execute("SELECT key, value FROM node"))
        if not rows:
            fresh = r.Identity(node_id=secrets.token_hex(6), token_secret=secrets.token_bytes(32))
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT INTO node (key, value) VALUES (?, ?)",
                [("node_id", fresh.node_id.encode()), ("token_secret", fresh.token_secret)],
            )
            self._conn.execute("COMMIT")
            return fresh
        node_id, secret = rows.get("node_id"), rows.get("token_secret")
        if not isinstance(node_id, bytes) or not isinstance(secret, bytes) or len(secret) != 32:
            raise StateFileError(f"state file {self.path}: corrupt (the node identity)")
        return r.Identity(node_id=node_id.decode(errors="replace"), token_secret=secret)

    def _players(self) -> list[r.StoredPlayer]:
        rows = self._conn.execute(
            "SELECT p.session, p.guild_id, p.record, q.record, p.position, p.position_at "
            "FROM players p LEFT JOIN queues q ON q.session = p.session AND q.guild_id = p.guild_id"
        )
        out = []
        for session, guild_id, blob, queue, position, position_at in rows:
            where = f"player {session}/{guild_id}"
            record = self._decode(blob, r.PlayerRecord, where)
            stored = self._decode(queue, r.QueueRecord, where) if queue else r.QueueRecord()
            out.append(r.StoredPlayer(
                session=session, record=record, queue=stored,
                position=position, position_at=position_at,
            ))  # fmt: skip
        return out

    def _decode(self, blob: Any, kind: type[Any], where: str) -> Any:
        try:
            return r.decode(blob, kind)
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as e:
            raise StateFileError(f"state file {self.path}: corrupt ({where}: {e})") from None

    # --- writing (off the loop) ------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread."""
        self._writer.start()

    def put_session(self, key: str, record: r.SessionRecord) -> None:
        self._writer.submit(("session", key), ((_PUT_SESSION, (key, r.encode(record))),))

    def drop_session(self, key: str) -> None:
        """Forget a session with its players and their queues."""
        self._writer.submit(("session-", key), (
            ("DELETE FROM sessions WHERE key = ?", (key,)),
            ("DELETE FROM players WHERE session = ?", (key,)),
            ("DELETE FROM queues WHERE session = ?", (key,)),
        ))  # fmt: skip

    def put_player(
        self, session: str, record: r.PlayerRecord, position: float | None, at: float | None
    ) -> None:
        """The player's record and its position, playing on from ``at`` (None: not moving)."""
        params = (session, record.guild_id, r.encode(record), position, at)
        self._writer.submit(("player", session, record.guild_id), ((_PUT_PLAYER, params),))

    def put_queue(self, session: str, guild_id: int, record: r.QueueRecord) -> None:
        params = (session, guild_id, r.encode(record))
        self._writer.submit(("queue", session, guild_id), ((_PUT_QUEUE, params),))

    def put_alive(self, at: float) -> None:
        """The node was alive at ``at`` (wall clock; written at every checkpoint): positions
        written with a time are moved on to it at start-up (``records.position_then``)."""
        self._writer.submit(("alive",), ((_PUT_ALIVE, (_ALIVE.pack(at),)),))

    def put_position(self, session: str, guild_id: int, position: float, at: float | None) -> None:
        """The current track's position, playing on from ``at`` (None: not moving); ignored
        for a player not yet written."""
        params = (position, at, session, guild_id)
        self._writer.submit(("position", session, guild_id), ((_PUT_POSITION, params),))

    def drop_player(self, session: str, guild_id: int) -> None:
        where = (session, guild_id)
        self._writer.submit(("player-", session, guild_id), (
            ("DELETE FROM players WHERE session = ? AND guild_id = ?", where),
            ("DELETE FROM queues WHERE session = ? AND guild_id = ?", where),
        ))  # fmt: skip

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted is committed (tests, shutdown); False on timeout."""
        return self._writer.flush(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Commit everything submitted, stop the writer, close the file."""
        done = self._writer.close(timeout)
        if done:
            self._conn.close()
        else:
            log.error("state file %s: the writer did not finish within %.0f s", self.path, timeout)
        return done

    def stats(self) -> dict[str, Any]:
        """For ``/status``: where, how much was written, and whether writing works."""
        w = self._writer
        return {
            "path": str(self.path),
            "schema_version": SCHEMA_VERSION,
            "submitted": w.submitted,
            "writes": w.writes,
            "batches": w.batches,
            "backlog": w.backlog,
            "errors": w.errors,
            "last_error": w.last_error,
            "last_commit": w.last_commit,
        }


def _create(path: Path) -> None:
    """Make the file (0600) and its folder (0700) if missing."""
    try:
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        return
    except FileExistsError:
        pass
    except OSError as e:
        raise StateFileError(f"state file {path}: cannot create ({e.strerror})") from None
    if not stat.S_ISREG(path.stat().st_mode):
        raise StateFileError(f"state file {path}: not a regular file")


def _warn_if_shared(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & 0o077:
        log.warning(
            "state file %s is readable by other users (mode %o); it holds voice tokens: "
            "chmod 600 it",
            path,
            stat.S_IMODE(mode),
        )
