"""The state file's writer: one thread that applies keyed writes in batches.

:meth:`Writer.submit` never blocks (it appends to a queue), so the event loop and the 20 ms
real-time path never wait on the disk. The thread takes everything queued, keeps the last
write of each key (a player's snapshot made twice before the disk caught up is written once),
and applies them in one transaction in the order of their last submission. That order keeps
the result equal to applying every write in turn, as long as each key stands for one kind of
change to one row group (a player's record, its queue, its position, its removal: four keys).

A failed transaction (disk full, I/O error) is rolled back, logged once per run of failures
and retried with whatever arrived meanwhile; nothing submitted is lost while the process lives.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Hashable
from typing import Any

log = logging.getLogger(__name__)

Statement = tuple[str, tuple[Any, ...]]

MAX_BATCH = 5000
"""Writes taken into one transaction at most (a bound on how long one commit holds the file)."""
RETRY_DELAY = 1.0
"""Seconds before a failed transaction is tried again."""


class _Barrier:
    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class Writer:
    """Create with an autocommit connection (``isolation_level=None``) that no other thread
    uses; :meth:`submit` from any thread; :meth:`start` once; :meth:`close` last."""

    def __init__(self, conn: sqlite3.Connection, name: str = "audionode-state") -> None:
        self._conn = conn
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.submitted = 0
        self.writes = 0
        """Coalesced writes committed."""
        self.batches = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_commit: float | None = None
        """Wall-clock time of the last commit."""

    def start(self) -> None:
        """Start the thread (writes submitted before wait for it, and form its first batch)."""
        self._thread.start()

    def submit(self, key: Hashable, statements: tuple[Statement, ...]) -> None:
        """Queue ``statements`` as the latest write of ``key``; returns at once."""
        self.submitted += 1
        self._queue.put((key, statements))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far is committed; False on timeout."""
        if not self._thread.is_alive():
            return False
        barrier = _Barrier()
        self._queue.put(barrier)
        return barrier.done.wait(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Commit what is queued, then stop the thread; False if it did not finish in time."""
        if not self._thread.is_alive():
            return True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def backlog(self) -> int:
        """Items queued and not yet taken by the thread."""
        return self._queue.qsize()

    # --- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        pending: dict[Hashable, tuple[Statement, ...]] = {}
        barriers: list[_Barrier] = []
        stopping = False
        while not (stopping and not pending):
            stopping |= self._gather(pending, barriers)
            if pending and not self._commit(pending):
                if stopping:
                    log.error("state file: %d writes lost at shutdown", len(pending))
                    return
                continue  # pending kept: retried with what arrives meanwhile
            pending.clear()
            for barrier in barriers:
                barrier.done.set()
            barriers.clear()

    def _gather(self, pending: dict[Hashable, Any], barriers: list[_Barrier]) -> bool:
        """Wait for one item (``RETRY_DELAY`` at most after a failed commit), then take what
        else is queued, up to :data:`MAX_BATCH`; True once asked to stop."""
        stopping = False
        wait = RETRY_DELAY if pending else None
        for taken in range(MAX_BATCH):
            try:
                item = self._queue.get(timeout=wait) if taken == 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            stopping |= self._take(item, pending, barriers)
        return stopping

    @staticmethod
    def _take(item: Any, pending: dict[Hashable, Any], barriers: list[_Barrier]) -> bool:
        if item is _STOP:
            return True
        if isinstance(item, _Barrier):
            barriers.append(item)
            return False
        key, statements = item
        pending.pop(key, None)  # re-inserted last: the order of the last submissions
        pending[key] = statements
        return False

    def _commit(self, pending: dict[Hashable, tuple[Statement, ...]]) -> bool:
        conn = self._conn
        try:
            conn.execute("BEGIN")
            # Runs of one statement (a checkpoint's positions: one UPDATE per playing player)
            # go through executemany: the same statements in the same order, prepared once.
            run_sql, run = "", list[tuple[Any, ...]]()
            for statements in pending.values():
                for sql, params in statements:
                    if sql != run_sql:
                        if run:
                            conn.executemany(run_sql, run)
                        run_sql, run = sql, []
                    run.append(params)
            if run:
                conn.executemany(run_sql, run)
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if self.last_error is None:
                log.error("state file: a write failed (%s); retrying every %.0f s", e, RETRY_DELAY)
            self.errors += 1
            self.last_error = str(e)
            return False
        if self.last_error is not None:
            log.warning("state file: writing again after %d failures", self.errors)
        self.last_error = None
        self.batches += 1
        self.writes += len(pending)
        self.last_commit = time.time()
        return True
