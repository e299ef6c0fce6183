"""The engine worker process: one engine on its own event loop, fed over a socket pair.

Started by :class:`audionode.engine.worker.WorkerPool` with ``spawn``. It reads commands
(bounded by ``engine.max_message_bytes``: an oversize or undecodable frame is dropped and
logged, the worker goes on), writes events (bounded by ``engine.max_event_bytes``, texts cut
to fit), and publishes its vitals for the pool's watchdog (``engine/watchdog.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from multiprocessing.connection import Connection

import msgspec

from audionode.config import Config
from audionode.engine import messages as msg
from audionode.engine import rtprio, wire
from audionode.engine.host import load_factory
from audionode.engine.watchdog import Beacon, Publisher
from audionode.media.producer import shared as shared_producer
from audionode.runtime import run

log = logging.getLogger(__name__)


def worker_main(
    conn: Connection, config_json: bytes, factory: str, slot: int, beacon: Beacon
) -> None:
    """Entry point of a worker process (``spawn``): run one engine until the pipe closes."""
    from audionode.logs import configure_logging, node_label

    config = msgspec.json.decode(config_json, type=Config)
    configure_logging(
        config.log_level,
        prefix=f"[worker {slot}] ",
        log_format=config.log_format,
        node=node_label(config.node_name, config.port),
    )
    run(_serve(conn, config, factory, beacon))


async def _serve(conn: Connection, config: Config, factory: str, beacon: Beacon) -> None:
    sock = socket.socket(fileno=os.dup(conn.fileno()))
    conn.close()
    reader, writer = await asyncio.open_connection(sock=sock)
    limits = config.engine
    # First, on this (the loop's) thread: threads created from here on start at normal
    # priority (SCHED_RESET_ON_FORK), those made earlier keep theirs.
    realtime = rtprio.apply_logged(limits.realtime_priority, "worker")

    # Once the control process hung up, the engine's closing events have no reader.
    events = wire.EventWriter(writer.write, writer.is_closing, limits.max_event_bytes)
    engine = load_factory(factory)(config, events.emit)
    if hasattr(engine, "realtime"):  # a test engine may not report it
        engine.realtime = realtime
    await engine.start()
    publisher = Publisher(beacon, shared_producer())
    if hasattr(engine, "on_beat"):  # its sender clock beats for the loop (a test engine's not)
        engine.on_beat = publisher.beat
        publisher.start(asyncio.get_running_loop(), timer=False)
    else:
        publisher.start(asyncio.get_running_loop())
    try:
        while True:
            command = await _next_command(reader, limits.max_message_bytes)
            if command is not None:
                engine.handle(command)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the control process closed the pipe: shut down
    finally:
        publisher.close()
        await engine.close()
        events.flush()
        writer.close()


async def _next_command(reader: asyncio.StreamReader, limit: int) -> msg.Command | None:
    """The next command, or None for one that was dropped. The pool never sends an oversize
    or malformed frame; if one arrives anyway it costs that command, not the worker."""
    try:
        payload = await wire.read_frame(reader, limit)
    except wire.FrameTooLarge as e:
        log.error("dropped a command of %d bytes (engine.max_message_bytes)", e.size)
        await wire.skip(reader, e.size)
        return None
    try:
        return msg.command_decoder.decode(payload)
    except msgspec.DecodeError as e:
        log.error("dropped an undecodable command: %s", e)
        return None
