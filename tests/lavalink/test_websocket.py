"""``/v4/websocket``, raw: handshake answers, ready, stats, playerUpdate, events, resume."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from pathlib import Path

import aiohttp
import pytest

from audionode.protocol import lavaplayer_track as lp
from tests.conftest import PASSWORD, NodeFactory
from tests.lavalink.harness import BOT, stage
from tests.lavalink.raw import Raw, lavalink_node

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"User-Id": "1"}, 401),
        ({"User-Id": "1", "Authorization": "wrong"}, 401),
        ({"Authorization": PASSWORD}, 400),
        ({"Authorization": PASSWORD, "User-Id": "abc"}, 400),
        ({"Authorization": PASSWORD, "User-Id": "0"}, 400),
    ],
)
async def test_the_handshake_is_refused_as_lavalink_refuses_it(
    node_factory: NodeFactory, tmp_path: Path, headers: dict[str, str], status: int
) -> None:
    async with lavalink_node(node_factory, tmp_path) as raw:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await raw.http.ws_connect(f"{raw.node.url}/v4/websocket", headers=headers)
        assert err.value.status == status


async def test_ready_stats_and_a_session_that_ends_with_its_socket(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    async with lavalink_node(node_factory, tmp_path) as raw:
        async with raw.socket() as sock:
            ready = await sock.next()
            assert ready["op"] == "ready" and ready["resumed"] is False
            sid = ready["sessionId"]
            assert re.fullmatch(r"[a-z0-9]{16}", sid)
            stats = await sock.next()
            assert stats["op"] == "stats" and stats["frameStats"] is None
            assert {"players", "playingPlayers", "uptime", "memory", "cpu"} <= set(stats)
            await sock.ws.send_str('{"op": "voiceUpdate"}')  # v4 takes nothing: ignored
            again = await sock.expect("stats")  # the socket lives on; stats every second
            assert again["uptime"] > stats["uptime"]
            await raw.call("PATCH", f"/v4/sessions/{sid}/players/1", {"volume": 10})
        # not resumable (the default): the session and its players end with the socket
        await asyncio.sleep(0.2)
        status, body = await raw.call("GET", f"/v4/sessions/{sid}/players")
        assert status == 404 and body["message"] == "Session not found"
        async with raw.socket(session_id=sid) as sock:
            ready = await sock.next()
            assert ready["resumed"] is False and ready["sessionId"] != sid


async def test_a_resumed_session_gets_what_it_missed(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    async with lavalink_node(node_factory, tmp_path) as raw:
        async with raw.socket() as sock:
            sid = (await sock.expect("ready"))["sessionId"]
            await raw.call("PATCH", f"/v4/sessions/{sid}", {"resuming": True, "timeout": 10})
        # while no socket is attached: a player, and a track that fails to load (no voice
        # needed for that): its events are kept for the next socket
        forged = lp.encode(lp.LavaplayerTrack(
            title="t", author="a", length=1000, identifier="tone:99999", is_stream=False,
            uri="tone:99999", source_name="tone",
        ))  # fmt: skip
        path = f"/v4/sessions/{sid}/players/44"
        status, _ = await raw.call("PATCH", path, {"track": {"encoded": forged}})
        assert status == 200
        await asyncio.sleep(0.3)
        async with raw.socket(user_id="78", session_id=sid) as other:
            assert (await other.next())["sessionId"] != sid, "another user's session: new"
        async with raw.socket(session_id=sid) as sock:
            assert await sock.next() == {"op": "ready", "resumed": True, "sessionId": sid}
            kinds = [
                (await sock.expect("event"))["type"],
                (await sock.expect("event"))["type"],
                (await sock.expect("event"))["type"],
            ]
            assert kinds == ["TrackStartEvent", "TrackExceptionEvent", "TrackEndEvent"]
            end = sock.seen[-1]
            assert end["reason"] == "loadFailed" and end["guildId"] == "44"
            update = await sock.expect("playerUpdate")
            assert update["guildId"] == "44", "a playerUpdate per player after a resume"


async def test_a_forged_track_meets_the_source_guards(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    """An ``encoded`` track is only a description: it is resolved again through the sources,
    so one naming a private address meets the http source's guard (private URLs are off)."""
    async with lavalink_node(node_factory, tmp_path) as raw, raw.socket() as sock:
        sid = (await sock.expect("ready"))["sessionId"]
        forged = lp.encode(lp.LavaplayerTrack(
            title="metadata", author="", length=1000, identifier="http://169.254.169.254/x",
            is_stream=False, uri="http://169.254.169.254/x", source_name="http",
            details=lp.probe_details("mp3"),
        ))  # fmt: skip
        await raw.call("PATCH", f"/v4/sessions/{sid}/players/3", {"encodedTrack": forged})
        failure = await sock.expect("event", "TrackExceptionEvent")
        assert "169.254.169.254" in failure["exception"]["message"]
        assert "private" in failure["exception"]["message"] or "not allowed" in failure[
            "exception"
        ]["message"]
        assert (await sock.expect("event", "TrackEndEvent"))["reason"] == "loadFailed"


async def test_player_updates_frame_stats_and_destroy_while_playing(
    node_factory: NodeFactory,
) -> None:
    """With a voice connection (the built-in voice server, a listener): playerUpdate every
    ``player_update_interval`` with the position advancing, ``frameStats`` from the engine's
    counters, and the track of a destroyed player ending ``stopped``."""
    async with stage(node_factory) as st:
        raw = Raw(st.node)
        async with raw.socket(user_id=str(BOT)) as sock:
            sid = (await sock.expect("ready"))["sessionId"]
            grant = await st.grant()
            voice = {
                "token": grant.token, "endpoint": grant.endpoint,
                "sessionId": grant.session_id, "channelId": str(st.channel),
            }  # fmt: skip
            path = f"/v4/sessions/{sid}/players/{st.guild}"
            body = {"voice": voice, "track": {"identifier": "tone:440?seconds=30"}}
            status, p = await raw.call("PATCH", path, body)
            assert status == 200 and p["voice"]["channelId"] == str(st.channel)
            assert p["voice"]["token"] == "", "the voice token is never sent back"
            start = await sock.expect("event", "TrackStartEvent", within=10)
            assert start["guildId"] == str(st.guild) and start["track"]["info"]["position"] == 0
            t0 = time.monotonic()
            positions = []
            while time.monotonic() - t0 < 2.2:
                update = await sock.expect("playerUpdate")
                assert update["state"]["connected"] is True
                positions.append((time.monotonic() - t0, update["state"]["position"]))
            assert 3 <= len(positions) <= 8, positions
            assert all(b[1] >= a[1] for a, b in itertools.pairwise(positions)), positions
            assert positions[-1][1] - positions[0][1] >= 1500, positions
            stats = await sock.expect("stats", within=8)
            while stats["frameStats"] is None:  # rates need two engine reports (2 s apart)
                stats = await sock.expect("stats", within=8)
            frames = stats["frameStats"]
            assert stats["playingPlayers"] == 1
            assert stats["audionode"]["admission"]["atCapacity"] is False
            assert 2500 <= frames["sent"] <= 3100 and frames["nulled"] < 300, frames
            assert frames["deficit"] == 3000 - frames["sent"] - frames["nulled"]
            assert await raw.call("DELETE", path) == (204, "")
            end = await sock.expect("event", "TrackEndEvent")
            assert end["reason"] == "stopped" and "440" in end["track"]["info"]["title"]
