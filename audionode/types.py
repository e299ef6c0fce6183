"""Typed identifiers shared across the package.

Discord snowflakes arrive as strings on the wire; inside the node they are ints so that
they compare and hash cheaply and convert to DAVE's u64 ids without parsing again.
"""

from __future__ import annotations

from typing import NewType

GuildId = NewType("GuildId", int)
UserId = NewType("UserId", int)
ChannelId = NewType("ChannelId", int)
Ssrc = NewType("Ssrc", int)
SessionKey = NewType("SessionKey", str)
"""A bot session's key on the control websocket: ``"<user_id>"`` or ``"<user_id>-<shard_id>"``."""

JSON = dict[str, "JSONValue"] | list["JSONValue"] | str | int | float | bool | None
JSONValue = JSON
