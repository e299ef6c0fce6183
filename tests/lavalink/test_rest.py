"""Every Lavalink v4 REST route, raw, against the real server: answers and error bodies."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from audionode.protocol import lavaplayer_track as lp
from tests.conftest import NodeFactory
from tests.lavalink.raw import lavalink_node
from tests.protocol.test_lavaplayer_track import DOCS_EXAMPLE

pytestmark = pytest.mark.timeout(30)

INFO_KEYS = {
    "identifier", "isSeekable", "author", "length", "isStream", "position", "title", "uri",
    "sourceName", "artworkUrl", "isrc",
}  # fmt: skip


def error_of(body: Any, status: int, path: str) -> str:
    """Check Lavalink's error body; return its message."""
    assert set(body) == {"timestamp", "status", "error", "message", "path"}, body
    assert body["status"] == status and body["path"] == path
    assert abs(body["timestamp"] - time.time() * 1000) < 60_000
    message: str = body["message"]
    return message


def check_track(track: Any) -> None:
    assert set(track) == {"encoded", "info", "pluginInfo", "userData"}
    assert set(track["info"]) == INFO_KEYS
    decoded = lp.decode(track["encoded"])
    assert decoded.identifier == track["info"]["identifier"]
    assert decoded.title == track["info"]["title"]
    assert decoded.position == track["info"]["position"]


async def test_node_routes(node_factory: NodeFactory, tmp_path: Path) -> None:
    async with lavalink_node(node_factory, tmp_path) as raw:
        assert await raw.call("GET", "/version") == (200, "4.2.1")
        status, body = await raw.call("GET", "/version", password=None)
        assert status == 401 and "Authorization" in error_of(body, 401, "/version")
        status, body = await raw.call("GET", "/v4/info", password="wrong")
        assert status == 403 and "wrong password" in error_of(body, 403, "/v4/info")

        status, info = await raw.call("GET", "/v4/info")
        assert status == 200 and info["version"]["major"] == 4 and info["version"]["semver"]
        assert info["sourceManagers"][:2] == ["tone", "lists"] and info["plugins"] == []
        assert "timescale" in info["filters"] and "channelMix" in info["filters"]
        assert {"buildTime", "git", "jvm", "lavaplayer"} <= set(info)

        status, stats = await raw.call("GET", "/v4/stats")
        assert status == 200 and "frameStats" not in stats
        admission = stats["audionode"]["admission"]  # ours, beside Lavalink's fields
        assert admission["atCapacity"] is False and admission["placeable"] > 0, admission
        assert stats["players"] == stats["playingPlayers"] == 0 and stats["uptime"] > 0
        assert set(stats["memory"]) == {"free", "used", "allocated", "reservable"}
        assert set(stats["cpu"]) == {"cores", "systemLoad", "lavalinkLoad"}

        assert await raw.call("GET", "/v4/routeplanner/status") == (204, "")
        for path in ("/v4/routeplanner/free/address", "/v4/routeplanner/free/all"):
            status, body = await raw.call("POST", path, {"address": "1.0.0.1"})
            # Lavalink answers 500 here; ours is 409 (no server fault), with Lavalink's message
            assert status == 409, (status, body)
            assert error_of(body, 409, path) == "Can't access disabled route planner"

        status, body = await raw.call("GET", "/v4/nothing/here")
        assert status == 404 and "GET /v4/nothing/here" in error_of(body, 404, "/v4/nothing/here")
        status, body = await raw.call("DELETE", "/v4/info")
        assert status == 405 and "DELETE" in error_of(body, 405, "/v4/info")
        status, body = await raw.call("GET", "/v4/sessions/abc/players", trace="true")
        assert status == 404 and body["message"] == "Session not found"
        assert body["trace"] == "SESSION_NOT_FOUND: no session 'abc'"


