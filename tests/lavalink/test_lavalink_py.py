"""lavalink.py 5 (PyPI ``lavalink``), unmodified, drives the node as it drives Lavalink.

The bot's voice events come from the built-in voice server and are handed to lavalink.py's
``voice_update_handler`` as a discord library hands them the gateway's dispatches; a listener in
the channel decodes what the node sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import lavalink
import pytest

from tests.conftest import PASSWORD, NodeFactory
from tests.lavalink.harness import BOT, Stage, dominant, rms, stage, stalling_server, until

pytestmark = pytest.mark.timeout(60)


class Bot:
    """lavalink.py's client plus every event it dispatched, in order."""

    def __init__(self, st: Stage) -> None:
        self.st = st
        self.client: lavalink.Client[lavalink.DefaultPlayer] = lavalink.Client(BOT)
        self.events: list[Any] = []
        self.client.add_event_hook(self._record)
        host, port = st.host_port
        self.node = self.client.add_node(host, port, PASSWORD, "eu", "audionode")

    async def _record(self, event: Any) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait(self, kind: type[Any], count: int = 1, within: float = 10.0) -> Any:
        await until(lambda: len(self.of(kind)) >= count, within, kind.__name__)
        return self.of(kind)[count - 1]

    async def join(self) -> lavalink.DefaultPlayer:
        """Create the player and deliver the two voice dispatches, as a gateway would."""
        player = self.client.player_manager.create(self.st.guild)
        grant = await self.st.grant()
        state = {
            "guild_id": str(self.st.guild),
            "user_id": str(BOT),
            "channel_id": str(self.st.channel),
            "session_id": grant.session_id,
        }
        await self.client.voice_update_handler({"t": "VOICE_STATE_UPDATE", "d": state})
        server = {"guild_id": str(self.st.guild), "token": grant.token, "endpoint": grant.endpoint}
        await self.client.voice_update_handler({"t": "VOICE_SERVER_UPDATE", "d": server})
        return player

    async def load(self, query: str) -> lavalink.AudioTrack:
        result = await self.client.get_tracks(query)
        assert result.load_type == lavalink.LoadType.TRACK, result
        return result.tracks[0]


@contextlib.asynccontextmanager
async def bot(node_factory: NodeFactory, **lavalink_config: Any) -> AsyncIterator[Bot]:
    async with stage(node_factory, **lavalink_config) as st:
        b = Bot(st)
        try:
            await b.wait(lavalink.NodeReadyEvent)
            yield b
        finally:
            await b.client.close()


async def test_play_volume_pause_seek_filters_stop_destroy(node_factory: NodeFactory) -> None:
    async with bot(node_factory) as b:
        ready = b.of(lavalink.NodeReadyEvent)[0]
        assert ready.resumed is False and ready.session_id
        track = await b.load("tone:440?seconds=30")
        assert track.title.startswith("Tone 440") and track.duration == 30_000
        assert track.source_name == "tone" and track.is_seekable and not track.stream
        player = await b.join()
        await player.play(track)
        start = await b.wait(lavalink.TrackStartEvent)
        assert start.track.identifier == track.identifier
        t0 = time.monotonic()
        await b.st.frames_after(t0, 50)
        loud = b.st.heard(t0)
        assert abs(dominant(loud) - 440) < 5, "the tone is heard at the listener"

        await player.set_volume(25)
        t1 = time.monotonic() + 0.3  # the change reaches the ear within 100 ms; margin for load
        await b.st.frames_after(t1, 40)
        quiet = b.st.heard(t1)
        assert 0.15 < rms(quiet) / rms(loud) < 0.35, "volume 25 is a quarter of the level"

        await player.set_pause(True)
        await asyncio.sleep(0.3)
        paused_at = len(b.st.bot_frames())
        await asyncio.sleep(0.6)
        assert len(b.st.bot_frames()) <= paused_at + 1, "nothing is sent while paused"
        await player.set_pause(False)
        await b.st.frames_after(time.monotonic(), 20)

        asked = time.monotonic()
        await player.set_filters(lavalink.Timescale(pitch=1.5))
        t2 = time.monotonic() + 0.3
        await b.st.frames_after(t2, 40)
        assert abs(dominant(b.st.heard(t2)) - 660) < 8, "pitch 1.5 moves 440 Hz to 660 Hz"
        heard = b.st.first_heard(asked, 660)
        assert heard is not None and heard - asked < 0.25, "applied within 100 ms (+ load)"

        stats = b.node.stats  # the stats op, parsed by lavalink.py
        assert not stats.is_fake and stats.players == 1 and stats.playing_players == 1
        assert 1000 < stats.frames_sent <= 3100, "the engine's counters (a pause was in the minute)"

        await player.seek(27_000)
        update = await b.wait(lavalink.PlayerUpdateEvent, len(b.of(lavalink.PlayerUpdateEvent)) + 1)
        assert update.position >= 26_900
        end = await b.wait(lavalink.TrackEndEvent, within=8)
        assert end.reason == lavalink.EndReason.FINISHED, "three seconds after the seek"

        await player.play(track)
        await b.wait(lavalink.TrackStartEvent, 2)
        await player.stop()
        stopped = await b.wait(lavalink.TrackEndEvent, 2)
        assert stopped.reason == lavalink.EndReason.STOPPED

        await b.client.player_manager.destroy(b.st.guild)
        with pytest.raises(lavalink.RequestError) as got:
            await b.node.get_player(b.st.guild)
        assert got.value.status == 404


