"""The control websocket (seed 002), driven by a real aiohttp client against the real node."""

from __future__ import annotations

import asyncio

from audionode import __version__
from audionode.control.commands import Destroy, PlayerRef
from audionode.control.events import VoiceChannelChanged
from tests.conftest import NodeFactory, NodeHarness, eventually

GUILD = "111111111111111111"
BOT = "1000"


def vsu(
    user_id: str = BOT, guild_id: str = GUILD, channel_id: str | None = "222", session: str = "s1"
) -> dict:
    return {
        "op": 0,
        "s": 5,
        "t": "VOICE_STATE_UPDATE",
        "d": {
            "guild_id": guild_id,
            "user_id": user_id,
            "channel_id": channel_id,
            "session_id": session,
        },
    }


def vserver(
    guild_id: str = GUILD,
    token: str = "secret-voice-token",
    endpoint: str | None = "ws://127.0.0.1:1",
) -> dict:
    return {
        "op": 0,
        "t": "VOICE_SERVER_UPDATE",
        "d": {"guild_id": guild_id, "token": token, "endpoint": endpoint},
    }


async def test_missing_authorization_gets_forbidden_then_4001(node: NodeHarness) -> None:
    async with node.ws(password=None, hello=False) as ws:
        assert await ws.expect("FORBIDDEN") == "missing Authorization header"
        code, _ = await ws.closed()
        assert code == 4001


async def test_wrong_password_gets_forbidden_then_4001(node: NodeHarness) -> None:
    async with node.ws(password="nope", hello=False) as ws:
        assert "wrong password" in await ws.expect("FORBIDDEN")
        assert (await ws.closed())[0] == 4001


async def test_bearer_password_is_accepted(node: NodeHarness) -> None:
    async with node.ws(password="Bearer test-password", hello=False) as ws:
        hello = await ws.expect("HELLO")
        assert hello == {"heartbeat_interval": 15.0, "version": __version__}


async def test_heartbeat_echoes_any_payload(node: NodeHarness) -> None:
    async with node.ws() as ws:
        for d in (1234, None, {"a": [1, 2]}, "x"):
            await ws.send("HEARTBEAT", d)
            assert await ws.expect("HEARTBEAT_ACK") == d


async def test_silent_socket_is_closed_with_4003(node_factory: NodeFactory) -> None:
    async with node_factory(heartbeat_interval=0.2) as node, node.ws() as ws:
        loop = asyncio.get_running_loop()
        start = loop.time()
        code, _ = await ws.closed(timeout=5)
        assert code == 4003
        assert loop.time() - start >= 0.4  # never before 2 x heartbeat_interval


async def test_heartbeats_keep_the_socket_open(node_factory: NodeFactory) -> None:
    async with node_factory(heartbeat_interval=0.2) as node, node.ws() as ws:
        for _ in range(12):  # 1.2 s, well past the 0.4 s + grace limit
            await ws.send("HEARTBEAT", 1)
            await ws.expect("HEARTBEAT_ACK")
            await asyncio.sleep(0.1)


async def test_ops_before_identify_get_not_identified(node: NodeHarness) -> None:
    async with node.ws() as ws:
        for op in ("getState", "getQueue", "VC_DESTROY", "DISCORD_EVENT", "GET_STATUS"):
            await ws.send(op, {"guild_id": GUILD})
            d = await ws.expect(op)
            assert d["error"]["code"] == "NOT_IDENTIFIED"
        await ws.send("HEARTBEAT", 7)
        assert await ws.expect("HEARTBEAT_ACK") == 7


async def test_identify_then_second_identify_is_refused(node: NodeHarness) -> None:
    async with node.ws() as ws:
        d = await ws.identify(BOT, 3)
        assert d == {"user_id": BOT, "shard_id": 3, "resumed": False}
        await ws.send("IDENTIFY", {"user_id": BOT})
        d = await ws.expect("IDENTIFY")
        assert d["error"]["code"] == "ALREADY_IDENTIFIED"
        await ws.send("GET_STATUS")
        assert (await ws.expect("STATUS"))["sessions"] == 1


async def test_not_json_closes_with_4002(node: NodeHarness) -> None:
    async with node.ws() as ws:
        await ws.ws.send_str("{not json")
        assert (await ws.closed())[0] == 4002


async def test_binary_frame_closes_with_4002(node: NodeHarness) -> None:
    async with node.ws() as ws:
        await ws.ws.send_bytes(b"\x00\x01")
        assert (await ws.closed())[0] == 4002