async def test_loading_and_decoding(node_factory: NodeFactory, tmp_path: Path) -> None:
    async with lavalink_node(node_factory, tmp_path) as raw:
        status, got = await raw.call("GET", "/v4/loadtracks", identifier="tone:440?seconds=3")
        assert status == 200 and got["loadType"] == "track"
        track = got["data"]
        check_track(track)
        assert track["info"]["length"] == 3000 and track["info"]["sourceName"] == "tone"
        assert track["info"]["isSeekable"] and not track["info"]["isStream"]
        assert track["pluginInfo"] == {} and track["userData"] == {}

        status, got = await raw.call("GET", "/v4/loadtracks", identifier="find:3")
        assert got["loadType"] == "search" and len(got["data"]) == 3
        check_track(got["data"][2])
        status, got = await raw.call("GET", "/v4/loadtracks", identifier="list:3")
        assert got["loadType"] == "playlist"
        assert got["data"]["info"] == {"name": "some tones", "selectedTrack": 1}
        assert got["data"]["pluginInfo"] == {} and len(got["data"]["tracks"]) == 3
        status, got = await raw.call("GET", "/v4/loadtracks", identifier="tone:abc")
        assert got["loadType"] == "error"
        assert set(got["data"]) == {"message", "severity", "cause", "causeStackTrace"}
        assert "frequencies" in got["data"]["message"] and got["data"]["severity"] == "common"
        assert await raw.call("GET", "/v4/loadtracks", identifier=" ") == (
            200,
            {"loadType": "empty", "data": {}},
        )
        status, body = await raw.call("GET", "/v4/loadtracks")
        assert status == 400 and "identifier" in error_of(body, 400, "/v4/loadtracks")

        status, decoded = await raw.call("GET", "/v4/decodetrack", encodedTrack=track["encoded"])
        assert status == 200 and decoded == track
        status, decoded = await raw.call("GET", "/v4/decodetrack", track=DOCS_EXAMPLE)
        assert decoded["info"]["sourceName"] == "youtube" and decoded["encoded"] == DOCS_EXAMPLE
        status, body = await raw.call("GET", "/v4/decodetrack")
        assert (status, error_of(body, 400, "/v4/decodetrack")) == (
            400,
            "No track to decode provided",
        )
        status, body = await raw.call("GET", "/v4/decodetrack", encodedTrack="QUJD")
        assert status == 400 and "encodedTrack" in error_of(body, 400, "/v4/decodetrack")

        status, many = await raw.call("POST", "/v4/decodetracks", [track["encoded"], DOCS_EXAMPLE])
        assert status == 200 and [t["info"]["title"] for t in many] == [
            track["info"]["title"],
            "Rick Astley - Never Gonna Give You Up",
        ]
        for bad, why in (([], "No tracks"), ({"a": 1}, "expected `array`"), (["x"], "`[0]`")):
            status, body = await raw.call("POST", "/v4/decodetracks", bad)
            assert status == 400 and why in error_of(body, 400, "/v4/decodetracks"), body
        status, body = await raw.call("POST", "/v4/decodetracks", raw=b"{not json")
        assert status == 400 and "JSON" in error_of(body, 400, "/v4/decodetracks")


