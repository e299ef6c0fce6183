"""One bot, one voice server with a listener in the bot's channel, and nodes: the stage of the
client tests. Everything is real and on loopback; see ``harness.py`` for discord.py's side."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import discord

from audionode.client import Node, Player, Pool, Track
from tests.client.harness import BOT, Bot, discord_bot
from tests.client.hearing import write_sweep
from tests.client.nodeproc import NodeProcess, node_process
from tests.conftest import PASSWORD, NodeFactory, NodeHarness
from tests.transport.listener import Listener
from tests.transport.voiceserver_harness import Harness, voice_server

SOURCES: dict[str, Any] = {"plugins": ["tone"]}


def sources(folder: Path) -> dict[str, Any]:
    """The tone plugin, and local files under ``folder``."""
    return {"plugins": ["tone"], "local": {"enabled": True, "roots": [str(folder)]}}


EVENTS = ("audionode_track_start", "audionode_track_end", "audionode_track_exception",
          "audionode_node_ready", "audionode_node_lost", "audionode_player_moved",
          "audionode_player_error")  # fmt: skip


class Events:
    """Every audionode event the bot receives, through discord.py's own listener mechanism."""

    def __init__(self, bot: Bot) -> None:
        self.seen: list[tuple[float, str, tuple[Any, ...]]] = []
        self._changed = asyncio.Event()
        for name in EVENTS:
            bot.client.add_listener(self._listener(name), f"on_{name}")

    def _listener(self, name: str) -> Callable[..., Any]:
        async def record(*args: Any) -> None:
            self.seen.append((asyncio.get_running_loop().time(), name, args))
            self._changed.set()
            self._changed = asyncio.Event()

        return record

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for _, n, args in self.seen if n == name]

    async def wait(
        self, name: str, match: Callable[..., bool] = lambda *a: True, within: float = 10.0
    ) -> tuple[Any, ...]:
        async with asyncio.timeout(within):
            while True:
                for _, n, args in self.seen:
                    if n == name and match(*args):
                        return args
                await self._changed.wait()


async def listen(vs: Harness, channel: discord.VoiceChannel, user_id: int = 9001) -> Listener:
    """A second member of ``channel`` that records everything it receives."""
    grant = await vs.lvsp.grant(user_id, channel.id, channel.guild.id)
    listener = Listener(
        vs.endpoint, channel.guild.id, user_id, channel.id, grant.session_id, grant.token
    )
    await listener.connect(vs.http)
    return listener


def player_headers(player: Player) -> dict[str, str]:
    return {
        "Authorization": PASSWORD,
        "User-ID": str(BOT),
        "Guild-ID": str(player.guild.id),
        "VoiceClient-ID": player.voice_client_id or "",
    }


async def node_get(http: aiohttp.ClientSession, url: str, player: Player, path: str) -> Any:
    """A player route's answer, straight from the node at ``url``."""
    async with http.get(f"{url}{path}", headers=player_headers(player)) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def node_queue(http: aiohttp.ClientSession, url: str, player: Player) -> list[Track]:
    """``GET /queue`` of the player, straight from its node."""
    body = await node_get(http, url, player, "/queue")
    return [Track.from_wire(e) for e in body["entries"]]


async def crowd(node: NodeHarness, players: int) -> None:
    """Another bot's idle voice clients on ``node`` (voice states only, no voice connection)."""
    async with node.ws() as ws:
        await ws.identify(999)
        for g in range(players):
            vsu = {"guild_id": str(100 + g), "user_id": "999", "channel_id": "5",
                   "session_id": "s"}  # fmt: skip
            await ws.send("DISCORD_EVENT", {"t": "VOICE_STATE_UPDATE", "d": vsu})
        created = 0
        while created < players:
            created += (await ws.recv())["op"] == "VC_CREATED"
        assert (await node.get("/status"))[1]["players"] >= players


@dataclass
class Stage:
    node: NodeHarness
    bot: Bot
    pool: Pool
    events: Events
    listener: Listener

    async def mirror_matches(self, player: Player) -> list[Track]:
        """The mirror equals ``GET /queue`` (tokens aside: every listing re-signs them)."""
        listing = await node_queue(self.node.http, self.node.url, player)
        assert list(player.queue) == listing
        return listing


@contextlib.asynccontextmanager
async def stage(node_factory: NodeFactory) -> AsyncIterator[Stage]:
    """A node (tone plugin), the voice server with a listener in the bot's channel, the bot and
    its pool of that one node."""
    async with (
        voice_server() as vs,
        node_factory(sources=SOURCES) as node,
        discord_bot(vs.lvsp) as bot,
    ):
        listener = await listen(vs, bot.channel())
        events = Events(bot)
        pool = await Pool.connect(
            client=bot.client, nodes=[Node(url=node.url, password=PASSWORD, identifier="n1")]
        )
        try:
            yield Stage(node, bot, pool, events, listener)
        finally:
            await pool.close()
            await listener.close()


@dataclass
class ProcessStage:
    """Node A in a process of its own (to kill), maybe node B in this one; the rest as
    :class:`Stage`. ``sweep`` is a 20 s sweep (``hearing.write_sweep``) the nodes can play."""

    vs: Harness
    proc: NodeProcess
    b: NodeHarness | None
    bot: Bot
    pool: Pool
    events: Events
    listener: Listener
    a_node: Node
    b_node: Node
    sweep: Path


@contextlib.asynccontextmanager
async def process_stage(
    folder: Path, grace: float, node_factory: NodeFactory | None = None, **config: Any
) -> AsyncIterator[ProcessStage]:
    """Node A (``python -m audionode run`` with ``config``, state file ``folder/node-a.db``) and,
    given ``node_factory``, node B; both play local files under ``folder``. The pool has
    ``restart_grace=grace``; ``b_node`` is ``a_node`` when there is no B."""
    sweep = write_sweep(folder / "sweep.wav", 20.0)
    async with contextlib.AsyncExitStack() as stack:
        enter = stack.enter_async_context
        vs = await enter(voice_server())
        proc = await enter(node_process(folder, "a", sources=sources(folder), **config))
        b = None if node_factory is None else await enter(node_factory(sources=sources(folder)))
        bot = await enter(discord_bot(vs.lvsp))
        listener = await listen(vs, bot.channel())
        stack.push_async_callback(listener.close)
        events = Events(bot)
        a_node = Node(url=proc.url, password=PASSWORD, identifier="a")
        b_node = a_node if b is None else Node(url=b.url, password=PASSWORD, identifier="b")
        nodes = list(dict.fromkeys((a_node, b_node)))
        pool = await Pool.connect(client=bot.client, nodes=nodes, restart_grace=grace)
        stack.push_async_callback(pool.close)
        yield ProcessStage(vs, proc, b, bot, pool, events, listener, a_node, b_node, sweep)
