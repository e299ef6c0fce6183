"""The player: a ``discord.VoiceProtocol`` whose audio comes from an audionode node.

``player = await voice_channel.connect(cls=Player)`` joins the channel through discord.py's own
gateway (``Guild.change_voice_state``); discord.py hands the bot's voice state and voice server
to :meth:`Player.on_voice_state_update` / :meth:`Player.on_voice_server_update`, which forward
them to the node as ``DISCORD_EVENT`` s, and the node connects to voice itself. The commands
are the node's REST routes; :attr:`Player.queue`, :attr:`Player.current` and
:attr:`Player.position` mirror the node's state from its events. When the node is lost the
pool moves the player (``docs/CLIENT.md``, "Failover"); commands issued meanwhile wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord.channel import VocalGuildChannel

from audionode.client import commands, events, sync
from audionode.client.errors import NodeUnavailable, NoNodesAvailable, ProtocolError
from audionode.client.failover import Snapshot
from audionode.client.pool import Pool
from audionode.client.queue import Queue
from audionode.client.tracks import Filters, Playhead, Track
from audionode.client.voice import VoiceForwarder

if TYPE_CHECKING:
    from audionode.client.node import Node

log = logging.getLogger(__name__)
JSON = Any
Repeat = Literal["off", "track", "queue"]


class Player(discord.VoiceProtocol):
    """A guild's audio, played by a node of the pool.

    Connect with ``await channel.connect(cls=Player)``. The pool is the one
    :meth:`Pool.connect <audionode.client.Pool.connect>` made for the client; to pin the player
    to a node, ``cls=functools.partial(Player, node=pool.get_node("eu-1"))``.
    """

    channel: VocalGuildChannel

    def __init__(
        self,
        client: discord.Client,
        channel: discord.abc.Connectable,
        *,
        node: Node | None = None,
        pool: Pool | None = None,
    ) -> None:
        super().__init__(client, channel)
        self.pool: Pool = pool if pool is not None else Pool.of(client)
        self.node: Node | None = node
        """The node playing this guild (another one after a failover)."""
        self.queue = Queue()
        """The tracks waiting to play, mirrored live from the node."""
        self.current: Track | None = None
        """The track playing (or paused) now."""
        self.voice = VoiceForwarder(self)
        self.voice_client_id: str | None = None
        self.options: dict[str, JSON] = {}
        """The options the node last reported (``volume``, ``crossfade``, ``filter``...)."""
        self.repeat: Repeat = "off"
        self.context: dict[str, JSON] = {}
        self._playhead: Playhead | None = None
        self._paused = False
        self._ready = asyncio.Event()
        """Set while the player is on a live node and commands may go out."""
        self._created = asyncio.Event()
        self._connected = asyncio.Event()
        self._suspended_at: float | None = None
        self._snapshot: Snapshot | None = None
        """What the player knew when its node was lost (until it resumed or moved)."""
        self._moving = False
        self._leaving = False
        self._reclaimed_at = float("-inf")
        self._quiet_start: str | None = None
        """A track's uri whose next SOURCE_START is a failover's restart, not news."""

    def __repr__(self) -> str:
        node = None if self.node is None else self.node.identifier
        return f"<Player guild={self.guild.id} node={node} current={self.current!r}>"

    # --- state ----------------------------------------------------------------------------------

    @property
    def guild(self) -> discord.Guild:
        return self.channel.guild

    @property
    def position(self) -> float:
        """Seconds into the current track, extrapolated from the node's last report (0 when
        nothing plays); frozen while paused or while the player moves to another node."""
        if self.current is None or self._playhead is None:
            return 0.0
        now = time.time() if self._suspended_at is None else self._suspended_at
        return self._playhead.at(now, self.current.duration)

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def volume(self) -> float:
        return float(self.options.get("volume", 1.0))

    @property
    def filters(self) -> Filters:
        """The filters the node reports as set (unset ones left out)."""
        value = self.options.get("filter")
        if not isinstance(value, dict):
            return {}
        return {k: v for k, v in value.items() if v not in (None, [], {})}  # type: ignore[return-value]

    @property
    def connected(self) -> bool:
        """True while the node's voice connection for this guild is up."""
        return self._connected.is_set() and self._ready.is_set()

    # --- discord.VoiceProtocol ------------------------------------------------------------------

    async def connect(
        self,
        *,
        timeout: float,  # noqa: ASYNC109  (discord.VoiceProtocol's signature)
        reconnect: bool,
        self_deaf: bool = False,
        self_mute: bool = False,
    ) -> None:
        """Called by discord.py's ``channel.connect(cls=Player)``: pick a node, ask Discord for
        the voice state, wait until the node's voice connection is up.

        :class:`NoNodesAvailable` when no node is connected (or the node given is not);
        discord.py's ``TimeoutError`` when the node's voice connection is not up in time.
        """
        try:
            node = self._choose_node()
            self._attach(node)
            await self.guild.change_voice_state(
                channel=self.channel, self_mute=self_mute, self_deaf=self_deaf
            )
        except Exception:
            # discord.py cleans up after a timeout only: anything else is ours to undo
            self._detach()
            self.cleanup()
            raise
        await asyncio.wait_for(self._connected.wait(), timeout)

    def _choose_node(self) -> Node:
        if self.node is None:
            node = self.pool.best_node()
        elif not self.node.available:
            raise NoNodesAvailable(f"node {self.node.identifier} is not connected")
        else:
            node = self.node
        node.placed += 1
        return node

    async def on_voice_state_update(self, data: Any, /) -> None:
        await self.voice.state_update(data)

    async def on_voice_server_update(self, data: Any, /) -> None:
        await self.voice.server_update(data)

    async def disconnect(self, *, force: bool = False) -> None:
        """Destroy the player on its node and leave the voice channel."""
        if self._leaving:
            return
        self._leaving = True
        node = self.node
        if node is not None and node.socket is not None and self.voice_client_id is not None:
            gid = str(self.guild.id)
            try:
                await node.socket.request("VC_DESTROY", {"guild_id": gid}, "VC_DESTROYED", gid, 5)
            except (TimeoutError, NodeUnavailable) as e:
                log.info("guild %s: VC_DESTROY not confirmed: %s", gid, e)
        self._detach()
        self._ready.clear()
        await self.guild.change_voice_state(channel=None)
        self.cleanup()

    async def move_to(self, channel: discord.abc.Snowflake | None) -> None:
        """Move the bot to another voice channel of the guild (the node follows)."""
        await self.guild.change_voice_state(channel=channel)

    # --- node membership (the pool and the failover call these) ---------------------------------

    def _attach(self, node: Node) -> None:
        if self.node is not None and self.node is not node:
            self.node.players.pop(self.guild.id, None)
        self.node = node
        node.players[self.guild.id] = self
        self.queue.replace([], node.identifier)
        self.voice_client_id = None
        self._created.clear()
        self._connected.clear()

    def _detach(self) -> None:
        if self.node is not None and self.node.players.get(self.guild.id) is self:
            del self.node.players[self.guild.id]

    def _suspend(self, now: float) -> None:
        """The node was lost: freeze what the player knows until it resumes or moves."""
        self._ready.clear()
        self._connected.clear()
        self._suspended_at = now

    def _unsuspend(self) -> None:
        self._suspended_at = None
        self._ready.set()

    @property
    def suspended(self) -> bool:
        return self._suspended_at is not None

    # --- events from the node -------------------------------------------------------------------

    def _on_node_event(self, node: Node, op: str, d: dict[str, JSON]) -> None:
        if node is not self.node:
            return
        handler = events.HANDLERS.get(op)
        if handler is None:
            return
        try:
            handler(self, d)
        except (ProtocolError, KeyError, TypeError, ValueError) as e:
            log.warning("guild %s: %s: %s", self.guild.id, op, e)
            self._schedule_resync()

    def _schedule_resync(self) -> None:
        asyncio.get_running_loop().create_task(sync.resync(self))

    # --- commands -------------------------------------------------------------------------------

    async def play(self, query: str | Track) -> Track:
        """Queue a track (a query, a URL, or a :class:`Track` from a search); it starts at once
        when nothing plays. A playlist queues every track and returns the first."""
        return (await commands.enqueue(self, query))[0]

    async def skip(self, count: int = 1) -> None:
        """End the current track (and ``count - 1`` queued ones); the next one starts."""
        await self._command("POST", "/skip", {"offset": count}, sync=True)

    async def stop(self) -> None:
        """End the current track; the queue stays (``resume()`` starts it again)."""
        await self._command("POST", "/stop", sync=True)

    async def pause(self) -> None:
        await self._command("POST", "/pause")
        self._set_paused(True)

    async def resume(self) -> None:
        await self._command("POST", "/resume")
        self._set_paused(False)

    async def seek(self, seconds: float) -> None:
        """Jump to ``seconds`` from the start of the current track."""
        await self._command("POST", "/seek", {"offset": float(seconds)})
        if self._playhead is not None:
            self._playhead = Playhead(float(seconds), time.time(), self._paused)

    async def set_volume(self, volume: float) -> None:
        """0.0-5.0 (1.0 = unchanged); heard within 100 ms."""
        await self.set_options(volume=float(volume))

    async def set_filters(self, filters: Filters | None = None) -> None:
        """Replace the filters (``None`` or ``{}`` removes them all)."""
        await self.set_options(filter=dict(filters or {}))

    async def set_options(self, **options: JSON) -> None:
        """Set any of the node's options: ``volume``, ``crossfade`` (seconds), ``filter``."""
        self.options = await self._command("POST", "/options", options)

    async def set_repeat(self, mode: Repeat) -> None:
        self.repeat = (await self._command("POST", "/repeat", {"mode": mode}))["mode"]

    async def set_context(self, context: dict[str, JSON]) -> None:
        """Free JSON kept with the player on the node (and moved with it)."""
        self.context = await self._command("POST", "/context", {"context": context})

    async def remove(self, track: Track | int) -> Track:
        """Remove a queued track (a :class:`Track` of :attr:`queue`, or its index)."""
        key = track if isinstance(track, int) else track.tag
        body = await self._command("DELETE", f"/queue/{key}", sync=True)
        return Track.from_wire(body["removed"], self.queue.node)

    async def move(self, track: Track | int, index: int) -> None:
        """Move a queued track to ``index``."""
        key = track if isinstance(track, int) else track.tag
        await self._command("POST", f"/queue/{key}", {"index": index}, sync=True)

    async def shuffle(self) -> None:
        await self._command("POST", "/shuffle", sync=True)

    async def clear(self) -> None:
        """Empty the queue (the current track plays on)."""
        await self._command("POST", "/clear", sync=True)

    async def _command(
        self, method: str, path: str, body: JSON = None, *, sync: bool = False
    ) -> JSON:
        return await commands.call(self, method, path, body, sync=sync)

    def _set_paused(self, paused: bool) -> None:
        if self._playhead is not None and paused != self._paused:
            now = time.time()
            self._playhead = Playhead(self._playhead.at(now), now, paused)
        self._paused = paused
