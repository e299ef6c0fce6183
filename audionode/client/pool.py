"""The bot's nodes: where new players go, and what happens to players when a node is lost.

``pool = await Pool.connect(client=bot, nodes=[Node(url=..., password=...), ...])`` connects to
every node (each keeps reconnecting on its own). A new player goes to the available node with
the lowest load (:mod:`audionode.client.load`). When a node's socket drops, its players are
suspended for ``restart_grace`` seconds: a node that comes back within it still holding them
(its socket only dropped, or it restarted and restored its state) keeps them; otherwise they
move to the least-loaded other node (:mod:`audionode.client.failover`), or to the first node
that becomes available when none is. A node that comes back takes new players again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Coroutine, Iterable
from typing import TYPE_CHECKING, Any

import aiohttp
import discord

from audionode.client import failover, sync
from audionode.client.errors import AudionodeClientError, NoNodesAvailable
from audionode.client.node import Node

if TYPE_CHECKING:
    from audionode.client.player import Player

log = logging.getLogger(__name__)

MOVE_ATTEMPTS = 3
"""Tries to rebuild a player on an available node before waiting for a node to come back."""
MOVE_RETRY_DELAY = 1.0
RECLAIM_EVERY = 5.0
"""Seconds between two attempts to take a player's voice session back."""

_POOLS: weakref.WeakKeyDictionary[discord.Client, Pool] = weakref.WeakKeyDictionary()


