"""A real discord.py 2.7.1 ``Client`` whose main gateway is played by the built-in voice server.

The client is discord.py's own, never logged in: its ``ConnectionState`` holds a guild (from a
GUILD_CREATE fed to its parser) with voice channels and the bot as a member. ``client.ws`` is
the one stand-in: discord.py's ``Guild.change_voice_state`` calls ``ws.voice_state(...)`` (op 4),
and :class:`Gateway` answers as Discord would, through the voice server's LVSP (as Litecord
does): it asks for a voice state and feeds the VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE
dispatches to discord.py's parsers, which hand them to the connected ``VoiceProtocol`` (our
``Player``) exactly as a live gateway's dispatches would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import discord
from discord.ext import commands

from audionode.voiceserver.lvsp_client import LvspClient

BOT = 4242
_ids = itertools.count(1)


def _user(user_id: int) -> dict[str, Any]:
    return {"id": str(user_id), "username": f"u{user_id}", "discriminator": "0",
            "avatar": None, "bot": True}  # fmt: skip


def _voice_channel(channel_id: int, position: int) -> dict[str, Any]:
    return {"id": str(channel_id), "type": 2, "name": f"voice-{channel_id}",
            "position": position, "bitrate": 64000, "user_limit": 0,
            "permission_overwrites": []}  # fmt: skip


def guild_create(guild_id: int, channel_ids: list[int], user_id: int) -> dict[str, Any]:
    """A GUILD_CREATE payload: the guild, its voice channels, and the bot as a member."""
    everyone = {"id": str(guild_id), "name": "@everyone", "permissions": "0", "position": 0,
                "color": 0, "hoist": False, "managed": False, "mentionable": False}  # fmt: skip
    channels = [_voice_channel(c, i) for i, c in enumerate(channel_ids)]
    member = {"user": _user(user_id), "roles": [], "joined_at": "2024-01-01T00:00:00+00:00",
              "deaf": False, "mute": False, "flags": 0}  # fmt: skip
    return {"id": str(guild_id), "name": f"guild-{guild_id}", "owner_id": "1", "roles": [everyone],
            "channels": channels, "members": [member], "voice_states": [], "member_count": 1,
            "features": [], "emojis": [], "stickers": []}  # fmt: skip


@dataclass
class Gateway:
    """discord.py's ``client.ws`` as far as voice goes: op 4 in, voice dispatches out."""

    client: discord.Client
    lvsp: LvspClient
    requests: list[tuple[int, int | None]] = field(default_factory=list)
    sessions: dict[int, str] = field(default_factory=dict)
    open: bool = False  # discord.py's Client.close() looks at it

    async def voice_state(
        self, guild_id: int, channel_id: int | None, self_mute: bool = False,
        self_deaf: bool = False,
    ) -> None:  # fmt: skip
        self.requests.append((guild_id, channel_id))
        # Like the real gateway: the answer comes later, as dispatches.
        asyncio.get_running_loop().create_task(self._answer(guild_id, channel_id))

    async def _answer(self, guild_id: int, channel_id: int | None) -> None:
        parsers = self.client._connection.parsers
        user_id = BOT if self.client.user is None else self.client.user.id
        if channel_id is None:
            info = {"user_id": str(user_id), "channel_id": None, "guild_id": str(guild_id)}
            await self.lvsp.send(6, {"type": 1, "info": info})
            parsers["VOICE_STATE_UPDATE"](self._state(guild_id, None, user_id))
            return
        grant = await self.lvsp.grant(user_id, channel_id, guild_id)
        self.sessions[guild_id] = grant.session_id
        parsers["VOICE_STATE_UPDATE"](self._state(guild_id, channel_id, user_id))
        parsers["VOICE_SERVER_UPDATE"](
            {"token": grant.token, "guild_id": str(guild_id), "endpoint": grant.endpoint}
        )

    def _state(self, guild_id: int, channel_id: int | None, user_id: int) -> dict[str, Any]:
        return {"guild_id": str(guild_id), "user_id": str(user_id),
                "channel_id": None if channel_id is None else str(channel_id),
                "session_id": self.sessions.get(guild_id, ""), "deaf": False, "mute": False,
                "self_deaf": False, "self_mute": False, "suppress": False,
                "self_video": False, "request_to_speak_timestamp": None}  # fmt: skip


@dataclass
class Bot:
    client: commands.Bot
    gateway: Gateway
    guilds: list[discord.Guild]

    def channel(self, guild_index: int = 0, index: int = 0) -> discord.VoiceChannel:
        channel = self.guilds[guild_index].voice_channels[index]
        return channel

    def add_guild(self, channels: int = 1) -> discord.Guild:
        guild_id = 7000 + next(_ids)
        ids = [8000 + next(_ids) for _ in range(channels)]
        self.client._connection.parse_guild_create(guild_create(guild_id, ids, BOT))  # type: ignore[arg-type]
        guild = self.client.get_guild(guild_id)
        assert guild is not None
        self.guilds.append(guild)
        return guild


@contextlib.asynccontextmanager
async def discord_bot(lvsp: LvspClient, guilds: int = 1) -> AsyncIterator[Bot]:
    """A discord.py bot (not logged in) with ``guilds`` guilds of one voice channel each."""
    client = commands.Bot(command_prefix="!", intents=discord.Intents.default())
    async with client:
        state = client._connection
        state.user = discord.ClientUser(state=state, data=_user(BOT))  # type: ignore[arg-type]
        gateway = Gateway(client, lvsp)
        client.ws = gateway  # type: ignore[assignment]
        bot = Bot(client, gateway, [])
        for _ in range(guilds):
            bot.add_guild()
        yield bot
