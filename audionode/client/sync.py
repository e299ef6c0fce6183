"""Reading a player's whole state from its node again.

Used when the mirror cannot follow an event (it missed one) and when a node that was lost
comes back with the player still on it (its socket dropped, or it restarted and restored its
state): ``getState`` and ``getQueue`` over the websocket, whose replies come after every event
the node sent before them, so what they say is current.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from audionode.client.errors import AudionodeClientError
from audionode.client.tracks import current_from_wire

if TYPE_CHECKING:
    from audionode.client.node import Node
    from audionode.client.player import Player

log = logging.getLogger(__name__)
JSON = Any


async def resync(p: Player) -> bool:
    """Replace the mirror (queue, current track, position, options) with the node's state;
    False when the node could not be asked."""
    node = p.node
    if node is None or node.socket is None:
        return False
    gid = str(p.guild.id)
    try:
        state = await node.socket.request("getState", {"guild_id": gid}, "getState", gid)
        queue = await node.socket.request("getQueue", {"guild_id": gid}, "getQueue", gid)
        apply_state(p, node, state)
        p.queue.replace(queue["entries"], node.identifier)
    except (TimeoutError, AudionodeClientError, KeyError, TypeError, ValueError) as e:
        log.warning("guild %s: cannot read the player's state: %s", p.guild.id, e)
        return False
    return True


def apply_state(p: Player, node: Node, state: dict[str, JSON]) -> None:
    """Take a ``getState`` reply as the player's state."""
    p.voice_client_id = str(state["id"])
    p._paused = state.get("state_name") == "PAUSED"
    if state.get("state_name") == "DISCONNECTED":
        p._connected.clear()
    else:
        p._connected.set()
    current = state.get("current")
    if current is None:
        p.current, p._playhead = None, None
    else:
        p.current, p._playhead = current_from_wire(current, node.identifier, p._paused)
    if isinstance(state.get("options"), dict):
        p.options = state["options"]
    if state.get("repeat") in ("off", "track", "queue"):
        p.repeat = state["repeat"]
    if isinstance(state.get("context"), dict):
        p.context = state["context"]


async def resume_in_place(p: Player) -> None:
    """The player's node came back still holding it: catch up, then take commands again."""
    await resync(p)
    p._snapshot = None
    p._unsuspend()
    await p.voice.flush()
    log.info("guild %s: resumed on node %s", p.guild.id, p.node and p.node.identifier)
