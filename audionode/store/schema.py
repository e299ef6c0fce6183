"""The state file's schema: its versions, the migrations between them, and the checks that
refuse a file that is not ours.

A state file is an SQLite database whose header carries :data:`APPLICATION_ID` and whose
``schema_version`` table holds one row. A new file is built by running every migration from
version 0, so the path an old file takes is the path every new file took
(docs/PERSISTENCE.md, "Schema versions"):

- v1: ``node``, the node's identity (its id and the track-token secret);
- v2: ``sessions``, ``players``, ``queues``: what a restart resumes.

:func:`prepare` raises :class:`StateFileError` (a :class:`~audionode.errors.ConfigError`: the
command line exits with code 2) naming the file and the problem, for a file that is not an
SQLite database, is another program's database, was written by a newer audionode, fails
SQLite's integrity check, or is held by another running node.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from audionode.errors import ConfigError

APPLICATION_ID: Final = 0x41554E44  # "AUND", in the database header (PRAGMA application_id)
SCHEMA_VERSION: Final = 3

MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: (
        "CREATE TABLE schema_version (version INTEGER NOT NULL)",
        "INSERT INTO schema_version (version) VALUES (0)",
        "CREATE TABLE node (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
    ),
    2: (
        "CREATE TABLE sessions (key TEXT PRIMARY KEY, record BLOB NOT NULL)",
        "CREATE TABLE players ("
        " session TEXT NOT NULL, guild_id INTEGER NOT NULL, record BLOB NOT NULL,"
        " position REAL, position_at REAL, PRIMARY KEY (session, guild_id))",
        "CREATE TABLE queues ("
        " session TEXT NOT NULL, guild_id INTEGER NOT NULL, record BLOB NOT NULL,"
        " PRIMARY KEY (session, guild_id))",
    ),
    # 3: players.position_at became "playing on from there since" (extrapolated to the node's
    # alive_at row at start-up); version 2 wrote the checkpoint's time, with the position
    # already moved on to it, so its positions are kept as they are.
    3: ("UPDATE players SET position_at = NULL",),
}
"""Version N's statements, run in one transaction that also sets ``schema_version`` to N."""


class StateFileError(ConfigError):
    """The state file cannot be used; the message is one line naming the file."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # SQLite's reports may span lines


def prepare(conn: sqlite3.Connection, path: Path, target: int = SCHEMA_VERSION) -> int:
    """Check that ``conn``'s file is ours (or empty) and migrate it to ``target``; returns the
    version it had. ``conn`` must be in autocommit mode (``isolation_level=None``)."""
    try:
        found = _version_of(conn, path)
        if found > SCHEMA_VERSION:
            raise StateFileError(
                f"state file {path}: written by a newer audionode (schema version {found}; "
                f"this one knows up to {SCHEMA_VERSION})"
            )
        _check_integrity(conn, path)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # pragma: no cover - every local file system does WAL
            raise StateFileError(f"state file {path}: SQLite refused WAL mode ({mode})")
        for version in range(found + 1, target + 1):
            _migrate(conn, version)
        return found
    except sqlite3.DatabaseError as e:
        raise StateFileError(f"state file {path}: {_describe(e)}") from None


def _version_of(conn: sqlite3.Connection, path: Path) -> int:
    """0 for an empty database; else the version of our schema, or an error."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if app_id == 0 and not tables:
        return 0
    if app_id != APPLICATION_ID:
        shown = ", ".join(sorted(tables)[:5]) or "none"
        raise StateFileError(
            f"state file {path}: an SQLite database of another program, not an audionode "
            f"state file (application id {app_id:#x}, tables: {shown})"
        )
    if "schema_version" not in tables:
        raise StateFileError(f"state file {path}: corrupt (no schema_version table)")
    rows = conn.execute("SELECT version FROM schema_version").fetchall()
    if len(rows) != 1 or not isinstance(rows[0][0], int) or rows[0][0] < 1:
        raise StateFileError(f"state file {path}: corrupt (schema_version holds {rows[:3]!r})")
    version: int = rows[0][0]
    return version


def _check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    problems = [r[0] for r in conn.execute("PRAGMA quick_check(3)")]
    if problems != ["ok"]:
        raise StateFileError(f"state file {path}: corrupt ({'; '.join(problems)})")


def _migrate(conn: sqlite3.Connection, version: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in MIGRATIONS[version]:
            conn.execute(statement)
        conn.execute("UPDATE schema_version SET version = ?", (version,))
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _describe(e: sqlite3.DatabaseError) -> str:
    text = str(e)
    if "locked" in text or "busy" in text:
        return f"in use by another running node ({text})"
    if "not a database" in text:
        return "not an SQLite database (file is not a database)"
    return f"unusable ({text})"
