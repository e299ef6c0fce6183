"""A minimal engine for testing the carriers (hosts) alone: it answers commands with events.

It stands in for the real engine only where the unit under test is the process plumbing
(message framing, sharding, worker death); the real engine is tested end to end elsewhere.
"""

from __future__ import annotations

import os

from audionode.config import Config
from audionode.engine import messages as m
from audionode.engine.host import EventCallback


class EchoEngine:
    def __init__(self, config: Config, emit: EventCallback) -> None:
        self.emit = emit

    def handle(self, command: m.Command) -> None:
        if isinstance(command, m.Play):
            self.emit(m.TrackStarted(player=command.player, serial=command.serial))
        elif isinstance(command, m.Seek):
            # reports which process served it, so tests can see sharding and restarts
            self.emit(
                m.TrackPosition(
                    player=command.player, serial=os.getpid(), position_ms=command.position_ms
                )
            )

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


FLAKY_ENV = "AUDIONODE_TEST_FLAKY_FILE"


class FlakyEngine(EchoEngine):
    """An echo engine whose process exits at start-up while the file named by
    ``$AUDIONODE_TEST_FLAKY_FILE`` exists: a worker that cannot start (a broken install, no
    memory), for the respawn tests."""

    def __init__(self, config: Config, emit: EventCallback) -> None:
        if os.path.exists(os.environ.get(FLAKY_ENV, "")):
            os._exit(3)
        super().__init__(config, emit)
