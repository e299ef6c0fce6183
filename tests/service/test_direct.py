"""The service methods the Lavalink front needed (``service/direct.py``), with the fake engine:
one track now outside the queue, its end, a claimed track resolved again, named sessions and
their resume policy."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from audionode.control import commands as c
from audionode.control import events as ev
from audionode.engine import messages as m
from audionode.errors import BadRequest, Conflict, NotFound
from audionode.service import NodeService
from tests.service.test_node import USER, Sink, engine, service

__all__ = ["service"]  # the fixture

NAMED = c.SessionRef(user_id=USER, session_id="abcdefgh12345678")
GUILD = 20


def player(guild: int = GUILD) -> c.PlayerRef:
    return c.PlayerRef(user_id=USER, guild_id=guild, session_id=NAMED.session_id)


async def ready(svc: NodeService) -> Sink:
    sink = Sink()
    await svc.identify(NAMED, sink)
    await svc.ensure_player(player(), c.EnsurePlayer())
    return sink


async def opened(svc: NodeService) -> m.Play:
    for _ in range(3):  # the open task (resolving a claim takes a turn more)
        await asyncio.sleep(0)
    return engine(svc).of(m.Play)[-1]


def started(svc: NodeService, play: m.Play) -> None:
    svc.on_engine_event(m.TrackStarted(player=play.player, serial=play.serial))


async def test_a_named_session_is_apart_from_the_shard_sessions(service: NodeService) -> None:
    sink = await ready(service)
    assert [type(e) for e in sink.events] == [ev.VoiceClientCreated]
    assert service.named_session("abcdefgh12345678") == NAMED
    with pytest.raises(NotFound):
        service.named_session("nope")
    # a Discodo request without a shard looks among the user's shard sessions only
    with pytest.raises(NotFound):
        unnamed = c.PlayerRef(user_id=USER, guild_id=GUILD, shard_given=False)
        await service.state(unnamed, c.GetState())
    view = (await service.players(NAMED, c.GetPlayers()))[0]
    assert view.guild_id == GUILD and view.opening is None and not view.paused


async def test_play_now_replaces_and_ends_at_its_end_position(service: NodeService) -> None:
    sink = await ready(service)
    first = c.Play(track=c.TrackQuery(query="song:a", context={"n": 1}), start_position=2.0)
    assert await service.play(player(), first) is True
    view = await service.state(player(), c.GetState())
    assert view.opening is not None and view.opening.context == {"n": 1}
    play = await opened(service)
    assert (play.start_ms, play.end_ms) == (2000, None)
    started(service, play)
    # noReplace: a track plays, nothing changes
    keep = c.Play(track=c.TrackQuery(query="song:b"), replace=False)
    assert await service.play(player(), keep) is False
    second = c.Play(track=c.TrackQuery(query="song:b"), end_position=1.5)
    assert await service.play(player(), second) is True
    play2 = await opened(service)
    assert play2.end_ms == 1500 and play2.serial != play.serial
    service.on_engine_event(m.TrackEnded(player=play.player, serial=play.serial, reason="replaced"))
    started(service, play2)
    [ended] = sink.of(ev.TrackEnded)
    assert ended.reason == "replaced" and ended.entry.track.title == "song:a"
    assert sink.of(ev.QueueChanged) == [], "the queue is not touched"


async def test_an_end_set_while_playing_only_comes_earlier(service: NodeService) -> None:
    sink = await ready(service)
    await service.play(player(), c.Play(track=c.TrackQuery(query="song:a"), end_position=50))
    play = await opened(service)
    started(service, play)
    with pytest.raises(Conflict) as err:
        await service.set_end(player(), c.SetEnd(end_position=None))
    assert err.value.code == "END_FIXED"
    await service.set_end(player(), c.SetEnd(end_position=3.0))
    at = [
        m.TrackPosition(player=play.player, serial=play.serial, position_ms=ms)
        for ms in (2000, 3000, 3100)
    ]
    service.on_engine_event(at[0])
    assert engine(service).of(m.Skip) == []
    service.on_engine_event(at[1])
    service.on_engine_event(at[2])
    assert len(engine(service).of(m.Skip)) == 1, "once"
    service.on_engine_event(m.TrackEnded(player=play.player, serial=play.serial, reason="skipped"))
    assert sink.of(ev.TrackEnded)[-1].reason == "finished"


async def test_a_claimed_track_is_resolved_again_before_it_plays(service: NodeService) -> None:
    sink = await ready(service)
    claim = c.ClaimedTrack(source="songs", id="song:x", title="my title", duration=60.0,
                           field="track.encoded")  # fmt: skip
    await service.play(player(), c.Play(track=claim))
    view = await service.state(player(), c.GetState())
    assert view.opening is not None and view.opening.track.token == "", "never signed"
    play = await opened(service)
    started(service, play)
    [start] = sink.of(ev.TrackStarted)
    assert start.current.entry.track.title == "song:x", "what the source says, not the claim"
    # a claim the sources cannot give again fails to load; the playing track goes with it
    wrong = c.ClaimedTrack(source="songs", id="song:y", title="t", uri="nothing:y", field="f")
    await service.play(player(), c.Play(track=wrong))
    await opened(service)
    [failed] = sink.of(ev.TrackFailed)
    assert failed.message == "field `f`: no source can load 'nothing:y' (sources: songs)"
    assert [e.reason for e in sink.of(ev.TrackEnded)] == ["replaced"]
    assert engine(service).of(m.Stop), "the replaced track is stopped in the engine"


async def test_bad_play_commands_change_nothing(service: NodeService) -> None:
    await ready(service)
    with pytest.raises(BadRequest, match="`endTime`: expected > 5"):
        bad = c.Play(track=c.TrackQuery(query="song:a"), start_position=5, end_position=5,
                     end_field="endTime")  # fmt: skip
        await service.play(player(), bad)
    with pytest.raises(BadRequest, match="`position`: expected <= 60"):
        bad = c.Play(track=c.TrackQuery(query="song:a"), start_position=61, start_field="position")
        await service.play(player(), bad)
    with pytest.raises(BadRequest, match="`identifier`: no source can load 'nothing:here'"):
        await service.play(player(), c.Play(track=c.TrackQuery(query="nothing:here")))
    assert (await service.state(player(), c.GetState())).opening is None


async def test_resume_policy_of_a_session(service: NodeService) -> None:
    sink = await ready(service)
    cfg = await service.configure_session(NAMED, c.ConfigureSession(resumable=False, timeout=7))
    assert (cfg.resumable, cfg.timeout) == (False, 7.0)
    service.disconnect(NAMED, sink, [])
    assert not service.has_session(NAMED), "not resumable: gone with its connection"
    assert engine(service).of(m.Disconnect), "its voice clients too"
    sink = await ready(service)
    await service.configure_session(NAMED, c.ConfigureSession(resumable=True, timeout=0.05))
    service.disconnect(NAMED, sink, [])
    assert service.has_session(NAMED)
    await asyncio.sleep(0.1)
    assert not service.has_session(NAMED), "expired after its timeout"


async def test_resolve_gives_the_load_type_as_a_value(service: NodeService) -> None:
    found = await service.resolve(None, c.Resolve(query="song:a"))
    assert found.kind == "track" and found.tracks[0].title == "song:a"
    nothing: Any = await service.resolve(None, c.Resolve(query="nothing:here"))
    assert nothing.kind == "error" and "no source can load" in nothing.error
    assert await service.source_names(None, c.GetSources()) == ("songs",)
