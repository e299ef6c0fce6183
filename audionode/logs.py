"""Logging set-up shared by the node and its worker processes (docs/OPERATIONS.md, "Logs").

Every record carries the node's name and, while code works for a player, that player's guild:
the guild travels in a context variable (:func:`guild_scope`) set where player work enters
(a command, an engine event, a worker's command), so asyncio tasks and callbacks started from
there inherit it and no log call has to repeat it. ``log_format`` ``text`` writes one line per
record; ``json`` one object per line with ``ts``, ``level``, ``logger``, ``msg``, ``guild``,
``node`` (and ``process``, ``exc`` when there is one).

Secrets (the password, voice tokens, the metrics token) are never passed to a logger; a test
runs the whole chain at DEBUG and looks for them in the output.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import IO, Any

_guild: ContextVar[int | None] = ContextVar("audionode_log_guild", default=None)

_TEXT = "%(asctime)s %(levelname)-7s [%(node)s%(guild_tag)s] %(process_tag)s%(name)s: %(message)s"


def node_label(name: str, port: int) -> str:
    """The node's name in logs: ``node_name``, else ``<host name>:<port>``."""
    return name or f"{socket.gethostname()}:{port}"


@contextlib.contextmanager
def guild_scope(guild: int | None) -> Iterator[None]:
    """Every record logged inside (and by tasks started inside) names ``guild``; ``None``
    leaves the current one."""
    if guild is None:
        yield
        return
    token = _guild.set(int(guild))
    try:
        yield
    finally:
        _guild.reset(token)


def current_guild() -> int | None:
    return _guild.get()


class ContextFilter(logging.Filter):
    """Stamps ``node``, ``guild`` and ``process`` on every record its handler emits."""

    def __init__(self, node: str, process: str = "") -> None:
        super().__init__()
        self.node = node
        self.process = process

    def filter(self, record: logging.LogRecord) -> bool:
        guild = getattr(record, "guild", None)
        if guild is None:
            guild = _guild.get()
        record.guild = guild
        record.guild_tag = "" if guild is None else f" guild={guild}"
        record.node = self.node
        record.process_tag = f"[{self.process}] " if self.process else ""
        record.process_name = self.process
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record (log shippers read it without a pattern)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "guild": getattr(record, "guild", None),
            "node": getattr(record, "node", ""),
        }
        process = getattr(record, "process_name", "")
        if process:
            entry["process"] = process
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _iso(created: float) -> str:
    millis = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


def make_handler(
    log_format: str = "text", node: str = "", process: str = "", stream: IO[str] | None = None
) -> logging.Handler:
    """A handler writing ``log_format`` (``text`` or ``json``) records to ``stream`` (stderr)."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.addFilter(ContextFilter(node, process))
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    elif log_format == "text":
        handler.setFormatter(logging.Formatter(_TEXT))
    else:
        raise ValueError(f"log_format must be 'text' or 'json', not {log_format!r}")
    return handler


def configure_logging(
    level: str, prefix: str = "", log_format: str = "text", node: str = ""
) -> None:
    """One record per line on stderr, as ``log_format`` says; ``prefix`` names the process
    (``worker 0``) when it is not the control process."""
    logging.basicConfig(
        level=level,
        handlers=[make_handler(log_format, node, prefix.strip().strip("[]"))],
        force=True,
    )
    # Sanic's own loggers are noisy at INFO and duplicate our start-up line.
    for name in ("sanic.root", "sanic.error", "sanic.server", "sanic.websockets"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
