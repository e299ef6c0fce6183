"""Shared fixtures: a real node on an ephemeral loopback port and a real aiohttp client."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from audionode.config import Config, load_config
from audionode.server import RunningNode, start_node

PASSWORD = "test-password"


def make_config(**overrides: Any) -> Config:
    """A config for tests: loopback, port 0, a test password, and any overrides
    (sections as dicts, e.g. ``engine={"workers": 0}``)."""
    base: dict[str, Any] = {
        "password": PASSWORD,
        "port": 0,
        "log_level": "WARNING",
        "engine": {"workers": 0},
    }
    return load_config(None, env={}, overrides={**base, **overrides})


class WsClient:
    """A bot's control socket, as a thin JSON wrapper over an aiohttp websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, op: str, d: Any = None) -> None:
        await self.ws.send_str(json.dumps({"op": op, "d": d}))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, (
            f"expected a text frame, got {msg.type} {msg.data!r}"
        )
        data: dict[str, Any] = json.loads(msg.data)
        return data

    async def expect(self, op: str, timeout: float = 5.0) -> Any:
        frame = await self.recv(timeout)
        assert frame["op"] == op, f"expected {op}, got {frame}"
        return frame["d"]

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, str]:
        """Wait for the close frame; returns (code, reason)."""
        while True:
            msg = await self.ws.receive(timeout=timeout)
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.CLOSING,
            ):
                return self.ws.close_code, str(msg.extra or "")
            assert msg.type == aiohttp.WSMsgType.TEXT, msg

    async def identify(self, user_id: int | str = 1000, shard_id: int | None = None) -> Any:
        await self.send("IDENTIFY", {"user_id": user_id, "shard_id": shard_id})
        return await self.expect("IDENTIFIED")


class NodeHarness:
    def __init__(self, node: RunningNode, http: aiohttp.ClientSession) -> None:
        self.node = node
        self.http = http

    @property
    def url(self) -> str:
        return self.node.url

    @contextlib.asynccontextmanager
    async def ws(
        self, password: str | None = PASSWORD, hello: bool = True
    ) -> AsyncIterator[WsClient]:
        headers = {} if password is None else {"Authorization": password}
        async with self.http.ws_connect(f"{self.url}/ws", headers=headers, autoclose=False) as ws:
            client = WsClient(ws)
            if hello:
                await client.expect("HELLO")
            yield client

    async def get(self, path: str, password: str | None = PASSWORD) -> tuple[int, Any]:
        headers = {} if password is None else {"Authorization": password}
        async with self.http.get(f"{self.url}{path}", headers=headers) as r:
            return r.status, await r.json()


NodeFactory = Callable[..., contextlib.AbstractAsyncContextManager[NodeHarness]]


@pytest.fixture
async def node_factory() -> AsyncIterator[NodeFactory]:
    async with aiohttp.ClientSession() as http:

        @contextlib.asynccontextmanager
        async def factory(**overrides: Any) -> AsyncIterator[NodeHarness]:
            async with start_node(make_config(**overrides)) as node:
                yield NodeHarness(node, http)

        yield factory


@pytest.fixture
async def node(node_factory: NodeFactory) -> AsyncIterator[NodeHarness]:
    async with node_factory() as harness:
        yield harness


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll a condition of the node's state (for effects that have no reply frame)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)
