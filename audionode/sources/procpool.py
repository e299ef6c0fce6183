"""A small pool of worker processes with a per-call timeout that really stops the work.

Why not ``concurrent.futures.ProcessPoolExecutor``: on a timeout it can only stop *waiting*;
the stuck call keeps its worker busy for good. Here a call that overruns its timeout gets its
worker process killed and replaced, so a hung extraction never shrinks the pool.

Workers are started with the ``spawn`` method (the parent runs threads; forking it is unsafe)
the first time they are needed, and import ``preload`` (calling ``"module:function"`` entries)
before the first call, so start-up and warm-up never count against a call's timeout.
A call runs ``fn(*args)`` in a worker: ``fn`` must be a module-level function and its
arguments and result picklable.
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import multiprocessing.connection
import os
import signal
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from audionode.errors import SourceError

T = TypeVar("T")
_STARTUP_TIMEOUT = 60.0


def _serve(
    conn: multiprocessing.connection.Connection, preload: tuple[str, ...], nice: int
) -> None:
    """Worker main loop: lower the priority by ``nice``, import ``preload``, say ready, then
    receive (fn, args) and send (ok, result-or-message) until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    if nice:
        # Before any thread starts: Linux keeps the nice value per thread, new ones inherit it.
        os.nice(nice)
    for entry in preload:  # "module" is imported; "module:function" is also called
        module, _, function = entry.partition(":")
        imported = importlib.import_module(module)
        if function:
            getattr(imported, function)()
    conn.send((True, "ready"))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        fn, args = request
        try:
            reply: tuple[bool, Any] = (True, fn(*args))
        except BaseException as e:  # report everything; exceptions may not pickle
            reply = (False, str(e) or type(e).__name__)
        conn.send(reply)


class _Worker:
    """One worker process. Blocking: construct it in a thread."""

    def __init__(
        self,
        ctx: multiprocessing.context.SpawnContext,
        name: str,
        preload: tuple[str, ...],
        nice: int = 0,
    ) -> None:
        self.conn, child = ctx.Pipe()
        self.process: BaseProcess = ctx.Process(
            target=_serve, args=(child, preload, nice), name=name, daemon=True
        )
        self.process.start()
        child.close()
        # Start-up (interpreter, imports) is not part of any call's timeout.
        if not self.conn.poll(_STARTUP_TIMEOUT):
            self.kill()
            raise SourceError(f"{name} did not start within {_STARTUP_TIMEOUT:g} s")
        self.conn.recv()

    def kill(self) -> None:
        """Stop the process; a thread blocked in ``conn.recv`` then gets EOFError."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(1.0)


class ProcessPool:
    """Up to ``size`` worker processes; :meth:`run` one call at a time per worker."""

    def __init__(
        self,
        size: int,
        timeout: float,
        *,
        name: str = "worker",
        preload: tuple[str, ...] = (),
        nice: int = 0,
    ) -> None:
        """``nice`` lowers the workers' scheduling priority (``os.nice``; 0 keeps the parent's)."""
        self.size = size
        self.preload = preload
        self.nice = nice
        self.timeout = timeout
        self.name = name
        self._ctx = multiprocessing.get_context("spawn")
        self._idle: list[_Worker] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False
        self.started = 0
        """Worker processes started so far (replacements included)."""

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker. Raises SourceError on timeout, crash or failure."""
        if self.is_closed():
            raise SourceError(f"{self.name} pool is closed")
        async with self._slots:
            worker = self._idle.pop() if self._idle else await self._spawn()
            reply = asyncio.get_running_loop().run_in_executor(None, worker.conn.recv)
            try:
                worker.conn.send((fn, args))
                ok, value = await asyncio.wait_for(asyncio.shield(reply), self.timeout)
            except TimeoutError:
                await self._discard(worker, reply)
                raise SourceError(f"{self.name} gave up after {self.timeout:g} s") from None
            except (EOFError, OSError):
                await self._discard(worker, reply)
                raise SourceError(f"the {self.name} process died") from None
            if self.is_closed():  # closed while this call ran
                await self._discard(worker, None)
            else:
                self._idle.append(worker)
        if not ok:
            raise SourceError(str(value))
        return value  # type: ignore[no-any-return]

    async def _discard(self, worker: _Worker, reply: asyncio.Future[Any] | None) -> None:
        await asyncio.to_thread(worker.kill)
        if reply is not None:
            # the reader thread wakes with EOFError once the process is gone
            await asyncio.gather(reply, return_exceptions=True)
        worker.conn.close()

    def is_closed(self) -> bool:
        return self._closed

    async def _spawn(self) -> _Worker:
        self.started += 1
        name = f"{self.name}-{self.started}"
        try:
            return await asyncio.to_thread(_Worker, self._ctx, name, self.preload, self.nice)
        except (EOFError, OSError):
            raise SourceError(f"{name} failed to start") from None

    async def close(self) -> None:
        """Stop every idle worker (calls in flight end with an error)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for worker in idle:
            await self._discard(worker, None)
