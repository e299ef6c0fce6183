"""audionode's client library for discord.py 2.x bots (``pip install audionode[client]``).

::

    from audionode.client import Node, Player, Pool

    class Bot(commands.Bot):
        async def setup_hook(self) -> None:
            await Pool.connect(client=self, nodes=[Node(url="http://127.0.0.1:8000",
                                                        password="...")])

    player = await voice_channel.connect(cls=Player)
    track = await player.play("https://example.com/song.mp3")

The guide is ``docs/CLIENT.md``. This package is separate from the node: the node never imports
it, and it imports nothing of the node.
"""

from audionode.client.errors import (
    AudionodeClientError,
    AuthenticationFailed,
    NodeError,
    NodeUnavailable,
    NoNodesAvailable,
    ProtocolError,
)
from audionode.client.failover import Snapshot
from audionode.client.load import NodeStats, penalty
from audionode.client.node import Node
from audionode.client.player import Player
from audionode.client.pool import Pool
from audionode.client.queue import Queue
from audionode.client.tracks import Band, Filters, Track

__all__ = [
    "AudionodeClientError",
    "AuthenticationFailed",
    "Band",
    "Filters",
    "NoNodesAvailable",
    "Node",
    "NodeError",
    "NodeStats",
    "NodeUnavailable",
    "Player",
    "Pool",
    "ProtocolError",
    "Queue",
    "Snapshot",
    "Track",
    "penalty",
]
