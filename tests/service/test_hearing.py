"""The service's hearing commands (issue 15) with the test playing the engine: the seed-004
refusals, the peer policy, the bounds, and the engine's reports turned into typed events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from audionode.control import commands as c
from audionode.control import events as ev
from audionode.engine import messages as m
from audionode.errors import AudionodeError, BadRequest, Conflict, Forbidden, NotFound
from audionode.service import NodeService
from audionode.service.hearing import OutOfCapacity
from audionode.sources.loader import SourceManager
from tests.conftest import make_config
from tests.service.test_node import USER, FakeEngine, Songs, engine, joined

ROOM = "!room:example.org"
OPEN = c.OpenVdpChannel(room_id=ROOM, format="opus", version=1)
VDP = {"enabled": True, "allowed_peers": ["127.0.0.0/8"], "max_channels": 2}


@pytest.fixture
async def service() -> AsyncIterator[NodeService]:
    svc = NodeService(
        make_config(
            voice={"receive": True},
            vdp=VDP,
            layers={"max_per_player": 2},
            recording={"path": "/nonexistent/recordings"},
        )
    )
    svc.engine = FakeEngine()
    svc.sources = SourceManager([Songs()])
    yield svc
    await svc.close()


def connected(svc: NodeService, ref: c.PlayerRef) -> int:
    key = svc.sessions.find(ref)[1].key
    svc.on_engine_event(m.VoiceConnected(player=key, ssrc=1, mode="x", dave_protocol_version=1))
    return key


async def answered(svc: NodeService, call: Any, answer: m.Event) -> Any:
    """Run a command that waits for the engine, answering it with ``answer``."""
    task = asyncio.create_task(call)
    await asyncio.sleep(0)
    svc.on_engine_event(answer)
    return await task


async def test_the_seed_refusals_come_in_order(service: NodeService) -> None:
    sink, ref = await joined(service)
    with pytest.raises(AudionodeError) as err:
        await service.hearing.open_vdp(ref, c.OpenVdpChannel(room_id=ROOM, format="pcm", version=1))
    assert (err.value.code, err.value.status) == ("NO_CALL_CAPABILITY", 422)
    with pytest.raises(Conflict, match="not up") as err:
        await service.hearing.open_vdp(ref, OPEN)
    assert err.value.code == "DISCORD_LIMITATION"
    key = connected(service, ref)
    view = await answered(
        service,
        service.hearing.open_vdp(ref, OPEN),
        m.VdpOpened(player=key, room_id=ROOM, address="127.0.0.1:5000"),
    )
    assert (view.address, view.peer) == ("127.0.0.1:5000", None)
    assert sink.of(ev.VdpChannelOpened)[0].address == "127.0.0.1:5000"
    assert await service.hearing.open_vdp(ref, OPEN) == view, "asked again: the same channel"
    _, other = await joined(service, guild=21)
    connected(service, other)
    with pytest.raises(Forbidden) as err:
        await service.hearing.open_vdp(other, OPEN)
    assert err.value.code == "NO_PERMISSION"
    await answered(
        service,
        service.hearing.open_vdp(other, c.OpenVdpChannel(room_id="!b:x", format="opus", version=1)),
        m.VdpOpened(player=key + 1, room_id="!b:x", address="127.0.0.1:5001"),
    )
    with pytest.raises(OutOfCapacity):  # vdp.max_channels = 2
        await service.hearing.open_vdp(
            other, c.OpenVdpChannel(room_id="!c:x", format="opus", version=1)
        )
    await service.voice_state(USER_SESSION, c.VoiceState(guild_id=21, session_id="s"))
    with pytest.raises(Conflict) as err:
        await service.hearing.open_vdp(
            other, c.OpenVdpChannel(room_id="!d:x", format="opus", version=1)
        )
    assert err.value.code == "NOT_BRIDGED"


USER_SESSION = c.SessionRef(user_id=USER)


async def test_capability_needs_vdp_enabled_and_receive() -> None:
    svc = NodeService(make_config(vdp={"enabled": True}))
    svc.engine = FakeEngine()
    try:
        _, ref = await joined(svc)
        with pytest.raises(AudionodeError) as err:
            await svc.hearing.open_vdp(ref, OPEN)
        assert err.value.code == "NO_CALL_CAPABILITY"
    finally:
        await svc.close()


async def test_the_peer_is_checked_and_a_broken_channel_is_reported(service: NodeService) -> None:
    sink, ref = await joined(service)
    key = connected(service, ref)
    await answered(
        service,
        service.hearing.open_vdp(ref, OPEN),
        m.VdpOpened(player=key, room_id=ROOM, address="127.0.0.1:5000"),
    )
    with pytest.raises(Forbidden, match="allowed_peers"):
        await service.hearing.set_vdp_peer(ref, c.SetVdpPeer(room_id=ROOM, host="10.1.2.3", port=9))
    with pytest.raises(BadRequest, match="IPv4"):
        await service.hearing.set_vdp_peer(ref, c.SetVdpPeer(room_id=ROOM, host="::1", port=9))
    with pytest.raises(NotFound):
        await service.hearing.set_vdp_peer(
            ref, c.SetVdpPeer(room_id="!x:y", host="127.0.0.1", port=9)
        )
    view = await service.hearing.set_vdp_peer(
        ref, c.SetVdpPeer(room_id=ROOM, host="127.0.0.5", port=9)
    )
    assert view.peer == "127.0.0.5:9"
    assert engine(service).of(m.SetVdpPeer)[-1] == m.SetVdpPeer(
        player=key, room_id=ROOM, host="127.0.0.5", port=9
    )
    service.on_engine_event(m.VdpClosed(player=key, room_id=ROOM, reason="peer_timeout"))
    [closed] = sink.of(ev.VdpChannelClosed)
    assert (closed.room_id, closed.reason) == (ROOM, "peer_timeout")
    again = await answered(  # renegotiated: the room is free again
        service,
        service.hearing.open_vdp(ref, OPEN),
        m.VdpOpened(player=key, room_id=ROOM, address="127.0.0.1:5002"),
    )
    assert again.address == "127.0.0.1:5002"
    service.on_worker_lost(0, {key})
    assert sink.of(ev.VdpChannelClosed)[-1].reason == "engine_restarted"


async def test_layers_are_bounded_and_their_reports_become_events(service: NodeService) -> None:
    sink, ref = await joined(service)
    first = await service.hearing.add_layer(ref, c.AddLayer(query="song:a", volume=0.5))
    second = await service.hearing.add_layer(ref, c.AddLayer(query="song:b", duck=0.3))
    assert (first.id, second.id) == (1, 2)
    with pytest.raises(Conflict) as err:
        await service.hearing.add_layer(ref, c.AddLayer(query="song:c"))
    assert err.value.code == "TOO_MANY_LAYERS"
    [add, _] = engine(service).of(m.AddLayer)
    assert (add.layer, add.volume, add.duck) == (1, 0.5, None)
    service.on_engine_event(m.LayerStarted(player=add.player, layer=1))
    service.on_engine_event(m.LayerEnded(player=add.player, layer=1, reason="finished"))
    service.on_engine_event(m.LayerEnded(player=add.player, layer=-1, reason="stopped"))
    assert [e.layer.playing for e in sink.of(ev.LayerStarted)] == [True]
    assert [(e.layer.id, e.reason) for e in sink.of(ev.LayerEnded)] == [(1, "finished")]
    assert [layer.id for layer in (await service.hearing.layers(ref, c.GetLayers())).layers] == [2]
    await service.hearing.remove_layer(ref, c.RemoveLayer(layer=2))
    assert engine(service).of(m.RemoveLayer)[-1].layer == 2
    with pytest.raises(NotFound):
        await service.hearing.remove_layer(ref, c.RemoveLayer(layer=9))


async def test_a_recording_that_cannot_start_is_the_requests_error(service: NodeService) -> None:
    sink, ref = await joined(service)
    with pytest.raises(Conflict, match="not connected"):
        await service.hearing.record(ref, c.Record(action="start"))
    key = connected(service, ref)
    task = asyncio.create_task(service.hearing.record(ref, c.Record(action="start")))
    await asyncio.sleep(0)
    [start] = engine(service).of(m.StartRecording)
    assert start.name == start.recording and "/" not in start.name
    service.on_engine_event(
        m.RecordingStopped(player=key, recording=start.recording, reason="error", message="EACCES")
    )
    with pytest.raises(AudionodeError, match="EACCES"):
        await task
    assert not sink.of(ev.RecordingStopped), "no RECORDING_STOPPED for a start that failed"
    with pytest.raises(Conflict):
        await service.hearing.record(ref, c.Record(action="stop"))


async def test_an_engine_that_refuses_the_command_answers_the_waiting_request(
    service: NodeService,
) -> None:
    _, ref = await joined(service)
    key = connected(service, ref)
    failed = m.CommandFailed(player=key, command="OpenVdp", message="voice.receive is off")
    with pytest.raises(OutOfCapacity, match=r"voice\.receive is off"):
        await answered(service, service.hearing.open_vdp(ref, OPEN), failed)
    assert ROOM not in service.hearing._rooms, "the room is free again"
