"""The node's own persistent state: the track-token secret and the node's id.

Kept in ``<state_dir>/node.json`` (created with mode 0600 in a 0700 folder) so track tokens
survive a restart; with ``state_dir = ""`` both are made up at start-up and live in memory only
(tokens then die with the process). The secret is random (32 bytes from ``secrets``), never
derived from the password.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import msgspec

from audionode.errors import ConfigError

STATE_FILE = "node.json"


class _Stored(msgspec.Struct, frozen=True):
    node_id: str
    token_secret: str  # hex


@dataclass(frozen=True, slots=True)
class NodeState:
    node_id: str
    """Names this node in the track tokens it issues."""
    token_secret: bytes


def _fresh() -> _Stored:
    return _Stored(node_id=secrets.token_hex(6), token_secret=secrets.token_hex(32))


def load_state(state_dir: str) -> NodeState:
    """Read (or create) the state in ``state_dir``; in memory when it is empty."""
    stored = _fresh() if not state_dir else _load_or_create(Path(state_dir))
    return NodeState(stored.node_id, bytes.fromhex(stored.token_secret))


def _load_or_create(folder: Path) -> _Stored:
    path = folder / STATE_FILE
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.exists():
            stored = msgspec.json.decode(path.read_bytes(), type=_Stored)
            bytes.fromhex(stored.token_secret)
            return stored
        stored = _fresh()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(msgspec.json.encode(stored))
        return stored
    except OSError as e:
        raise ConfigError(f"config key `state_dir`: cannot use {folder} ({e.strerror})") from None
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as e:
        raise ConfigError(
            f"config key `state_dir`: {path} is not a node state file ({e})"
        ) from None