async def test_replace_end_time_and_a_track_that_fails_to_load(node_factory: NodeFactory) -> None:
    async with bot(node_factory) as b:
        player = await b.join()
        first, second = await b.load("tone:440?seconds=30"), await b.load("tone:660?seconds=5")
        await player.play(first)
        await b.wait(lavalink.TrackStartEvent)
        await player.play(second, end_time=1500)  # replaces; ends itself 1.5 s in
        replaced = await b.wait(lavalink.TrackEndEvent)
        assert replaced.reason == lavalink.EndReason.REPLACED
        assert replaced.track.identifier == first.identifier
        started = await b.wait(lavalink.TrackStartEvent, 2)
        assert started.track.identifier == second.identifier
        t0 = time.monotonic()
        ended = await b.wait(lavalink.TrackEndEvent, 2, within=5)
        took = time.monotonic() - t0
        assert ended.reason == lavalink.EndReason.FINISHED and 1.2 < took < 2.5, took
        await asyncio.sleep(0.3)
        tail = b.st.heard(t0 - 0.2)
        assert abs(dominant(tail) - 660) < 5 and 65 <= len(tail) / 960 <= 90, len(tail) / 960

        # A track the client encoded itself is resolved again through the sources: this one
        # names a tone the tone source refuses, so it fails to load, as Lavalink reports it.
        _, forged = lavalink.encode_track({
            "title": "forged", "author": "x", "length": 1000, "identifier": "tone:99999",
            "isStream": False, "uri": "tone:99999", "sourceName": "tone", "position": 0,
            "artworkUrl": None, "isrc": None,
        })  # fmt: skip
        await player.play(await b.client.decode_track(forged))
        failed = await b.wait(lavalink.TrackExceptionEvent)
        assert "24000" in failed.message and failed.severity == lavalink.Severity.COMMON
        load_failed = await b.wait(lavalink.TrackEndEvent, 3)
        assert load_failed.reason == lavalink.EndReason.LOAD_FAILED
        kinds = [type(e).__name__ for e in b.events if "Track" in type(e).__name__]
        assert kinds[-3:] == ["TrackStartEvent", "TrackExceptionEvent", "TrackEndEvent"]


async def test_stuck_track_closed_voice_and_cleanup(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    async with bot(node_factory) as b, stalling_server(tmp_path) as url:
        player = await b.join()
        await player.play(await b.load(url))
        await b.wait(lavalink.TrackStartEvent)
        stuck = await b.wait(lavalink.TrackStuckEvent, within=8)
        assert stuck.threshold == 1000 and stuck.track.uri == url
        # lavalink.py's player moves on after a stuck track (its queue is empty: it stops)
        assert (await b.wait(lavalink.TrackEndEvent)).reason == lavalink.EndReason.STOPPED

        await player.play(await b.load("tone:440?seconds=30"))
        await b.wait(lavalink.TrackStartEvent, 2)
        await b.st.grant(b.st.channel + 1)  # moved elsewhere: the voice server closes 4014
        closed = await b.wait(lavalink.WebSocketClosedEvent)
        assert closed.code == 4014 and closed.by_remote is True
        # nobody hears the track any more: after `cleanup_threshold` it is cleaned up
        cleaned = await b.wait(lavalink.TrackEndEvent, 2, within=5)
        assert cleaned.reason == lavalink.EndReason.CLEANUP


async def test_session_resumes_after_a_socket_drop(node_factory: NodeFactory) -> None:
    async with bot(node_factory, resume_timeout=5) as b:
        session = await b.node.update_session(resuming=True, timeout=20)
        assert session == {"resuming": True, "timeout": 20}
        player = await b.join()
        await player.play(await b.load("tone:440?seconds=2"))
        await b.wait(lavalink.TrackStartEvent)
        t0 = time.monotonic()
        first = b.of(lavalink.NodeReadyEvent)[0]
        transport = b.node._transport
        await transport.close(reconnect=False)  # the socket drops while the track plays
        service = b.st.node.node.service
        ref = service.named_session(first.session_id)
        await until(lambda: service.sessions.by_ref[ref].sink is None, 5, "the socket is gone")
        await asyncio.sleep(2.5)  # the track ends meanwhile: its TrackEndEvent is kept
        assert not b.of(lavalink.TrackEndEvent)
        frames = len(b.st.heard(t0)) / 960
        assert frames >= 80, f"the player played on while its client was away ({frames})"
        transport.connect()
        again = await b.wait(lavalink.NodeReadyEvent, 2)
        assert again.resumed is True and again.session_id == first.session_id
        end = await b.wait(lavalink.TrackEndEvent)
        assert end.reason == lavalink.EndReason.FINISHED, "the event missed during the drop"
