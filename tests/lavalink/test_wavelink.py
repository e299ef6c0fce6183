"""wavelink 3 (PyPI ``wavelink``), unmodified, on discord.py 2.7.1, drives the node.

Only discord.py's gateway is stood in for: the bot is a real ``discord.Client`` that never logs
in; its guild's ``change_voice_state`` asks the voice server for a voice state over real LVSP
and hands the VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE to the player, as discord.py's
connection state does. wavelink's player, node, websocket and REST calls are its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import discord
import pytest
import wavelink

from audionode.protocol import lavaplayer_track as lp
from tests.conftest import PASSWORD, NodeFactory
from tests.lavalink.harness import BOT, Stage, dominant, rms, stage, stalling_server, until

pytestmark = pytest.mark.timeout(60)
_names = itertools.count(1)


class Bot(discord.Client):
    """A discord.py client that records what wavelink dispatches (``on_wavelink_*``)."""

    def __init__(self, st: Stage) -> None:
        super().__init__(intents=discord.Intents.none())
        self.st = st
        self.seen: list[tuple[str, tuple[Any, ...]]] = []
        self._connection.user = SimpleNamespace(id=BOT)  # type: ignore[assignment]
        self.voice_guild = Guild(self, st)

    def dispatch(self, event: str, /, *args: Any, **kwargs: Any) -> None:
        self.seen.append((event, args))
        super().dispatch(event, *args, **kwargs)

    def get_channel(self, id: int, /) -> Any:
        return self.voice_guild.channels.get(id)

    def of(self, event: str) -> list[Any]:
        return [args[0] for name, args in self.seen if name == f"wavelink_{event}"]

    async def wait(self, event: str, count: int = 1, within: float = 10.0) -> Any:
        await until(lambda: len(self.of(event)) >= count, within, event)
        return self.of(event)[count - 1]


class Guild:
    """What wavelink's player touches of a guild: ``change_voice_state`` answered like the
    gateway, later, with the two voice dispatches."""

    def __init__(self, bot: Bot, st: Stage) -> None:
        self.id = st.guild
        self.bot = bot
        self.st = st
        self.me = SimpleNamespace(voice=None)
        self.player: wavelink.Player | None = None
        self.channels = {st.channel: Channel(self, st.channel)}

    async def change_voice_state(
        self, *, channel: Any, self_mute: bool = False, self_deaf: bool = False
    ) -> None:
        asyncio.get_running_loop().create_task(self._answer(channel))

    async def _answer(self, channel: Any) -> None:
        assert self.player is not None
        if channel is None:
            state = {"guild_id": str(self.id), "user_id": str(BOT), "channel_id": None}
            await self.player.on_voice_state_update(state)  # type: ignore[arg-type]
            return
        grant = await self.st.grant(channel.id)
        state = {
            "guild_id": str(self.id),
            "channel_id": str(channel.id),
            "user_id": str(BOT),
            "session_id": grant.session_id,
            "deaf": False,
            "mute": False,
            "self_deaf": False,
            "self_mute": False,
        }
        await self.player.on_voice_state_update(state)  # type: ignore[arg-type]
        server = {"token": grant.token, "guild_id": str(self.id), "endpoint": grant.endpoint}
        await self.player.on_voice_server_update(server)  # type: ignore[arg-type]


class Channel:
    def __init__(self, guild: Guild, channel_id: int) -> None:
        self.id = channel_id
        self.guild = guild
        self.members: list[Any] = []
        self.name = f"voice-{channel_id}"


@contextlib.asynccontextmanager
async def bot(node_factory: NodeFactory, **config: Any) -> AsyncIterator[Bot]:
    async with stage(node_factory, **config) as st, aiohttp.ClientSession() as http:
        b = Bot(st)
        await b._async_setup_hook()
        host, port = st.host_port
        uri, name = f"http://{host}:{port}", f"an{next(_names)}"
        node = wavelink.Node(uri=uri, password=PASSWORD, identifier=name, session=http)
        await wavelink.Pool.connect(nodes=[node], client=b)
        try:
            await b.wait("node_ready")
            yield b
        finally:
            await node.close(eject=True)
            await b.close()


async def join(b: Bot) -> wavelink.Player:
    channel = b.voice_guild.channels[b.st.channel]
    player = wavelink.Player(b, channel)  # type: ignore[arg-type]
    b.voice_guild.player = player
    await player.connect(timeout=10, reconnect=False)
    return player


async def test_wavelink_plays_and_controls_a_track(node_factory: NodeFactory) -> None:
    async with bot(node_factory) as b:
        ready = b.of("node_ready")[0]
        assert ready.resumed is False and ready.session_id
        found = await wavelink.Playable.search("tone:440?seconds=30", source=None)
        assert isinstance(found, list) and len(found) == 1
        track = found[0]
        assert track.length == 30_000 and track.source == "tone" and track.is_seekable
        player = await join(b)
        assert player.connected
        await player.play(track, volume=100)
        start = await b.wait("track_start")
        assert start.track == track and start.player is player
        t0 = time.monotonic()
        await b.st.frames_after(t0, 50)
        loud = b.st.heard(t0)
        assert abs(dominant(loud) - 440) < 5

        await player.set_volume(50)
        t1 = time.monotonic() + 0.3
        await b.st.frames_after(t1, 40)
        assert 0.4 < rms(b.st.heard(t1)) / rms(loud) < 0.6, "volume 50 halves the level"

        await player.pause(True)
        await asyncio.sleep(0.3)
        before = len(b.st.bot_frames())
        await asyncio.sleep(0.6)
        assert len(b.st.bot_frames()) <= before + 1
        await player.pause(False)
        await b.st.frames_after(time.monotonic(), 20)

        filters = wavelink.Filters()
        filters.timescale.set(pitch=1.25)
        await player.set_filters(filters)
        t2 = time.monotonic() + 0.3
        await b.st.frames_after(t2, 40)
        assert abs(dominant(b.st.heard(t2)) - 550) < 8, "pitch 1.25 moves 440 Hz to 550 Hz"
        fetched = await player.node.fetch_player_info(b.st.guild)
        assert fetched is not None and fetched.filters.timescale.payload["pitch"] == 1.25
        assert fetched.volume == 50 and fetched.paused is False and fetched.state.connected

        stats = await b.wait("stats_update", len(b.of("stats_update")) + 1)
        assert stats.players == 1 and stats.playing == 1 and stats.frames is not None
        assert stats.frames.sent > 1000 and stats.frames.sent + stats.frames.nulled <= 3100

        await player.seek(28_000)
        await until(lambda: player.position >= 28_000, 5, "the position follows the seek")
        end = await b.wait("track_end", within=8)
        assert end.reason == "finished" and end.track == track

        other = (await wavelink.Playable.search("tone:660?seconds=30", source=None))[0]
        await player.play(track)
        await b.wait("track_start", 2)
        await player.play(other)  # replaces
        replaced = await b.wait("track_end", 2)
        assert replaced.reason == "replaced" and replaced.track == track
        await b.wait("track_start", 3)
        await player.skip(force=True)  # Lavalink's stop: encoded null
        stopped = await b.wait("track_end", 3)
        assert stopped.reason == "stopped" and stopped.track == other

        await player.disconnect()  # leaves the channel and destroys the player (DELETE)
        assert await b.voice_guild.player.node.fetch_player_info(b.st.guild) is None  # type: ignore[union-attr]


async def test_wavelink_sees_every_event_and_resumes(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    async with bot(node_factory) as b, stalling_server(tmp_path) as url:
        player = await join(b)
        # TrackStuckEvent: the stream stops coming while the player plays it
        await player.play((await wavelink.Playable.search(url, source=None))[0])
        await b.wait("track_start")
        stuck = await b.wait("track_stuck", within=8)
        assert stuck.threshold == 1000 and stuck.track.uri == url

        # TrackExceptionEvent: a track the client encoded itself is resolved again by the
        # node's sources, which refuse it (the tone source takes no 99999 Hz)
        forged = lp.encode(lp.LavaplayerTrack(
            title="forged", author="x", length=1000, identifier="tone:99999", is_stream=False,
            uri="tone:99999", source_name="tone",
        ))  # fmt: skip
        data = await player.node.send(path="v4/decodetrack", params={"encodedTrack": forged})
        await player.play(wavelink.Playable(data))
        failed = await b.wait("track_exception")
        assert failed.exception["severity"] == "common" and "24000" in failed.exception["message"]
        assert (await b.wait("track_end", 2)).reason == "loadFailed"

        # session resume: the socket drops, wavelink reconnects with its Session-Id
        track = (await wavelink.Playable.search("tone:440?seconds=30", source=None))[0]
        await player.play(track)
        await b.wait("track_start", 3)
        first = b.of("node_ready")[0]
        socket = player.node._websocket.socket  # type: ignore[union-attr]
        assert socket is not None
        t0 = time.monotonic()
        await socket.close()
        again = await b.wait("node_ready", 2)
        assert again.resumed is True and again.session_id == first.session_id
        await b.st.frames_after(t0, 60)
        assert abs(dominant(b.st.heard(t0)) - 440) < 5, "the player played on, untouched"
        info = await player.node.fetch_player_info(b.st.guild)
        assert info is not None and info.track is not None and info.track.title == track.title

        # WebSocketClosedEvent: moved away, the voice server closes the node's connection
        await b.st.grant(b.st.channel + 1)
        closed = await b.wait("websocket_closed")
        assert closed.code.value == 4014 and closed.by_remote is True
        # nobody hears the track any more: after `cleanup_threshold` it is cleaned up
        ended = await b.wait("track_end", 3, within=5)
        assert ended.reason == "cleanup" and ended.track == track
        await player.disconnect()
        await until(lambda: b.st.guild not in player.node.players, 5, "player destroyed")
