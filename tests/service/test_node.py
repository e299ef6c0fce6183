"""NodeService with a fake engine and an in-test source: commands in, typed results, typed
events at the session's sink and typed engine commands out. No sockets, no server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from audionode.control import commands as c
from audionode.control import events as ev
from audionode.control.events import CloseReason, ControlEvent
from audionode.engine import messages as m
from audionode.errors import BadRequest, Conflict, Forbidden, NotFound
from audionode.playable import Playable
from audionode.protocol.filters import parse_filters
from audionode.service import NodeService
from audionode.sources.api import BaseSource, LoadResult, Track
from audionode.sources.loader import SourceManager
from tests.conftest import make_config

USER, GUILD = 10, 20


class FakeEngine:
    """Takes commands like an EngineHost; the test plays the engine's part with events."""

    def __init__(self) -> None:
        self.commands: list[m.Command] = []

    def send(self, command: m.Command) -> None:
        self.commands.append(command)

    def of(self, kind: type[Any]) -> list[Any]:
        return [x for x in self.commands if isinstance(x, kind)]

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def stats(self) -> dict[str, Any]:
        return {"fake": True}

    def admit(self, key: int) -> None: ...

    def release(self, key: int) -> None: ...


class Sink:
    def __init__(self) -> None:
        self.events: list[ControlEvent] = []
        self.closed: CloseReason | None = None

    def deliver(self, event: ControlEvent) -> bool:
        if self.closed is not None:
            return False
        self.events.append(event)
        return True

    def close(self, reason: CloseReason) -> None:
        self.closed = reason

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class Songs(BaseSource):
    """``song:<name>`` is a 60 s track; ``live:<name>`` a live stream."""

    name = "songs"

    def handles(self, query: str) -> bool:
        return query.startswith(("song:", "live:"))

    async def load(self, query: str) -> LoadResult | None:
        live = query.startswith("live:")
        track = Track(
            source=self.name,
            id=query,
            title=query,
            duration_ms=None if live else 60_000,
            is_live=live,
        )
        return LoadResult.of_track(track)

    async def open(self, track: Track) -> Playable:
        return Playable.from_bytes(b"audio of " + track.id.encode(), format="wav")


SESSION = c.SessionRef(user_id=USER)


@pytest.fixture
async def service() -> AsyncIterator[NodeService]:
    svc = NodeService(make_config(control={"max_players": 2, "max_sessions_per_user": 2}))
    svc.engine = FakeEngine()
    svc.sources = SourceManager([Songs()])
    yield svc
    await svc.close()


def engine(svc: NodeService) -> FakeEngine:
    assert isinstance(svc.engine, FakeEngine)
    return svc.engine


async def joined(svc: NodeService, guild: int = GUILD) -> tuple[Sink, c.PlayerRef]:
    sink = Sink()
    if SESSION not in svc.sessions.by_ref:
        await svc.identify(SESSION, sink)
    else:
        sink = svc.sessions.by_ref[SESSION].sink  # type: ignore[assignment]
    await svc.voice_state(SESSION, c.VoiceState(guild_id=guild, session_id="s", channel_id=30))
    await svc.voice_server(SESSION, c.VoiceServer(guild_id=guild, token="t", endpoint="e:1"))
    [created] = [e for e in sink.of(ev.VoiceClientCreated) if e.guild_id == guild]
    return sink, c.PlayerRef(user_id=USER, guild_id=guild, voice_client_id=created.voice_client_id)


async def playing(svc: NodeService, ref: c.PlayerRef, query: str) -> m.Play:
    await svc.load(ref, c.Load(query=query))
    await asyncio.sleep(0)  # the open task
    await asyncio.sleep(0)
    play = engine(svc).of(m.Play)[-1]
    svc.on_engine_event(m.TrackStarted(player=play.player, serial=play.serial))
    return play


async def test_voice_updates_create_the_voice_client_and_connect(service: NodeService) -> None:
    sink, ref = await joined(service)
    assert [type(e) for e in sink.events] == [ev.VoiceClientCreated, ev.VoiceChannelChanged]
    [connect] = engine(service).of(m.Connect)
    assert (connect.guild_id, connect.user_id, connect.channel_id, connect.token) == (
        GUILD,
        USER,
        30,
        "t",
    )
    state = await service.state(ref, c.GetState())
    assert state.state.name == "DISCONNECTED" and state.voice.has_token


