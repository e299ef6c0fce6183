"""A small pool of worker processes with a per-call timeout that really stops the work.

Why not ``concurrent.futures.ProcessPoolExecutor``: on a timeout it can only stop *waiting*;
the stuck call keeps its worker busy for good. Here a call that overruns its timeout gets its
worker process killed and replaced, so a hung extraction never shrinks the pool.

Workers are started with the ``spawn`` method (the parent runs threads; forking it is unsafe)
the first time they are needed, and import ``preload`` (calling ``"module:function"`` entries)
before the first call, so start-up and warm-up never count against a call's timeout.
A call runs ``fn(*args)`` in a worker: ``fn`` is a module-level function, or its name as
``"module:function"`` (so the parent need not import the module: the probe pool runs
``media/probe.py`` without loading av in the control process), and its arguments and result
are picklable. A call that raises an :mod:`audionode.errors` exception raises the same class
in the caller (a refusal stays a 403); anything else becomes a SourceError.

Calls wait for their worker on threads of the pool's own (never the event loop's shared
executor), and :class:`~audionode.sources.fairslots.FairSlots` keeps one key (a host) from
holding every worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import multiprocessing
import multiprocessing.connection
import os
import signal
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from audionode import errors
from audionode.errors import AudionodeError, SourceError
from audionode.sources.fairslots import FairSlots

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
            reply: tuple[bool, Any] = (True, _function(fn)(*args))
        except AudionodeError as e:
            reply = (False, (type(e).__name__, e.message))
        except BaseException as e:  # report everything; exceptions may not pickle
            reply = (False, ("SourceError", str(e) or type(e).__name__))
        conn.send(reply)


def _function(fn: Callable[..., Any] | str) -> Callable[..., Any]:
    if callable(fn):
        return fn
    module, _, name = fn.partition(":")
    found: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return found


def _raise(value: tuple[str, str]) -> None:
    """Raise in the caller what the worker raised (an audionode error class by name)."""
    name, message = value
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, AudionodeError):
        raise cls(message)
    raise SourceError(message)


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
    """Up to ``size`` worker processes; :meth:`run` one call at a time per worker.

    Workers start on first use, and from then on the pool keeps ``size`` of them warm: a
    worker killed for overrunning is replaced in the background, so the next call (maybe
    another guild's) does not pay for a process start.
    """

    def __init__(
        self,
        size: int,
        timeout: float,
        *,
        name: str = "worker",
        preload: tuple[str, ...] = (),
        nice: int = 0,
        per_key: int | None = None,
    ) -> None:
        """``nice`` lowers the workers' scheduling priority (``os.nice``; 0 keeps the parent's);
        ``per_key`` bounds the workers one key may hold (default: all but one)."""
        self.size = size
        self.preload = preload
        self.nice = nice
        self.timeout = timeout
        self.name = name
        self._ctx = multiprocessing.get_context("spawn")
        self._idle: list[_Worker] = []
        self._busy = 0
        self._spawning = 0
        self._changed = asyncio.Condition()
        self._refills: set[asyncio.Task[None]] = set()
        self.slots = FairSlots(size, per_key)
        self._threads = concurrent.futures.ThreadPoolExecutor(
            2 * size, thread_name_prefix=f"{name}-wait"
        )
        self._closed = False
        self.started = 0
        """Worker processes started so far (replacements included)."""

    async def run(self, fn: Callable[..., T] | str, *args: Any, key: str | None = None) -> T:
        """``fn(*args)`` in a worker; ``key`` (a host) shares the pool fairly with others.
        Raises SourceError on timeout or crash, and the worker's own error on failure."""
        if self.is_closed():
            raise SourceError(f"{self.name} pool is closed")
        async with self.slots.slot(key):
            worker = await self._take()
            try:
                ok, value = await self._call(worker, fn, args)
            finally:
                self._busy -= 1
                self._refill()
        if not ok:
            _raise(value)
        return value  # type: ignore[no-any-return]

    async def _take(self) -> _Worker:
        """An idle worker; one being started in the background, if any; else a new one."""
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._idle) or not self._spawning)
            self._busy += 1
            if self._idle:
                return self._idle.pop()
        try:
            return await self._spawn()
        except BaseException:
            self._busy -= 1
            raise

    async def _call(self, worker: _Worker, fn: Any, args: tuple[Any, ...]) -> tuple[bool, Any]:
        reply = asyncio.get_running_loop().run_in_executor(self._threads, worker.conn.recv)
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
            await self._give_back(worker)
        return ok, value

    async def _give_back(self, worker: _Worker) -> None:
        async with self._changed:
            self._idle.append(worker)
            self._changed.notify_all()

    def _refill(self) -> None:
        """Start, in the background, the workers the pool is short of."""
        missing = self.size - len(self._idle) - self._busy - self._spawning
        for _ in range(0 if self._closed else missing):
            self._spawning += 1
            task = asyncio.get_running_loop().create_task(self._spawn_idle())
            self._refills.add(task)
            task.add_done_callback(self._refills.discard)

    async def _spawn_idle(self) -> None:
        try:
            worker = await self._spawn()
        except SourceError:
            worker = None  # the next call tries again
        finally:
            self._spawning -= 1
        if worker is not None and self._closed:
            await self._discard(worker, None)
        elif worker is not None:
            await self._give_back(worker)
        async with self._changed:
            self._changed.notify_all()

    async def _discard(self, worker: _Worker, reply: asyncio.Future[Any] | None) -> None:
        await self._in_thread(worker.kill)
        if reply is not None:
            # the reader thread wakes with EOFError once the process is gone
            await asyncio.gather(reply, return_exceptions=True)
        worker.conn.close()

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:  # its threads take no new work: the last clean-ups get a thread
            return await asyncio.to_thread(fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    def is_closed(self) -> bool:
        return self._closed

    async def _spawn(self) -> _Worker:
        self.started += 1
        name = f"{self.name}-{self.started}"
        try:
            return await self._in_thread(_Worker, self._ctx, name, self.preload, self.nice)
        except (EOFError, OSError):
            raise SourceError(f"{name} failed to start") from None

    async def close(self) -> None:
        """Stop every idle worker (calls in flight end with an error)."""
        self._closed = True
        # a worker being started cannot be stopped halfway: let it start, then discard it
        await asyncio.gather(*self._refills, return_exceptions=True)
        idle, self._idle = self._idle, []
        for worker in idle:
            await self._discard(worker, None)
        self._threads.shutdown(wait=False)