async def test_sessions_and_players(node_factory: NodeFactory, tmp_path: Path) -> None:
    async with lavalink_node(node_factory, tmp_path) as raw, raw.socket() as sock:
        sid = (await sock.expect("ready"))["sessionId"]
        base = f"/v4/sessions/{sid}"
        assert await raw.call("PATCH", base, {}) == (200, {"resuming": False, "timeout": 60})
        assert await raw.call("PATCH", base, {"resuming": True, "timeout": 90}) == (
            200,
            {"resuming": True, "timeout": 90},
        )
        status, body = await raw.call("PATCH", base, {"timeout": 4000})
        assert status == 400 and "lavalink.max_resume_timeout" in error_of(body, 400, base)
        status, body = await raw.call("PATCH", base, {"resuming": "maybe"})
        assert status == 400 and "resuming" in error_of(body, 400, base)
        status, body = await raw.call("PATCH", "/v4/sessions/nope", {})
        assert error_of(body, 404, "/v4/sessions/nope") == "Session not found"

        assert await raw.call("GET", f"{base}/players") == (200, [])
        player = f"{base}/players/123"
        status, body = await raw.call("GET", player)
        assert (status, error_of(body, 404, player)) == (404, "Player not found")
        status, body = await raw.call("GET", f"{base}/players/abc")
        assert status == 400 and "guildId" in error_of(body, 400, f"{base}/players/abc")

        status, p = await raw.call("PATCH", player, {"volume": 50, "paused": True})
        assert status == 200 and p["guildId"] == "123" and p["track"] is None
        assert (p["volume"], p["paused"], p["filters"]) == (50, True, {})
        assert p["state"]["connected"] is False and p["state"]["ping"] == -1
        assert p["voice"] == {"token": "", "endpoint": "", "sessionId": "", "channelId": None}
        filters = {"timescale": {"pitch": 1.2}, "equalizer": [{"band": 3, "gain": 0.2}]}
        status, p = await raw.call(
            "PATCH", player, {"filters": {**filters, "pluginFilters": {"x": {"y": 1}}}}
        )
        assert p["filters"]["timescale"] == {"speed": 1.0, "pitch": 1.2, "rate": 1.0}
        assert p["filters"]["equalizer"] == [{"band": 3, "gain": 0.2}]
        frame = await sock.expect("playerUpdate")
        assert frame["guildId"] == "123" and set(frame["state"]) == {
            "time", "position", "connected", "ping",
        }  # fmt: skip
        status, players = await raw.call("GET", f"{base}/players")
        assert [q["guildId"] for q in players] == ["123"]

        assert await raw.call("DELETE", player) == (204, "")
        assert await raw.call("DELETE", player) == (204, ""), "Lavalink answers 204 again"
        assert (await raw.call("GET", player))[0] == 404


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"volume": 1001}, "`volume`: expected `int` <= 1000"),
        ({"volume": "loud"}, "`volume`"),
        ({"paused": "yes"}, "`paused`"),
        ({"position": -1}, "`position`"),
        ({"endTime": 0}, "End time must be greater than 0"),
        ({"filters": {"timescale": {"speed": 0}}}, "`timescale.speed`"),
        ({"filters": {"echo": {}}}, "unknown filter `echo`"),
        ({"voice": {"token": "t", "endpoint": "e", "sessionId": "s"}}, "channelId must be"),
        ({"voice": {"token": "t", "endpoint": "e", "sessionId": "s", "channelId": "x"}}, "channel"),
        ({"encodedTrack": "x", "identifier": "tone:440"}, "Cannot specify both encodedTrack"),
        ({"track": {"identifier": "tone:1"}, "identifier": "x"}, "Cannot specify both track"),
        ({"track": {"encoded": "QUJD"}}, "`track.encoded`: not a Lavaplayer track"),
        ({"track": {"identifier": "tone:abc"}}, "`track.identifier`: tone: frequencies"),
        ({"track": {"identifier": "find:2"}}, "gave a search, not one track"),
        ({"track": {"identifier": "tone:440", "userData": 5}}, "`track.userData`"),
        ({"track": {"identifier": "tone:1?seconds=2"}, "position": 5000}, "`position`: expected"),
        ({"track": {"identifier": "tone:440"}, "position": 800, "endTime": 500}, "`endTime`"),
        ([1, 2], "expected a JSON object"),
    ],
)
async def test_a_bad_player_update_changes_nothing(
    node_factory: NodeFactory, tmp_path: Path, update: Any, field: str
) -> None:
    async with lavalink_node(node_factory, tmp_path) as raw, raw.socket() as sock:
        sid = (await sock.expect("ready"))["sessionId"]
        path = f"/v4/sessions/{sid}/players/9"
        before = await raw.call("PATCH", path, {"volume": 70})
        status, body = await raw.call("PATCH", path, update)
        assert status == 400 and field in error_of(body, 400, path), body
        status, after = await raw.call("GET", path)
        assert after["volume"] == 70 and after["filters"] == {} and after["track"] is None
        assert before[0] == 200


async def test_playing_replacing_and_stopping_by_rest(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    """Without a voice connection a track is only opened (the listener tests hear them): the
    player shows it, noReplace keeps it, ``encoded: null`` stops it."""
    async with lavalink_node(node_factory, tmp_path) as raw, raw.socket() as sock:
        sid = (await sock.expect("ready"))["sessionId"]
        path = f"/v4/sessions/{sid}/players/5"
        _, loaded = await raw.call("GET", "/v4/loadtracks", identifier="tone:440?seconds=9")
        encoded = loaded["data"]["encoded"]
        body = {"track": {"encoded": encoded, "userData": {"by": "me"}}, "position": 1500}
        status, p = await raw.call("PATCH", path, body, noReplace="False")
        assert status == 200 and p["track"]["info"] == {**loaded["data"]["info"], "position": 1500}
        assert p["track"]["userData"] == {"by": "me"} and p["track"]["info"]["position"] == 1500
        assert p["paused"] is False

        _, other = await raw.call("GET", "/v4/loadtracks", identifier="tone:660")
        for flag in ("true", "True", "TRUE"):  # wavelink sends True
            body = {"encodedTrack": other["data"]["encoded"]}  # the deprecated field
            status, p = await raw.call("PATCH", path, body, noReplace=flag)
            assert status == 200 and "440" in p["track"]["info"]["title"], "noReplace keeps it"
        status, bad = await raw.call("PATCH", path, {}, noReplace="yes")
        assert status == 400 and "noReplace" in error_of(bad, 400, path)

        status, p = await raw.call("PATCH", path, {"identifier": "tone:660"})  # replaces
        assert "660" in p["track"]["info"]["title"] and p["track"]["userData"] == {}
        status, p = await raw.call("PATCH", path, {"track": {"encoded": None}})
        assert status == 200 and p["track"] is None
        status, p = await raw.call("PATCH", path, {"encodedTrack": None, "paused": True})
        assert p["track"] is None and p["paused"] is True