async def test_a_load_plays_and_reports_typed_events(service: NodeService) -> None:
    sink, ref = await joined(service)
    queued = await service.load(ref, c.Load(query="song:a"))
    assert [e.track.title for e in queued.entries] == ["song:a"] and not queued.as_list
    play = await playing(service, ref, "song:b")
    assert play.source == Playable.from_bytes(b"audio of song:a", format="wav")
    [started] = sink.of(ev.TrackStarted)
    assert started.current.entry.track.title == "song:a" and started.current.position == 0.0
    queue = await service.queue(ref, c.GetQueue())
    assert [e.track.title for e in queue.entries] == ["song:b"]


async def test_the_voice_client_id_is_checked_and_the_shard_may_be_left_out(
    service: NodeService,
) -> None:
    _, ref = await joined(service)
    with pytest.raises(Forbidden):
        await service.options(
            c.PlayerRef(user_id=USER, guild_id=GUILD, voice_client_id="0" * 32), c.GetOptions()
        )
    no_shard = c.PlayerRef(
        user_id=USER, guild_id=GUILD, shard_given=False, voice_client_id=ref.voice_client_id
    )
    assert (await service.options(no_shard, c.GetOptions())).volume == 1.0
    with pytest.raises(NotFound):
        await service.options(c.PlayerRef(user_id=99, guild_id=GUILD), c.GetOptions())


async def test_filters_go_to_the_engine_and_a_refusal_comes_back_as_an_event(
    service: NodeService,
) -> None:
    sink, ref = await joined(service)
    filters = parse_filters({"timescale": {"speed": 1.25}})
    options = await service.set_options(ref, c.SetOptions(volume=0.5, filters=filters))
    assert options.volume == 0.5 and options.filters == filters
    [set_filters] = engine(service).of(m.SetFilters)
    assert set_filters.filters["timescale"]["speed"] == 1.25
    service.on_engine_event(
        m.CommandFailed(player=set_filters.player, command="SetFilters", message="no")
    )
    [err] = sink.of(ev.PlayerError)
    assert (
        err.command == "SetFilters" and (await service.options(ref, c.GetOptions())).filters is None
    )


async def test_seeking_a_live_stream_is_refused_before_the_engine_hears_of_it(
    service: NodeService,
) -> None:
    _, ref = await joined(service)
    await playing(service, ref, "live:radio")
    with pytest.raises(Conflict) as err:
        await service.seek(ref, c.Seek(position=5))
    assert err.value.code == "NOT_SEEKABLE" and engine(service).of(m.Seek) == []


async def test_resume_hands_back_voice_clients_and_kept_events(service: NodeService) -> None:
    sink, ref = await joined(service)
    service.disconnect(SESSION, sink, [])
    await service.set_options(ref, c.SetOptions(volume=0.3))
    await service.destroy(ref, c.Destroy())  # an event while nobody listens
    again = Sink()
    identified, kept = await service.identify(SESSION, again)
    assert identified.resumed and identified.voice_clients == ()
    assert [type(e) for e in kept] == [ev.VoiceClientDestroyed]
    assert engine(service).of(m.Disconnect)[-1].player == engine(service).of(m.Connect)[0].player


async def test_a_second_identify_takes_the_session_over(service: NodeService) -> None:
    first, ref = await joined(service)
    second = Sink()
    identified, _ = await service.identify(SESSION, second)
    assert first.closed is CloseReason.TAKEN_OVER
    assert [v.voice_client_id for v in identified.voice_clients] == [ref.voice_client_id]


async def test_bounds_on_sessions_and_players(service: NodeService) -> None:
    await joined(service, 1)
    await joined(service, 2)
    with pytest.raises(Conflict) as err:
        await joined(service, 3)
    assert err.value.code == "TOO_MANY_PLAYERS"
    await service.identify(c.SessionRef(user_id=USER, shard_id=1), Sink())
    with pytest.raises(Conflict) as err:
        await service.identify(c.SessionRef(user_id=USER, shard_id=2), Sink())
    assert err.value.code == "TOO_MANY_SESSIONS"


async def test_tracks_come_back_only_as_tokens_this_node_issued(service: NodeService) -> None:
    _, ref = await joined(service)
    found = await service.search(None, c.Search(query="song:x"))
    token = found.tracks[0].token
    put = c.Put(tracks=(c.TrackIn(token=token, field="source.encoded", start_position=30),))
    queued = await service.put(ref, put)
    assert queued.entries[0].start_position == 30 and queued.entries[0].track.title == "song:x"
    with pytest.raises(BadRequest, match="expected <= 60"):
        bad = c.TrackIn(token=token, field="source.encoded", start_position=61)
        await service.put(ref, c.Put(tracks=(bad,)))
    with pytest.raises(BadRequest, match="issued by this node"):
        await service.put(ref, c.Put(tracks=(c.TrackIn(token=token[:-3] + "AAA", field="x"),)))
