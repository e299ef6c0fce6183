"""A music bot on audionode, written with discord.py 2.x and ``audionode.client``.

Commands (prefix ``!``): ``join``, ``play <query or URL>``, ``skip``, ``pause``, ``resume``,
``stop``, ``seek <seconds or m:ss>``, ``volume <0-500>`` (percent), ``nightcore`` / ``normal``
(filters), ``queue``, ``now``, ``leave``.

Run it (the bot needs the Message Content intent, enabled in Discord's developer portal)::

    pip install 'audionode[client]'
    export DISCORD_TOKEN=...                       # the bot's token
    export AUDIONODE_NODES=http://127.0.0.1:8000   # one or more nodes, comma-separated
    export AUDIONODE_PASSWORD=...                  # the nodes' `password`
    python examples/bot.py

The guide is docs/CLIENT.md.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import discord
from discord.ext import commands

from audionode.client import AudionodeClientError, Node, Player, Pool, Track

log = logging.getLogger("musicbot")


def parse_time(text: str) -> float:
    """``90``, ``1:30`` or ``1:02:03`` -> seconds."""
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "live"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class MusicBot(commands.Bot):
    def __init__(self, nodes: list[Node]) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(command_prefix="!", intents=intents)
        self.nodes = nodes

    async def setup_hook(self) -> None:
        # After login, before the gateway connects: the pool needs the bot's user id.
        await Pool.connect(client=self, nodes=self.nodes)
        await self.add_cog(Music(self))

    async def on_audionode_node_ready(self, node: Node) -> None:
        log.info("node %s ready", node.identifier)

    async def on_audionode_player_moved(self, player: Player, old: Node, new: Node) -> None:
        log.info("guild %s moved from node %s to %s", player.guild.id, old.identifier,
                 new.identifier)  # fmt: skip

    async def on_audionode_track_start(self, player: Player, track: Track) -> None:
        channel = self.get_channel(int(player.context.get("text_channel", 0)))
        if isinstance(channel, discord.TextChannel):
            await channel.send(f"Now playing: **{track.title}** ({clock(track.duration)})")

    async def on_audionode_track_exception(
        self, player: Player, track: Track, message: str
    ) -> None:
        channel = self.get_channel(int(player.context.get("text_channel", 0)))
        if isinstance(channel, discord.TextChannel):
            await channel.send(f"Could not play **{track.title}**: {message}")


class Music(commands.Cog):
    def __init__(self, bot: MusicBot) -> None:
        self.bot = bot

    async def cog_command_error(self, ctx: commands.Context[Any], error: Exception) -> None:
        cause = getattr(error, "original", error)
        if isinstance(cause, AudionodeClientError | commands.CommandError):
            await ctx.reply(str(cause))
        else:
            raise error

    async def player(self, ctx: commands.Context[MusicBot], *, join: bool = False) -> Player:
        """The guild's player; with ``join``, connect to the author's channel if needed."""
        if isinstance(ctx.voice_client, Player):
            return ctx.voice_client
        author = ctx.author
        if not join or not isinstance(author, discord.Member) or author.voice is None:
            raise commands.CommandError("Join a voice channel first.")
        channel = author.voice.channel
        if channel is None:
            raise commands.CommandError("Join a voice channel first.")
        player = await channel.connect(cls=Player)
        # The node keeps the context with the player (and a failover moves it along).
        await player.set_context({"text_channel": str(ctx.channel.id)})
        return player

    @commands.command()
    async def join(self, ctx: commands.Context[MusicBot]) -> None:
        player = await self.player(ctx, join=True)
        await ctx.reply(f"Joined {player.channel.mention}.")

    @commands.command()
    async def play(self, ctx: commands.Context[MusicBot], *, query: str) -> None:
        player = await self.player(ctx, join=True)
        track = await player.play(query)
        if player.current is None or player.current.tag != track.tag:
            await ctx.reply(f"Queued **{track.title}** (position {len(player.queue)}).")

    @commands.command()
    async def skip(self, ctx: commands.Context[MusicBot]) -> None:
        await (await self.player(ctx)).skip()

    @commands.command()
    async def pause(self, ctx: commands.Context[MusicBot]) -> None:
        await (await self.player(ctx)).pause()

    @commands.command()
    async def resume(self, ctx: commands.Context[MusicBot]) -> None:
        await (await self.player(ctx)).resume()

    @commands.command()
    async def stop(self, ctx: commands.Context[MusicBot]) -> None:
        player = await self.player(ctx)
        await player.clear()
        await player.stop()

    @commands.command()
    async def seek(self, ctx: commands.Context[MusicBot], position: str) -> None:
        await (await self.player(ctx)).seek(parse_time(position))

    @commands.command()
    async def volume(self, ctx: commands.Context[MusicBot], percent: int) -> None:
        await (await self.player(ctx)).set_volume(percent / 100)
        await ctx.reply(f"Volume {percent} %.")

    @commands.command()
    async def nightcore(self, ctx: commands.Context[MusicBot]) -> None:
        await (await self.player(ctx)).set_filters({"timescale": {"speed": 1.2, "pitch": 1.2}})

    @commands.command()
    async def normal(self, ctx: commands.Context[MusicBot]) -> None:
        await (await self.player(ctx)).set_filters(None)

    @commands.command()
    async def now(self, ctx: commands.Context[MusicBot]) -> None:
        player = await self.player(ctx)
        track = player.current
        if track is None:
            await ctx.reply("Nothing is playing.")
            return
        paused = " (paused)" if player.paused else ""
        node = player.node.identifier if player.node else "-"
        await ctx.reply(
            f"**{track.title}** {clock(player.position)} / {clock(track.duration)}{paused}"
            f" on node {node}"
        )

    @commands.command()
    async def queue(self, ctx: commands.Context[MusicBot]) -> None:
        player = await self.player(ctx)
        lines = [f"{i + 1}. {t.title} ({clock(t.duration)})" for i, t in enumerate(player.queue)]
        shown = "\n".join(lines[:10]) or "The queue is empty."
        more = f"\n... and {len(lines) - 10} more" if len(lines) > 10 else ""
        await ctx.reply(shown + more)

    @commands.command()
    async def leave(self, ctx: commands.Context[MusicBot]) -> None:
        await (await self.player(ctx)).disconnect()


def nodes_from_environment() -> list[Node]:
    password = os.environ["AUDIONODE_PASSWORD"]
    urls = os.environ.get("AUDIONODE_NODES", "http://127.0.0.1:8000").split(",")
    return [Node(url=url.strip(), password=password) for url in urls if url.strip()]


def main() -> None:
    bot = MusicBot(nodes_from_environment())
    bot.run(os.environ["DISCORD_TOKEN"], log_level=logging.INFO)


if __name__ == "__main__":
    main()
