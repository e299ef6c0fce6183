"""Engine worker processes (``engine.workers = N``): guilds sharded by player key.

PyAV encoding holds the GIL, so the data plane scales across cores by processes
(ARCHITECTURE.md). Each worker runs its own event loop with one engine (its voice
connections, pipelines and the one real-time sender of that process). The control process
talks to a worker over a socket pair with length-prefixed msgpack frames, both ends asyncio:
sending a command never blocks the control loop.

A worker that dies (crash, OOM kill, SIGKILL) is noticed through its process sentinel and its
socket's EOF; the pool reports the players it served (``on_worker_lost``) so the service can
tell their bots and restart them, and spawns a fresh worker in the same slot. The node itself
never goes down with a worker.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from audionode.config import Config
from audionode.engine import messages as msg
from audionode.engine.host import DEFAULT_FACTORY, EventCallback, load_factory
from audionode.engine.stats import StatsBook
from audionode.runtime import run

log = logging.getLogger(__name__)

_LEN = struct.Struct(">I")
_MAX_FRAME = 64 * 1024 * 1024
"""Commands carry whole in-memory media files (Playable.data) at most."""

LostCallback = Callable[[int, set[int]], None]
"""``on_worker_lost(slot, player_keys)``: called on the control loop when a worker died."""


def _frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = _LEN.unpack(await reader.readexactly(_LEN.size))
    if size > _MAX_FRAME:
        raise ValueError(f"frame of {size} bytes exceeds the limit")
    return await reader.readexactly(size)


def default_workers(configured: int) -> int:
    """``-1`` means CPU count - 1, at least 1."""
    if configured >= 0:
        return configured
    return max(1, (os.cpu_count() or 2) - 1)


# --- the worker process ---------------------------------------------------------------------


def worker_main(conn: Connection, config_json: bytes, factory: str, slot: int) -> None:
    """Entry point of a worker process (``spawn``): run one engine until the pipe closes."""
    from audionode.logs import configure_logging

    config = msgspec.json.decode(config_json, type=Config)
    configure_logging(config.log_level, prefix=f"[worker {slot}] ")
    run(_serve(conn, config, factory))


async def _serve(conn: Connection, config: Config, factory: str) -> None:
    sock = socket.socket(fileno=os.dup(conn.fileno()))
    conn.close()
    reader, writer = await asyncio.open_connection(sock=sock)

    def emit(event: msg.Event) -> None:
        # Once the control process hung up, the engine's closing events have no reader.
        if not writer.is_closing():
            writer.write(_frame(msg.encoder.encode(event)))

    engine = load_factory(factory)(config, emit)
    await engine.start()
    try:
        while True:
            engine.handle(msg.command_decoder.decode(await _read_frame(reader)))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the control process closed the pipe: shut down
    finally:
        await engine.close()
        writer.close()


# --- the control side -----------------------------------------------------------------------


@dataclass(eq=False)
class _Worker:
    slot: int
    process: Any
    writer: asyncio.StreamWriter
    reader_task: asyncio.Task[None] | None = None
    players: set[int] = field(default_factory=set)
    alive: bool = True


class WorkerPool:
    """N engine workers; a player's commands always go to ``slot = key % N``."""

    def __init__(
        self,
        config: Config,
        on_event: EventCallback,
        on_worker_lost: LostCallback,
        workers: int,
        factory: str = DEFAULT_FACTORY,
    ) -> None:
        if workers < 1:
            raise ValueError("a worker pool needs at least one worker")
        self._config_json = msgspec.json.encode(config)
        self._on_event = on_event
        self._on_lost = on_worker_lost
        self._factory = factory
        self._size = workers
        self._workers: list[_Worker | None] = [None] * workers
        self._pending: list[list[bytes]] = [[] for _ in range(workers)]
        self._closing = False
        self.restarts = 0
        self.book = StatsBook()
        self._ctx = multiprocessing.get_context("spawn")

    async def start(self) -> None:
        for slot in range(self._size):
            await self._spawn(slot)

    async def _spawn(self, slot: int) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=worker_main,
            args=(child, self._config_json, self._factory, slot),
            name=f"audionode-engine-{slot}",
            daemon=True,
        )
        process.start()
        child.close()
        sock = socket.socket(fileno=os.dup(parent.fileno()))
        parent.close()
        reader, writer = await asyncio.open_connection(sock=sock)
        worker = _Worker(slot, process, writer)
        self._workers[slot] = worker
        worker.reader_task = asyncio.create_task(self._read_events(worker, reader))
        for frame in self._pending[slot]:
            writer.write(frame)
        self._pending[slot].clear()
        log.info("engine worker %d started (pid %d)", slot, process.pid)

    async def _read_events(self, worker: _Worker, reader: asyncio.StreamReader) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                event = msg.event_decoder.decode(await _read_frame(reader))
                if isinstance(event, msg.EngineStats):
                    self.book.add(worker.slot, event, loop.time())
                else:
                    self._on_event(event)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, msgspec.DecodeError):
            pass
        await self._lost(worker)

    async def _lost(self, worker: _Worker) -> None:
        if not worker.alive or self._closing:
            return
        worker.alive = False
        worker.writer.close()
        self.book.forget(worker.slot)
        await asyncio.get_running_loop().run_in_executor(None, worker.process.join, 5)
        log.error(
            "engine worker %d (pid %s) died with exit code %s; %d players affected; restarting",
            worker.slot,
            worker.process.pid,
            worker.process.exitcode,
            len(worker.players),
        )
        self.restarts += 1
        await self._spawn(worker.slot)
        self._on_lost(worker.slot, set(worker.players))

    def send(self, command: msg.Command) -> None:
        slot = command.player % self._size
        worker = self._workers[slot]
        if isinstance(command, msg.Disconnect):
            if worker is not None:
                worker.players.discard(command.player)
        elif worker is not None:
            worker.players.add(command.player)
        frame = _frame(msg.encoder.encode(command))
        if worker is None or not worker.alive:
            self._pending[slot].append(frame)  # flushed to the replacement worker
        else:
            worker.writer.write(frame)

    async def close(self) -> None:
        self._closing = True
        for worker in self._workers:
            if worker is None:
                continue
            worker.writer.close()
            if worker.reader_task is not None:
                worker.reader_task.cancel()
        loop = asyncio.get_running_loop()
        for worker in self._workers:
            if worker is None:
                continue
            await loop.run_in_executor(None, worker.process.join, 5)
            if worker.process.is_alive():
                worker.process.kill()
                await loop.run_in_executor(None, worker.process.join, 5)

    def stats(self) -> dict[str, Any]:
        return {
            "workers": self._size,
            "restarts": self.restarts,
            "processes": [
                {"slot": w.slot, "pid": w.process.pid, "alive": w.alive, "players": len(w.players)}
                for w in self._workers
                if w is not None
            ],
            **self.book.snapshot(),
        }

    def pids(self) -> list[int]:
        """Process ids of the live workers (benchmarks sum their CPU time)."""
        return [w.process.pid for w in self._workers if w is not None and w.alive]
