"""The Lavalink front's pure parts: a player update as the service's commands, and the
sans-I/O websocket session (events in, frames out, schedules by a clock we hand it)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from audionode.control import commands as c
from audionode.control import events as ev
from audionode.control.views import (
    CurrentView,
    EntryView,
    OptionsView,
    PlayerState,
    PlayerView,
    TrackView,
    VoiceView,
)
from audionode.errors import BadRequest
from audionode.protocol import lavalink as ll
from audionode.protocol import lavaplayer_track as lp
from audionode.protocol.filters import parse_filters
from audionode.protocol.lavalink_session import LavalinkSession

G = 42
TRACK = TrackView(source="tone", id="tone:440", title="Tone", uri="tone:440", duration=30.0)
ENTRY = EntryView(track=TRACK, tag="t1", context={"by": "me"})


def kinds(plan: ll.Plan) -> list[str]:
    return [type(s.command).__name__ for s in plan.steps]


def test_an_update_without_a_track_runs_in_lavalink_order() -> None:
    voice = {"token": "t", "endpoint": "e", "sessionId": "s", "channelId": "7"}
    body = {
        "voice": voice, "paused": True, "volume": 150, "position": 1000, "endTime": 9000,
        "filters": {"karaoke": {}, "pluginFilters": {"echo": {"delay": 1}}},
        "track": {"userData": {"a": 1}}, "someoneElsesPluginField": 1,
    }  # fmt: skip
    plan = ll.player_update(body, G, no_replace=False)
    assert kinds(plan) == [
        "EnsurePlayer", "VoiceState", "VoiceServer", "Pause", "SetCurrentContext",
        "SetOptions", "Seek", "SetEnd", "SetOptions",
    ]  # fmt: skip
    steps = plan.steps
    assert steps[1].command == c.VoiceState(guild_id=G, session_id="s", channel_id=7)
    assert steps[5].command.volume == 1.5 and steps[6].command.position == 1.0
    assert steps[6].if_playing and steps[4].if_playing and not steps[7].if_playing
    assert steps[8].command.filters == parse_filters({"karaoke": {}}), "pluginFilters dropped"
    assert plan.refresh


def test_an_update_with_a_track_plays_it_with_its_start_end_and_pause() -> None:
    encoded = lp.encode(lp.LavaplayerTrack(
        title="T", author="A", length=30000, identifier="tone:440", is_stream=False,
        uri="tone:440", source_name="tone",
    ))  # fmt: skip
    body = {"track": {"encoded": encoded, "userData": {"x": 1}}, "position": 500, "endTime": 900}
    plan = ll.player_update(body, G, no_replace=True)
    assert kinds(plan) == ["EnsurePlayer", "Play"]
    play = plan.steps[-1].command
    assert (play.start_position, play.end_position, play.replace, play.paused) == (
        0.5,
        0.9,
        False,
        False,
    )
    assert play.track == c.ClaimedTrack(
        source="tone", id="tone:440", title="T", uri="tone:440", author="A", duration=30.0,
        field="track.encoded", context={"x": 1},
    )  # fmt: skip
    stop = ll.player_update({"encodedTrack": None, "paused": False}, G, no_replace=False)
    assert kinds(stop) == ["EnsurePlayer", "Resume", "Stop", "Clear"]
    ident = ll.player_update({"identifier": "tone:1"}, G, no_replace=False).steps[-1].command
    assert ident.track == c.TrackQuery(query="tone:1", field="identifier")


@pytest.mark.parametrize(
    ("raw", "value"), [(None, False), ("true", True), ("False", False), ("TRUE", True)]
)
def test_no_replace_in_any_capitalisation(raw: str | None, value: bool) -> None:
    assert ll.flag(raw, "noReplace") is value


def test_flags_and_ids_that_are_not() -> None:
    with pytest.raises(BadRequest, match="`noReplace`: expected true or false"):
        ll.flag("1", "noReplace")
    with pytest.raises(BadRequest, match="path `guildId`"):
        ll.snowflake("-5", "path `guildId`")
    with pytest.raises(BadRequest, match="max_resume_timeout"):
        ll.session_update({"timeout": 10_000}, 3600)


# --- the websocket session ----------------------------------------------------------------------


def session(now: float = 100.0) -> LavalinkSession:
    return LavalinkSession(
        "s" * 16, update_interval=5, stats_interval=60, stuck_threshold=10,
        cleanup_threshold=60, now=now,
    )  # fmt: skip


def frames(texts: list[str]) -> list[dict[str, Any]]:
    return [json.loads(t) for t in texts]


def view(paused: bool = False, state: PlayerState = PlayerState.PLAYING) -> PlayerView:
    return PlayerView(
        voice_client_id="v", guild_id=G, channel_id=1, state=state,
        current=CurrentView(entry=ENTRY, position=3.0, as_of=0.0), queue_length=0,
        repeat="off", options=OptionsView(autoplay=False, volume=1.0, crossfade=0.0),
        context={}, voice=VoiceView(session_id="s", endpoint="e", has_token=True),
        paused=paused,
    )  # fmt: skip


def started(s: LavalinkSession, now: float) -> list[dict[str, Any]]:
    s.event(ev.VoiceConnected(guild_id=G, ssrc=1, mode="m", dave_protocol_version=1), now)
    current = CurrentView(entry=ENTRY, position=0.0, as_of=0.0)
    return frames(s.event(ev.TrackStarted(guild_id=G, current=current), now))


def test_a_track_failing_before_its_first_frame_is_told_as_lavalink_tells_it() -> None:
    s = session()
    out = frames(s.event(ev.TrackFailed(guild_id=G, entry=ENTRY, message="gone"), 100))
    assert [f["type"] for f in out] == ["TrackStartEvent", "TrackExceptionEvent", "TrackEndEvent"]
    assert out[1]["exception"] == {
        "message": "gone", "severity": "common", "cause": "gone", "causeStackTrace": "",
    }  # fmt: skip
    assert out[2]["reason"] == "loadFailed" and out[0]["track"]["userData"] == {"by": "me"}


def test_a_decode_error_mid_track_is_an_exception_then_the_end() -> None:
    s = session()
    started(s, 100)
    out = frames(
        s.event(ev.TrackEnded(guild_id=G, entry=ENTRY, reason="error", message="bad"), 101)
    )
    assert [(f["type"], f.get("reason")) for f in out] == [
        ("TrackExceptionEvent", None),
        ("TrackEndEvent", "finished"),
    ]
    assert s.event(ev.TrackFailed(guild_id=G, entry=ENTRY, message="bad"), 101) == []


def test_end_reasons_and_a_destroyed_players_track() -> None:
    s = session()
    started(s, 100)
    for reason, wire in (("skipped", "stopped"), ("replaced", "replaced")):
        end = frames(s.event(ev.TrackEnded(guild_id=G, entry=ENTRY, reason=reason), 101))
        assert end[-1]["reason"] == wire
    started(s, 102)
    [end] = frames(s.event(ev.VoiceClientDestroyed(guild_id=G), 103))
    assert (end["type"], end["reason"]) == ("TrackEndEvent", "stopped")
    assert s.event(ev.VoiceClientDestroyed(guild_id=G), 104) == []


def test_player_updates_stats_stuck_and_cleanup_follow_the_clock() -> None:
    s = session(100)
    assert s.due(100).stats and not s.due(100).stats
    started(s, 100)
    assert s.due(100).updates == (G,), "at the track's start, then every 5 s"
    assert s.due(104).updates == () and s.due(105).updates == (G,)
    # positions keep the stuck watch quiet; 10 s + one report interval without one: stuck
    s.event(ev.PositionChanged(guild_id=G, position=5, as_of=0, state=PlayerState.PLAYING), 105)
    assert s.next_due() <= 110
    assert s.due(115.9).frames == ()
    stuck = s.due(116.1)
    assert [json.loads(f)["type"] for f in stuck.frames] == ["TrackStuckEvent"]
    assert json.loads(stuck.frames[0])["thresholdMs"] == 10_000 and G in stuck.updates
    assert s.due(130).frames == (), "told once per stall"
    # a paused player is never stuck; nor one without voice, which is cleaned up instead
    s.observe(view(paused=True), 130, 0, refresh=False)
    assert s.due(200).frames == ()
    closed = ev.VoiceClosed(guild_id=G, code=4014, reason="moved", by_remote=True,
                            will_reconnect=False)  # fmt: skip
    [ws] = frames(s.event(closed, 200))
    assert ws == {
        "op": "event", "type": "WebSocketClosedEvent", "guildId": str(G), "code": 4014,
        "reason": "moved", "byRemote": True,
    }  # fmt: skip
    assert s.due(259).cleanups == () and s.due(260).cleanups == (G,)
    [end] = frames(s.event(ev.TrackEnded(guild_id=G, entry=ENTRY, reason="stopped"), 261))
    assert end["reason"] == "cleanup"


def test_observe_and_seed() -> None:
    s = session()
    text = s.observe(view(), 100, 1234, refresh=True)
    assert text is not None and json.loads(text) == {
        "op": "playerUpdate", "guildId": str(G),
        "state": {"time": 1234, "position": 3000, "connected": True, "ping": -1},
    }  # fmt: skip
    resumed = session()
    resumed.seed([view()], 100)
    assert resumed.due(100).updates == (G,)
    [end] = frames(resumed.event(ev.VoiceClientDestroyed(guild_id=G), 101))
    assert end["track"]["info"]["identifier"] == "tone:440", "a seeded track is known"