class Pool:
    """The nodes of one bot. Build it with :meth:`connect` (in ``setup_hook``, after login).

    ``restart_grace``: seconds a lost node has to come back with its players before they move
    (0 moves them at once). ``command_timeout``: seconds a command waits for a player whose
    node was lost to be placed again before it raises :class:`NodeUnavailable`.
    """

    def __init__(
        self,
        client: discord.Client,
        nodes: Iterable[Node],
        *,
        restart_grace: float = 1.5,
        command_timeout: float = 15.0,
        user_id: int | None = None,
    ) -> None:
        self.client = client
        self.nodes = list(nodes)
        if not self.nodes:
            raise ValueError("a pool needs at least one node")
        if len({n.identifier for n in self.nodes}) != len(self.nodes):
            raise ValueError("node identifiers must be unique")
        self.restart_grace = restart_grace
        self.command_timeout = command_timeout
        self.user_id = user_id if user_id is not None else _user_id(client)
        self.http = aiohttp.ClientSession()
        self._graces: dict[Node, asyncio.TimerHandle] = {}
        self._stranded: list[Player] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def connect(
        cls,
        *,
        client: discord.Client,
        nodes: Iterable[Node],
        restart_grace: float = 1.5,
        command_timeout: float = 15.0,
    ) -> Pool:
        """Connect to every node; returns once each was tried. Nodes that cannot be reached
        yet keep trying in the background; a refused password raises
        :class:`~audionode.client.AuthenticationFailed`."""
        pool = cls(client, nodes, restart_grace=restart_grace, command_timeout=command_timeout)
        _POOLS[client] = pool
        first = [node.start(pool) for node in pool.nodes]
        results = await asyncio.gather(*first, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                await pool.close()
                raise result
        return pool

    @classmethod
    def of(cls, client: discord.Client) -> Pool:
        """The pool :meth:`connect` made for ``client``."""
        try:
            return _POOLS[client]
        except KeyError:
            raise RuntimeError("no audionode Pool for this client: call Pool.connect") from None

    async def close(self) -> None:
        """Disconnect from every node (players stay on the nodes until their vc_timeout)."""
        _POOLS.pop(self.client, None)
        for handle in self._graces.values():
            handle.cancel()
        for task in list(self._tasks):
            task.cancel()
        for node in self.nodes:
            await node.close()
        await self.http.close()

    # --- choosing nodes -------------------------------------------------------------------------

    def get_node(self, identifier: str) -> Node:
        for node in self.nodes:
            if node.identifier == identifier:
                return node
        raise KeyError(identifier)

    def best_node(self, exclude: Iterable[Node] = ()) -> Node:
        """The available node with the lowest load (the first given, on a tie)."""
        skip = set(exclude)
        ready = [n for n in self.nodes if n.available and n not in skip]
        if not ready:
            raise NoNodesAvailable("no audionode node is connected")
        return min(ready, key=lambda n: n.penalty)

    @property
    def players(self) -> list[Player]:
        return [p for node in self.nodes for p in node.players.values()]

    # --- a node comes and goes (called by Node) -------------------------------------------------

    def node_ready(self, node: Node, resumed: set[int] | None) -> None:
        handle = self._graces.pop(node, None)
        if handle is not None:
            handle.cancel()
        handled = []
        for player in list(node.players.values()):
            if not player.suspended or player._moving:
                continue
            handled.append(player)
            if resumed is not None and player.guild.id in resumed:
                self._spawn(sync.resume_in_place(player))
            else:  # the node came back without it (restarted, state lost): rebuild it
                self._move(player, exclude=())
        stranded, self._stranded = self._stranded, []
        for player in stranded:
            if player.suspended and not player._leaving and player not in handled:
                self._move(player, exclude=())
        self.client.dispatch("audionode_node_ready", node)

    def node_lost(self, node: Node) -> None:
        now = time.time()
        for player in node.players.values():
            if player._snapshot is None:  # a move in progress keeps the first one
                player._snapshot = failover.Snapshot.of(player)
            player._suspend(now)
        self.client.dispatch("audionode_node_lost", node)
        if not node.players:
            return
        if self.restart_grace <= 0:
            self._fail_over(node)
        else:
            loop = asyncio.get_running_loop()
            self._graces[node] = loop.call_later(self.restart_grace, self._fail_over, node)

    def _fail_over(self, node: Node) -> None:
        self._graces.pop(node, None)
        for player in list(node.players.values()):
            if player.suspended and not player._moving:
                self._move(player, exclude=(node,))

    def reclaim(self, player: Player) -> None:
        """Another connection took the player's voice session (4006): forward the bot's voice
        server to its node again, which reconnects with it and takes the session back (a node
        retries the credentials it has when they come again after its connection closed for
        good). At most once per :data:`RECLAIM_EVERY` seconds per player, so two clients
        never fight over a session.
        """
        node, now = player.node, time.monotonic()
        if node is None or now - player._reclaimed_at < RECLAIM_EVERY:
            return
        player._reclaimed_at = now
        log.warning("guild %s: the voice session was taken over; reconnecting it on node %s",
                    player.guild.id, node.identifier)  # fmt: skip
        self._spawn(player.voice.rejoin(node))

    def _move(self, player: Player, exclude: Iterable[Node], attempt: int = 0) -> None:
        if player._leaving:
            return
        try:
            target = self.best_node(exclude)
        except NoNodesAvailable:
            log.warning("guild %s: no node to move to; waiting for one", player.guild.id)
            self._stranded.append(player)
            return
        snap = player._snapshot or failover.Snapshot.of(player)
        self._spawn(self._restore(player, target, snap, attempt))

    async def _restore(
        self, player: Player, node: Node, snap: failover.Snapshot, attempt: int
    ) -> None:
        node.placed += 1
        try:
            await failover.restore(player, node, snap, self.command_timeout)
        except failover.Abandoned:
            await _destroy(node, player)
        except (TimeoutError, AudionodeClientError) as e:
            log.warning("guild %s: moving to node %s failed: %s", player.guild.id,
                        node.identifier, e)  # fmt: skip
            if player._leaving:
                await _destroy(node, player)
            elif not node.available:
                pass  # that node's own loss handling moves the player on
            elif attempt + 1 < MOVE_ATTEMPTS:
                await asyncio.sleep(MOVE_RETRY_DELAY)
                if player.suspended and not player._moving:
                    self._move(player, exclude=(), attempt=attempt + 1)
            else:
                log.error("guild %s: giving up moving the player until a node comes back",
                          player.guild.id)  # fmt: skip
                self._stranded.append(player)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("audionode pool task failed", exc_info=task.exception())


async def _destroy(node: Node, player: Player) -> None:
    """Leave no voice client behind for a player that is gone."""
    player._detach()
    sock, gid = node.socket, str(player.guild.id)
    if sock is not None:
        with contextlib.suppress(TimeoutError, AudionodeClientError):
            await sock.request("VC_DESTROY", {"guild_id": gid}, "VC_DESTROYED", gid, 5.0)


def _user_id(client: discord.Client) -> int:
    if client.user is None:
        raise RuntimeError(
            "the client has no user yet: call Pool.connect after login (e.g. in setup_hook)"
        )
    return client.user.id
