"""The bot's voice state and voice server, forwarded to the player's node.

discord.py calls the player's ``on_voice_state_update``/``on_voice_server_update`` with the
raw gateway payloads; the node needs them as ``DISCORD_EVENT`` s (``docs/discodo.md`` §2.5)
to connect to voice as the bot. The latest of each is kept: a failover hands them to the next
node, which connects with the same voice session (the voice server ends the lost node's
connection when the new one identifies). While the player has no live node they are held
back and sent once it has one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from discord.channel import VocalGuildChannel

from audionode.client.errors import NodeUnavailable

if TYPE_CHECKING:
    from audionode.client.node import Node
    from audionode.client.player import Player

log = logging.getLogger(__name__)
JSON = Any


class VoiceForwarder:
    """Keeps the player's latest voice payloads and sends them to its node."""

    def __init__(self, player: Player) -> None:
        self.player = player
        self.state: dict[str, JSON] | None = None
        """The bot's VOICE_STATE_UPDATE as the node reads it."""
        self.server: dict[str, JSON] | None = None
        """The latest VOICE_SERVER_UPDATE."""
        self.held: list[str] = []
        """Payloads received while no node could take them (``t`` names, in order)."""

    async def state_update(self, data: dict[str, JSON]) -> None:
        p = self.player
        channel_id = data.get("channel_id")
        self.state = {
            "guild_id": str(data.get("guild_id", p.guild.id)),
            "user_id": str(data["user_id"]),
            "session_id": str(data["session_id"]),
            "channel_id": None if channel_id is None else str(channel_id),
        }
        if channel_id is None:
            if not p._leaving:  # disconnected from voice by someone else: the player ends
                asyncio.get_running_loop().create_task(p.disconnect(force=True))
            return
        channel = p.guild.get_channel(int(channel_id))
        if isinstance(channel, VocalGuildChannel):
            p.channel = channel
        await self._send("VOICE_STATE_UPDATE")

    async def server_update(self, data: dict[str, JSON]) -> None:
        endpoint = data.get("endpoint")
        self.server = {
            "guild_id": str(data["guild_id"]),
            "token": str(data["token"]),
            "endpoint": None if endpoint is None else str(endpoint),
        }
        await self._send("VOICE_SERVER_UPDATE")

    async def _send(self, kind: str) -> None:
        p = self.player
        node = p.node
        if node is None or node.socket is None or p.suspended or p._moving:
            self.held.append(kind)
            return
        try:
            await send(node, kind, self._payload(kind))
        except NodeUnavailable:
            self.held.append(kind)

    def _payload(self, kind: str) -> dict[str, JSON] | None:
        return self.state if kind == "VOICE_STATE_UPDATE" else self.server

    async def flush(self) -> None:
        """Send what was held back (once each, the latest payload), in the order received."""
        node = self.player.node
        kinds = list(dict.fromkeys(self.held))
        self.held.clear()
        if node is None:
            return
        for kind in kinds:
            await send(node, kind, self._payload(kind))

    async def join(self, node: Node, within: float) -> None:
        """Give a node the voice session (a failover): the voice state, then, once the node
        created the voice client, the voice server."""
        if self.state is None or self.server is None:
            raise NodeUnavailable("no voice session to move: the player never joined")
        self.held.clear()
        await send(node, "VOICE_STATE_UPDATE", self.state)
        await asyncio.wait_for(self.player._created.wait(), within)
        await send(node, "VOICE_SERVER_UPDATE", self.server)

    async def rejoin(self, node: Node) -> None:
        """Forward the voice server again: the node's voice connection closed for good (its
        session was taken), and the same credentials make it connect again."""
        with contextlib.suppress(NodeUnavailable):  # lost: the failover moves the session
            await send(node, "VOICE_SERVER_UPDATE", self.server)


async def send(node: Node, kind: str, payload: dict[str, JSON] | None) -> None:
    if payload is None:
        return
    if node.socket is None:
        raise NodeUnavailable(f"node {node.identifier} is not connected")
    await node.socket.send("DISCORD_EVENT", {"t": kind, "d": payload})
