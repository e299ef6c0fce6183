"""Start-up and shutdown: one code path for ``audionode run`` and for the tests.

The Sanic server is created inside our own event loop (``create_server``) rather than with
``app.run()``: the control plane, and the in-process engine, share that loop, the port may be
0 (ephemeral, for tests), and the tests start exactly what production starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audionode.config import Config
from audionode.engine.host import EngineHost, LocalHost
from audionode.engine.worker import WorkerPool, default_workers
from audionode.logs import configure_logging, node_label
from audionode.runtime import listen_socket, run
from audionode.service import NodeService
from audionode.service.state import NodeState
from audionode.sources.loader import SourceManager
from audionode.store import StateFileError, Store
from audionode.store.records import Snapshot
from audionode.web.app import create_app

log = logging.getLogger("audionode")


@dataclass(frozen=True, slots=True)
class RunningNode:
    """A started node: its service and the address it listens on."""

    service: NodeService
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _engine_host(config: Config, service: NodeService) -> EngineHost:
    workers = default_workers(config.engine.workers)
    if workers == 0:
        return LocalHost(config, service.on_engine_event)
    return WorkerPool(config, service.on_engine_event, service.on_worker_lost, workers)


def open_state(config: Config) -> tuple[Store | None, Snapshot | None]:
    """The state file and what it holds (``state.path``; none when it is empty or null).
    Raises :class:`~audionode.store.StateFileError` (exit code 2) for a file it cannot use."""
    if not config.state.path:
        return None, None
    store = Store.open(config.state.path)
    try:
        snapshot = store.load()
    except BaseException:
        store.close()
        raise
    log.info(
        "state file %s: %d sessions, %d voice clients to resume",
        store.path,
        len(snapshot.sessions),
        len(snapshot.players),
    )
    return store, snapshot


@contextlib.asynccontextmanager
async def start_node(config: Config) -> AsyncIterator[RunningNode]:
    """Start the node in the running loop; stop it when the block exits.

    Order: the state file is read and the port bound first (a file it cannot use, or a port
    in use, stops the start before anything else runs), then the sources and the engine
    start, then the stored sessions are restored (voice reconnected, tracks re-opened), and
    only then do the fronts accept connections, so a bot that identifies at once finds its
    session. On the way out the last checkpoint is written before any connection is closed."""
    store, snapshot = open_state(config)
    try:
        sock = listen_socket(config.host, config.port)  # before anything reconnects voice
    except BaseException:
        if store is not None:
            store.close()
        raise
    identity = snapshot.identity if snapshot is not None else None
    state = None if identity is None else NodeState(identity.node_id, identity.token_secret)
    service = NodeService(config, state=state, store=store)
    service.sources = SourceManager.from_config(config.sources, base_dir=Path.cwd())
    for failure in service.sources.failures:
        log.error("source plugin %s was skipped: %s", failure.plugin, failure.message)
    engine = _engine_host(config, service)
    service.engine = engine
    await engine.start()
    if snapshot is not None:
        service.restore(snapshot)
    app = create_app(service)
    server: Any = await app.create_server(
        sock=sock, return_asyncio_server=True, access_log=config.log_level == "DEBUG"
    )
    await server.startup()
    await server.before_start()
    await server.after_start()
    port = sock.getsockname()[1]
    try:
        yield RunningNode(service, config.host, port)
    finally:
        await service.close()
        await engine.close()
        await service.sources.close()
        await server.before_stop()
        server.close()
        await server.wait_closed()
        await server.after_stop()
        sock.close()


async def _serve(config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with start_node(config) as node:
        log.info("audionode listening on %s", node.url)
        await stop.wait()
        log.info("shutting down")


def run_forever(config: Config) -> int:
    """Run the node until SIGINT/SIGTERM; returns the process exit code."""
    configure_logging(
        config.log_level,
        log_format=config.log_format,
        node=node_label(config.node_name, config.port),
    )
    try:
        run(_serve(config))
    except StateFileError as e:  # one line, exit 2: a supervisor should not restart it
        print(f"audionode: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        log.error("cannot listen on %s:%s: %s", config.host, config.port, e.strerror)
        return 1
    return 0
