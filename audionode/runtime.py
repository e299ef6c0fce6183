"""Process plumbing shared by the node, its engine workers and the voice server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from typing import Any


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound, listening, non-blocking TCP socket (``port`` 0 = ephemeral; read it back with
    ``getsockname()``), so servers never need private attributes to learn their port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop where it exists (Linux), else on the stock event loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
