"""A player's commands as REST calls to its node (``docs/API.md``, "REST").

Every call waits until the player is on a live node (at most the pool's
``command_timeout``: a failover in progress finishes first), names the player with the four
headers, and, for a change of the queue, returns only once the node's ``QUEUE_EVENT`` s for it
have reached the mirror (a websocket barrier), so ``player.queue`` is current when the
command returns.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from audionode.client.errors import NodeUnavailable, ProtocolError
from audionode.client.tracks import Track

if TYPE_CHECKING:
    from audionode.client.node import Node
    from audionode.client.player import Player

JSON = Any


async def ready_node(p: Player) -> Node:
    """The player's node once commands may go out; :class:`NodeUnavailable` after
    ``command_timeout`` (no node took the player) or when the player left."""
    if p._leaving:
        raise NodeUnavailable("the player is disconnected")
    try:
        await asyncio.wait_for(p._ready.wait(), p.pool.command_timeout)
    except TimeoutError:
        raise NodeUnavailable(
            f"guild {p.guild.id}: no node took the player within {p.pool.command_timeout} s"
        ) from None
    if p.node is None:
        raise NodeUnavailable("the player has no node")
    return p.node


def headers(p: Player) -> dict[str, str]:
    return {
        "User-ID": str(p.pool.user_id),
        "Guild-ID": str(p.guild.id),
        "VoiceClient-ID": p.voice_client_id or "",
    }


async def call(p: Player, method: str, path: str, body: JSON = None, *, sync: bool) -> JSON:
    """One command; ``sync``: wait for its queue events to reach the mirror."""
    node = await ready_node(p)
    result = await node.rest(method, path, headers=headers(p), json=body)
    if sync:
        await barrier(node)
    return result


async def barrier(node: Node) -> None:
    if node.socket is not None:
        # the node is gone: the failover rebuilds the mirror
        with contextlib.suppress(TimeoutError, NodeUnavailable):
            await node.socket.barrier()


async def enqueue(p: Player, query: str | Track) -> list[Track]:
    """Queue a query's track(s), or a :class:`Track` (handed back by its token on the node
    that issued it, else loaded again by its ``uri``)."""
    node = await ready_node(p)
    if isinstance(query, Track) and query.encoded and query.node == node.identifier:
        ref: dict[str, JSON] = {"encoded": query.encoded, "context": query.context}
        if query.start_position:
            ref["start_position"] = query.start_position
        body = await node.rest("POST", "/putSource", headers=headers(p), json={"source": ref})
    else:
        text = query.uri if isinstance(query, Track) else query
        body = await node.rest("POST", "/loadSource", headers=headers(p), json={"query": text})
    tracks = tracks_of(body, node.identifier)
    await barrier(node)
    return tracks


def tracks_of(body: JSON, node: str) -> list[Track]:
    """The tracks of a ``{"source": <track or list>}`` answer."""
    source = body.get("source") if isinstance(body, dict) else None
    items = source if isinstance(source, list) else [source]
    if not items or items[0] is None:
        raise ProtocolError('expected {"source": <track or list>}')
    return [Track.from_wire(s, node) for s in items]
