"""Where engines run: in this process (``engine.workers = 0``) or in worker processes.

Both hosts take the same typed commands and deliver the same typed events
(``engine/messages.py``); only the carrier differs (a direct call scheduled on the loop versus
msgpack frames over a socket pair to a worker process).

An engine is anything built by an :data:`EngineFactory`: ``factory(config, emit)`` returns an
object with ``handle(command)`` (synchronous, never blocking), ``async start()`` and
``async close()``; it reports events through ``emit``. The factory is named by an import path
(``"package.module:callable"``) so a worker process can build it after ``spawn``.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from audionode.config import Config
from audionode.engine import messages as msg
from audionode.engine.admission import Placer
from audionode.engine.stats import StatsBook
from audionode.engine.watchdog import LocalWatch

log = logging.getLogger(__name__)

DEFAULT_FACTORY = "audionode.engine.engine:Engine"

EventCallback = Callable[[msg.Event], None]


class EngineCore(Protocol):
    """What a host needs from an engine."""

    def handle(self, command: msg.Command) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


EngineFactory = Callable[[Config, EventCallback], EngineCore]


def load_factory(path: str) -> EngineFactory:
    """Import ``"module:attr"``."""
    module, _, attr = path.partition(":")
    factory: EngineFactory = getattr(importlib.import_module(module), attr)
    return factory


class EngineHost(Protocol):
    """The control plane's handle on the data plane."""

    def send(self, command: msg.Command) -> None:
        """Queue a command; never blocks."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...

    def admit(self, key: int) -> None:
        """Place a new player on the least-loaded engine, or raise
        :class:`~audionode.errors.Unavailable` (``NODE_AT_CAPACITY``) when every engine is at
        its budget (``engine/admission.py``)."""
        ...

    def release(self, key: int) -> None:
        """The player is gone: its place is free."""
        ...


class LocalHost:
    """The engine runs in this process and this event loop (tests, tiny deployments).

    Nothing can restart it: a stalled producer thread or event loop is only noticed and
    reported (:class:`~audionode.engine.watchdog.LocalWatch`). The same message bound as
    for workers applies to in-memory tracks, so a deployment behaves the same either way.
    """

    def __init__(self, config: Config, on_event: EventCallback, factory: str = DEFAULT_FACTORY):
        self._loop = asyncio.get_running_loop()
        self._on_event = on_event
        self._max_data = config.engine.max_message_bytes
        self.book = StatsBook()
        self.placer = Placer(1, config.engine.admission, cpu=False)
        self.engine = load_factory(factory)(config, self._emit)
        if config.engine.realtime_priority:
            # This loop also serves the HTTP API and the bots' websockets: raising it would
            # raise them too (docs/decisions/0023-realtime-loop-thread.md).
            log.warning(
                "engine.realtime_priority applies to engine worker processes only; the "
                "in-process engine (engine.workers = 0) runs at normal priority"
            )
        # The engine brings its producer thread (the real one does; a test engine may not):
        # this module runs in the control process and never imports media/ itself.
        producer = getattr(self.engine, "producer", None)
        self.watch = (
            None if producer is None else LocalWatch(producer, config.engine.watchdog_timeout)
        )

    def _emit(self, event: msg.Event) -> None:
        if isinstance(event, msg.EngineStats):
            self.book.add(0, event, self._loop.time())
            return
        # Scheduled, not called: an engine event must not re-enter the player mid-command.
        self._loop.call_soon(self._on_event, event)

    def send(self, command: msg.Command) -> None:
        if isinstance(command, msg.Play | msg.Preload | msg.AddLayer):
            size = len(command.source.data or b"")
            if size > self._max_data:
                message = (
                    f"the track's data is {size} bytes, over engine.max_message_bytes "
                    f"({self._max_data})"
                )
                self._loop.call_soon(self._on_event, msg.refusal(command, message))
                return
        self._loop.call_soon(self.engine.handle, command)

    async def start(self) -> None:
        await self.engine.start()
        if self.watch is not None:
            self.watch.start()

    async def close(self) -> None:
        if self.watch is not None:
            self.watch.close()
        await self.engine.close()

    def admit(self, key: int) -> None:
        self.placer.admit(key, self.placer.loads(self.book, [True]))

    def release(self, key: int) -> None:
        self.placer.release(key)

    def stats(self) -> dict[str, Any]:
        watch = {} if self.watch is None else self.watch.report()
        admission = self.placer.status(self.placer.loads(self.book, [True]))
        return {"workers": 0, **watch, **self.book.snapshot(), "admission": admission}