async def test_malformed_frames_get_precise_errors_and_socket_stays(node: NodeHarness) -> None:
    async with node.ws() as ws:
        await ws.ws.send_str("[1, 2]")
        err = (await ws.recv())["d"]["error"]
        assert err["code"] == "BAD_REQUEST" and "JSON object" in err["message"]
        await ws.ws.send_str('{"d": {}}')
        assert "`op` is required" in (await ws.recv())["d"]["error"]["message"]
        await ws.send("NOPE", {})
        err = await ws.expect("NOPE")
        assert err["error"]["code"] == "UNKNOWN_OP" and "IDENTIFY" in err["error"]["message"]
        await ws.send("IDENTIFY", {})
        assert (await ws.expect("IDENTIFY"))["error"]["message"] == "field `d.user_id` is required"
        await ws.send("IDENTIFY", {"user_id": "abc"})
        msg = (await ws.expect("IDENTIFY"))["error"]["message"]
        assert msg.startswith("field `d.user_id`: expected `int`")
        await ws.send("IDENTIFY", {"user_id": 1, "shard_id": "x"})
        assert "`d.shard_id`" in (await ws.expect("IDENTIFY"))["error"]["message"]
        await ws.identify()
        await ws.send("getState", {"guild_id": []})
        assert "`d.guild_id`" in (await ws.expect("getState"))["error"]["message"]
        await ws.send("getState", "x")
        assert "expected `object`" in (await ws.expect("getState"))["error"]["message"]
        await ws.send("getState", {"guild_id": 5})
        assert (await ws.expect("getState"))["error"]["code"] == "VOICE_CLIENT_NOT_FOUND"
        await ws.send("DISCORD_EVENT", {"t": "VOICE_SERVER_UPDATE", "d": {"guild_id": GUILD}})
        assert "`d.d.token` is required" in (await ws.expect("DISCORD_EVENT"))["error"]["message"]
        await ws.send("DISCORD_EVENT", vsu(session=None))  # type: ignore[arg-type]
        assert "`d.d.session_id`" in (await ws.expect("DISCORD_EVENT"))["error"]["message"]
        await ws.send("HEARTBEAT", "still here")
        assert await ws.expect("HEARTBEAT_ACK") == "still here"


async def test_voice_events_create_voice_client_and_state(node: NodeHarness) -> None:
    async with node.ws() as ws:
        await ws.identify(BOT)
        await ws.send("DISCORD_EVENT", vsu(user_id="999"))  # another user: dropped
        await ws.send("DISCORD_EVENT", {"t": "MESSAGE_CREATE", "d": {"content": "hi"}})
        await ws.send("DISCORD_EVENT", vsu())
        created = await ws.expect("VC_CREATED")
        assert created["guild_id"] == GUILD and len(created["id"]) == 32
        assert await ws.expect("VC_CHANNEL_EDITED") == {"guild_id": GUILD, "channel_id": "222"}
        await ws.send("DISCORD_EVENT", vserver())
        await ws.send("getState", {"guild_id": GUILD})
        state = await ws.expect("getState")
        assert state["id"] == created["id"] and state["channel_id"] == "222"
        assert state["state"] == 0 and state["state_name"] == "DISCONNECTED"
        assert state["voice"] == {
            "session_id": "s1",
            "endpoint": "ws://127.0.0.1:1",
            "has_token": True,
        }
        assert "secret-voice-token" not in str(state)  # the voice token never leaves the node
        await ws.send("getQueue", {"guild_id": int(GUILD)})
        assert await ws.expect("getQueue") == {"guild_id": GUILD, "entries": []}
        await ws.send("DISCORD_EVENT", vsu(channel_id="333", session="s2"))
        assert await ws.expect("VC_CHANNEL_EDITED") == {"guild_id": GUILD, "channel_id": "333"}
        await ws.send("VC_DESTROY", {"guild_id": GUILD})
        assert await ws.expect("VC_DESTROYED") == {"guild_id": GUILD}
        await ws.send("getState", {"guild_id": GUILD})
        assert (await ws.expect("getState"))["error"]["code"] == "VOICE_CLIENT_NOT_FOUND"
        await ws.send("VC_DESTROY", {"guild_id": GUILD})
        assert (await ws.expect("VC_DESTROY"))["error"]["code"] == "VOICE_CLIENT_NOT_FOUND"


async def test_voice_server_update_alone_creates_the_voice_client(node: NodeHarness) -> None:
    async with node.ws() as ws:
        await ws.identify(BOT)
        await ws.send("DISCORD_EVENT", vserver(endpoint=None))
        assert (await ws.expect("VC_CREATED"))["guild_id"] == GUILD
        await ws.send("getState", {"guild_id": GUILD})
        state = await ws.expect("getState")
        assert state["channel_id"] is None and state["voice"]["has_token"] is True


