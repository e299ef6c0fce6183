"""Logging set-up shared by the node and its worker processes."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str, prefix: str = "") -> None:
    """One line per record on stderr; secrets are never passed to the logger."""
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s %(levelname)-7s {prefix}%(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    # Sanic's own loggers are noisy at INFO and duplicate our start-up line.
    for name in ("sanic.root", "sanic.error", "sanic.server", "sanic.websockets"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
