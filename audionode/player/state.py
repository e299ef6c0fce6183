"""Player states, with Discodo's integer values (``getState.state``)."""

from __future__ import annotations

import enum


class PlayerState(enum.IntEnum):
    DISCONNECTED = 0
    STOPPED = 1
    PAUSED = 2
    PLAYING = 3