async def test_resume_within_vc_timeout_replays_kept_events(node_factory: NodeFactory) -> None:
    async with node_factory(vc_timeout=5) as node:
        async with node.ws() as ws:
            await ws.identify(BOT, 0)
            await ws.send("DISCORD_EVENT", vsu())
            vc_id = (await ws.expect("VC_CREATED"))["id"]
            await ws.expect("VC_CHANNEL_EDITED")
        service = node.node.service
        await eventually(lambda: all(s.sink is None for s in service.sessions.by_ref.values()))
        ref = PlayerRef(user_id=int(BOT), shard_id=0, guild_id=int(GUILD))
        await service.destroy(ref, Destroy())  # an event while no socket is attached
        async with node.ws() as ws:
            d = await ws.identify(BOT, 0)
            assert d["resumed"] is True
            resumed = await ws.expect("RESUMED")
            assert resumed == {"voice_clients": [], "dropped": 0}
            assert await ws.expect("VC_DESTROYED") == {"guild_id": GUILD}
        assert vc_id


async def test_resumed_lists_voice_clients_in_seed_form(node_factory: NodeFactory) -> None:
    async with node_factory(vc_timeout=5) as node:
        async with node.ws() as ws:
            await ws.identify(BOT)
            await ws.send("DISCORD_EVENT", vsu())
            await ws.send("DISCORD_EVENT", vsu(guild_id="42", channel_id="43"))
            await ws.send("DISCORD_EVENT", vsu(guild_id="42", channel_id=None))
            for _ in range(5):
                await ws.recv()
        async with node.ws() as ws:
            await ws.identify(BOT)
            resumed = await ws.expect("RESUMED")
            assert sorted(resumed["voice_clients"], key=str) == [[GUILD, "222"], ["42", None]]
            # ... and each voice client's id again, as VC_CREATED (a client that lost its
            # state re-learns them; the seed's list form has no room for ids).
            created = [await ws.expect("VC_CREATED") for _ in range(2)]
            assert sorted(d["guild_id"] for d in created) == [GUILD, "42"]
            assert all(len(d["id"]) == 32 for d in created)


async def test_kept_events_are_bounded_oldest_dropped(node_factory: NodeFactory) -> None:
    async with node_factory(vc_timeout=5, max_kept_events=3) as node:
        async with node.ws() as ws:
            await ws.identify(BOT)
        service = node.node.service
        await eventually(lambda: all(s.sink is None for s in service.sessions.by_ref.values()))
        session = next(iter(service.sessions.by_ref.values()))
        for i in range(5):
            session.emit(VoiceChannelChanged(guild_id=i, channel_id=None))
        async with node.ws() as ws:
            await ws.identify(BOT)
            assert (await ws.expect("RESUMED"))["dropped"] == 2
            got = [(await ws.expect("VC_CHANNEL_EDITED"))["guild_id"] for _ in range(3)]
            assert got == ["2", "3", "4"]


async def test_session_expires_after_vc_timeout(node_factory: NodeFactory) -> None:
    async with node_factory(vc_timeout=0.3) as node:
        async with node.ws() as ws:
            await ws.identify(BOT)
            await ws.send("DISCORD_EVENT", vsu())
            await ws.expect("VC_CREATED")
        service = node.node.service
        await eventually(lambda: not service.sessions.by_ref, timeout=5)
        status, body = await node.get("/status")
        assert status == 200 and body["sessions"] == 0 and body["players"] == 0
        async with node.ws() as ws:
            assert (await ws.identify(BOT))["resumed"] is False
            await ws.send("getState", {"guild_id": GUILD})
            assert (await ws.expect("getState"))["error"]["code"] == "VOICE_CLIENT_NOT_FOUND"


async def test_second_socket_takes_over_the_session(node: NodeHarness) -> None:
    async with node.ws() as first:
        await first.identify(BOT, 1)
        await first.send("DISCORD_EVENT", vsu())
        await first.expect("VC_CREATED")
        await first.expect("VC_CHANNEL_EDITED")
        async with node.ws() as second:
            assert (await second.identify(BOT, 1))["resumed"] is True
            assert (await second.expect("RESUMED"))["voice_clients"] == [[GUILD, "222"]]
            assert (await second.expect("VC_CREATED"))["guild_id"] == GUILD
            code, reason = await first.closed()
            assert code == 4004 and "another connection" in reason
            await second.send("VC_DESTROY", {"guild_id": GUILD})
            assert await second.expect("VC_DESTROYED") == {"guild_id": GUILD}


async def test_shards_are_separate_sessions(node: NodeHarness) -> None:
    async with node.ws() as a, node.ws() as b:
        assert (await a.identify(BOT, 0))["resumed"] is False
        assert (await b.identify(BOT, 1))["resumed"] is False
        await a.send("DISCORD_EVENT", vsu())
        await a.expect("VC_CREATED")
        await b.send("getState", {"guild_id": GUILD})
        assert (await b.expect("getState"))["error"]["code"] == "VOICE_CLIENT_NOT_FOUND"
