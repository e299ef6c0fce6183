"""One player per guild: its voice credentials today; queue and playback join later.

The player is control-plane state. It never touches a socket: the voice connection and the
media belong to the engine, which the player drives through typed messages.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from audionode.player.state import PlayerState
from audionode.protocol.discodo import snowflake
from audionode.types import ChannelId, GuildId


@dataclass(slots=True)
class VoiceCredentials:
    """What the bot forwarded from its gateway: VOICE_STATE_UPDATE + VOICE_SERVER_UPDATE."""

    session_id: str | None = None
    channel_id: ChannelId | None = None
    token: str | None = None
    endpoint: str | None = None

    @property
    def complete(self) -> bool:
        """True when a voice connection can be attempted (discord-voice.md §1.2)."""
        return bool(self.session_id and self.channel_id and self.token and self.endpoint)


@dataclass(slots=True)
class GuildPlayer:
    """A guild's voice client as the bot sees it (Discodo's ``DiscordVoiceClient``)."""

    guild_id: GuildId
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    voice: VoiceCredentials = field(default_factory=VoiceCredentials)
    state: PlayerState = PlayerState.DISCONNECTED
    volume: float = 1.0
    crossfade: float = 0.0
    filters: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The ``getState`` reply (discodo-reference.md §2.3), plus the voice credentials'
        presence (never the token itself)."""
        return {
            "id": self.id,
            "guild_id": snowflake(self.guild_id),
            "channel_id": snowflake(self.voice.channel_id),
            "state": int(self.state),
            "state_name": self.state.name,
            "current": None,
            "duration": None,
            "position": None,
            "remain": None,
            "remainQueue": 0,
            "options": {
                "autoplay": False,
                "volume": self.volume,
                "crossfade": self.crossfade,
                "filter": self.filters,
            },
            "context": self.context,
            "voice": {
                "session_id": self.voice.session_id,
                "endpoint": self.voice.endpoint,
                "has_token": self.voice.token is not None,
            },
        }

    def describe_queue(self) -> dict[str, Any]:
        """The ``getQueue`` reply."""
        return {"guild_id": snowflake(self.guild_id), "entries": []}
