"""Issue 11 item 2, the control plane's bounds, attacked on a real node over loopback: each
attack gets a precise 4xx or close code, and the node keeps answering ``/health`` at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import websockets
from websockets.asyncio.client import connect

from tests.conftest import PASSWORD, NodeFactory, NodeHarness, eventually
from tests.web.test_discodo_rest import BOT, GUILD, Rest, bot


async def healthy(node: NodeHarness) -> None:
    """The node answers /health within 1 s."""
    async with asyncio.timeout(1):
        assert await node.get("/health", password=None) == (200, {"status": "ok"})


@contextlib.asynccontextmanager
async def limited(node_factory: NodeFactory, **control: Any) -> AsyncIterator[NodeHarness]:
    async with node_factory(control=control, sources={"plugins": ["tone"]}) as node:
        yield node


async def test_a_body_over_max_body_bytes_is_413(node_factory: NodeFactory) -> None:
    async with limited(node_factory, max_body_bytes=4096) as node, bot(node) as (_, rest):
        status, body = await rest.call("POST", "/context", {"context": {"x": "a" * 5000}})
        assert status == 413 and body["error"]["code"] == "PAYLOAD_TOO_LARGE"
        assert (await rest.call("POST", "/context", {"context": {"x": "a" * 100}}))[0] == 200
        await healthy(node)


async def test_json_nested_deeper_than_the_limit_is_refused(node_factory: NodeFactory) -> None:
    async with limited(node_factory, max_json_depth=16) as node, bot(node) as (ws, rest):
        deep: Any = "x"
        for _ in range(40):
            deep = [deep]
        status, body = await rest.call("POST", "/context", {"context": {"d": deep}})
        assert (
            status == 400 and body["error"]["message"] == "body: JSON nested deeper than 16 levels"
        )
        very_deep = b'{"context": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
        status, body = await rest.call("POST", "/context", raw=very_deep)
        assert status == 400 and "nested deeper than 16" in body["error"]["message"]
        await ws.send("getState", {"guild_id": GUILD, "x": deep})
        err = (await ws.expect("getState"))["error"]
        assert err == {"code": "BAD_REQUEST", "message": "frame: JSON nested deeper than 16 levels"}
        await healthy(node)


async def test_a_frame_over_max_frame_bytes_closes_with_1009(node_factory: NodeFactory) -> None:
    async with limited(node_factory, max_frame_bytes=8192) as node, node.ws() as ws:
        await ws.send("HEARTBEAT", "a" * 10_000)
        code, _ = await ws.closed()
        assert code == 1009
        await healthy(node)


async def test_a_peer_that_does_not_read_is_closed_with_4008(node_factory: NodeFactory) -> None:
    """A socket whose peer stops reading: the node queues at most max_outbound_bytes for it,
    then closes it with 4008 (after what was already on its way); the session lives on,
    detached, keeping the events it missed."""
    async with limited(node_factory, max_outbound_bytes=1 << 18) as node:
        sock = socket.create_connection(("127.0.0.1", node.node.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 17)  # above the MSS (below)
        headers = {"Authorization": PASSWORD}
        url = f"ws://127.0.0.1:{node.node.port}/ws"
        async with connect(
            url, sock=sock, additional_headers=headers, max_queue=1, max_size=None
        ) as ws:
            await ws.recv()  # HELLO
            await ws.send(json.dumps({"op": "IDENTIFY", "d": {"user_id": BOT}}))
            await ws.recv()  # IDENTIFIED
            state = {"guild_id": GUILD, "user_id": BOT, "channel_id": "9", "session_id": "s"}
            await ws.send(
                json.dumps({"op": "DISCORD_EVENT", "d": {"t": "VOICE_STATE_UPDATE", "d": state}})
            )
            vc_id = json.loads(await ws.recv())["d"]["id"]
            await ws.recv()  # VC_CHANNEL_EDITED
            rest = Rest(node, {"Authorization": PASSWORD, "User-ID": BOT, "Guild-ID": GUILD,
                               "VoiceClient-ID": vc_id})  # fmt: skip
            assert (await rest.call("POST", "/context", {"context": {"x": "a" * 500_000}}))[
                0
            ] == 200
            for _ in range(40):  # 20 MB of getState replies asked for in 2 KB; none read
                await ws.send(json.dumps({"op": "getState", "d": {"guild_id": GUILD}}))
            service = node.node.service
            await eventually(lambda: next(iter(service.sessions.by_ref.values())).sink is None)
            await healthy(node)
            read = 0
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:  # the backlog, then the close frame
                    read += len(await asyncio.wait_for(ws.recv(), 5))
            assert ws.close_code == 4008 and read < 8 * 1024 * 1024, (ws.close_code, read)


async def test_sessions_players_and_queue_length_are_bounded(node_factory: NodeFactory) -> None:
    async with (
        limited(node_factory, max_sessions_per_user=1, max_players=1, max_queue=2) as node,
        bot(node) as (ws, rest),
    ):
        async with node.ws() as second:
            await second.send("IDENTIFY", {"user_id": BOT, "shard_id": 9})
            err = (await second.expect("IDENTIFY"))["error"]
            assert (
                err["code"] == "TOO_MANY_SESSIONS" and "max_sessions_per_user = 1" in err["message"]
            )
        state = {"guild_id": "777", "user_id": BOT, "channel_id": "9", "session_id": "s"}
        await ws.send("DISCORD_EVENT", {"t": "VOICE_STATE_UPDATE", "d": state})
        reply = await ws.expect("DISCORD_EVENT")
        assert reply["error"]["code"] == "TOO_MANY_PLAYERS"
        for _ in range(3):  # one plays (or waits for the voice connection), two queue
            assert (await rest.call("POST", "/loadSource", {"query": "tone:440"}))[0] == 200
        status, body = await rest.call("POST", "/loadSource", {"query": "tone:440"})
        assert status == 409 and body["error"]["code"] == "QUEUE_FULL"
        await healthy(node)


async def test_huge_numbers_get_4xx_never_500(node: NodeHarness) -> None:
    async with bot(node) as (_, rest):
        for method, path, payload in (
            ("POST", "/seek", {"offset": 1e300}),
            ("POST", "/seek", {"offset": 10**30}),
            ("POST", "/skip", {"offset": 10**30}),
            ("POST", "/options", {"volume": 1e309}),
            ("POST", "/queue", {"source": [], "index": 10**20}),
            ("GET", "/queue/" + "9" * 5000, None),
            ("GET", "/queue/-99999999999999999999", None),
            ("POST", "/queue/0", {"start_position": 1e300}),
            ("GET", "/getSource?query=tone:440%3Fseconds=1e308", None),
        ):
            status, body = await rest.call(method, path, payload)
            assert 400 <= status < 500 and body["error"]["message"], (path, payload, body)
        status, body = await rest.call("POST", "/seek", raw=b'{"offset": 1e999}')
        assert status == 400 and body["error"]["message"] == "body: a number is out of range"
        huge_guild = Rest(node, {**rest.headers, "Guild-ID": "9" * 40})
        status, body = await huge_guild.call("GET", "/options")
        assert status == 400 and "header `Guild-ID`" in body["error"]["message"]
        await healthy(node)


async def test_methods_and_bodies_nobody_expects(node: NodeHarness) -> None:
    async with bot(node) as (_, rest), aiohttp.ClientSession() as http:
        for method in ("HEAD", "OPTIONS", "PUT", "PATCH"):
            async with http.request(method, f"{node.url}/options", headers=rest.headers) as r:
                assert 400 <= r.status < 500, (method, r.status)
        for raw in (b"\xff\xfe", b"null", b"[]", b'"x"', b"{}" * 3, b'{"context": {"a": NaN}}'):
            status, body = await rest.call("POST", "/context", raw=raw)
            assert status == 400 and body["error"]["message"], (raw, body)
        await healthy(node)


async def test_events_kept_for_a_detached_session_are_bounded_in_bytes(
    node_factory: NodeFactory,
) -> None:
    async with node_factory(
        control={"max_kept_bytes": 8192}, sources={"plugins": ["tone"]}, vc_timeout=30
    ) as node:
        async with bot(node) as (ws, rest):
            await ws.ws.close()
            service = node.node.service
            await eventually(lambda: next(iter(service.sessions.by_ref.values())).sink is None)
            track = (await rest.call("GET", "/getSource?query=tone:440"))[1]["source"]
            for i in range(20):  # ~1.5 KB of QUEUE_EVENT each, while nobody listens
                track["context"] = {"n": i, "pad": "x" * 1000}
                assert (await rest.call("POST", "/putSource", {"source": track}))[0] == 200
            session = next(iter(service.sessions.by_ref.values()))
            assert 0 < session.kept_bytes <= 8192
        async with node.ws() as again:
            await again.identify(BOT)
            resumed = await again.expect("RESUMED")
            assert resumed["dropped"] > 10
            await again.expect("VC_CREATED")
            kept = []
            with contextlib.suppress(TimeoutError):
                while True:
                    kept.append(await again.recv(timeout=0.5))
            assert kept and {f["op"] for f in kept} == {"QUEUE_EVENT"}
            assert sum(len(json.dumps(f["d"])) for f in kept) < 2 * 8192
            extends = [f["d"]["args"][0] for f in kept if f["d"]["name"] == "extend"]
            assert extends[-1][-1]["context"]["n"] == 19  # the newest are the ones kept
        await healthy(node)


async def test_an_rpc_peer_that_does_not_read_is_closed_with_4008_and_others_go_on(
    node_factory: NodeFactory,
) -> None:
    """``/rpc`` has the same per-socket byte bound as ``/ws``: a peer asking for big replies
    and reading none is closed with 4008 (after what was already on its way), memory stays
    bounded, and another bot's socket keeps its answers meanwhile."""
    async with limited(node_factory, max_outbound_bytes=1 << 18) as node, bot(node) as (ws, _):
        sock = socket.create_connection(("127.0.0.1", node.node.port))
        # small, but above loopback's MSS (64 KiB): below it, once it was full the window opens
        # again only by the kernel's zero-window probes, seconds apart
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 17)
        url = f"ws://127.0.0.1:{node.node.port}/rpc"
        async with connect(url, sock=sock, max_queue=1, max_size=None) as stalled:

            async def call(w: str, arg: dict[str, Any], n: int | None = None) -> None:
                await stalled.send(json.dumps({"op": 4, "w": w, "a": [arg], "n": n}))

            async def reply(n: int) -> Any:
                while True:
                    frame = json.loads(await asyncio.wait_for(stalled.recv(), 5))
                    if frame.get("op") == 5 and frame.get("n") == n:
                        return frame["r"]

            await stalled.recv()  # HELLO
            await stalled.send(json.dumps({"op": 1, "password": PASSWORD}))
            user = {"user_id": "4243"}
            await call("IDENTIFY", user, 1)
            await reply(1)
            state = {"guild_id": GUILD, "user_id": "4243", "channel_id": "9", "session_id": "t"}
            await call("DISCORD_EVENT", {**user, "t": "VOICE_STATE_UPDATE", "d": state}, 2)
            await reply(2)
            await call("getState", {**user, "guild_id": GUILD}, 3)
            key = {**user, "guild_id": GUILD, "voice_client_id": (await reply(3))["id"]}
            # one reply bigger than the bound goes to a peer that reads it
            await call("setVCContext", {**key, "context": {"x": "a" * 500_000}}, 4)
            await reply(4)
            for n in range(100):  # 20 MB of replies asked for in a few KB; none read
                await call("getVCContext", key, 100 + n)
            async with asyncio.timeout(1):  # the other bot is answered at once meanwhile
                await ws.send("getState", {"guild_id": GUILD})
                await ws.expect("getState")
            service = node.node.service
            await eventually(lambda: service.sessions.by_ref and all(
                s.sink is None for r, s in service.sessions.by_ref.items() if r.user_id == 4243
            ))  # fmt: skip
            await healthy(node)
            read = 0
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:  # the backlog, then the close frame
                    read += len(await asyncio.wait_for(stalled.recv(), 5))
            assert stalled.close_code == 4008 and read < 8 * 1024 * 1024, (
                stalled.close_code,
                read,
            )
