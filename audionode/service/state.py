"""The node's identity: its id and the secret its track tokens are signed with.

Kept in the state file (``store/``, docs/PERSISTENCE.md) so track tokens survive a restart;
without a state file (``state.path`` null or no config file) both are made up at start-up and
live in memory only, so tokens die with the process. The secret is random (32 bytes from
``secrets``), never derived from the password.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NodeState:
    node_id: str
    """Names this node in the track tokens it issues."""
    token_secret: bytes


def fresh_state() -> NodeState:
    """A new identity, for a node without a state file."""
    return NodeState(node_id=secrets.token_hex(6), token_secret=secrets.token_bytes(32))
