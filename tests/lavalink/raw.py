"""A raw Lavalink v4 client for the protocol tests: plain aiohttp, JSON in and out."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import PASSWORD, NodeFactory, NodeHarness

LISTS_PLUGIN = '''
from audionode.sources.api import BaseSource, LoadResult, Track


class Lists(BaseSource):
    """``find:N`` is a search giving N tones; ``list:N`` a playlist of N tones (the second
    one selected)."""

    name = "lists"

    def handles(self, query):
        return query.startswith(("list:", "find:"))

    async def load(self, query):
        tracks = [
            Track(source="tone", id=f"tone:{440 + 10 * i}", title=f"tone {i}",
                  uri=f"tone:{440 + 10 * i}", duration_ms=1000)
            for i in range(int(query.split(":", 1)[1]))
        ]
        if query.startswith("find:"):
            return LoadResult.of_search(tracks)
        return LoadResult.of_playlist("some tones", tracks, selected=1)


def sources(context):
    return [Lists()]
'''


class Raw:
    def __init__(self, node: NodeHarness) -> None:
        self.node = node
        self.http = node.http

    async def call(
        self, method: str, path: str, body: Any = None, *, password: str | None = PASSWORD,
        raw: bytes | None = None, **params: str,
    ) -> tuple[int, Any]:  # fmt: skip
        headers = {} if password is None else {"Authorization": password}
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        if data is not None:
            headers["Content-Type"] = "application/json"
        url = f"{self.node.url}{path}"
        async with self.http.request(method, url, data=data, headers=headers, params=params) as r:
            text = await r.text()
            if r.content_type == "application/json":
                return r.status, json.loads(text)
            return r.status, text

    @contextlib.asynccontextmanager
    async def socket(
        self, user_id: str | None = "77", session_id: str | None = None
    ) -> AsyncIterator[Socket]:
        headers = {"Authorization": PASSWORD, "Client-Name": "raw-tests/1.0"}
        if user_id is not None:
            headers["User-Id"] = user_id
        if session_id is not None:
            headers["Session-Id"] = session_id
        async with self.http.ws_connect(f"{self.node.url}/v4/websocket", headers=headers) as ws:
            yield Socket(ws)


class Socket:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        frame: dict[str, Any] = json.loads(msg.data)
        self.seen.append(frame)
        return frame

    async def expect(self, op: str, type_: str | None = None, within: float = 5.0) -> Any:
        """The next frame of ``op`` (and event ``type_``), skipping others."""
        while True:
            frame = await self.next(within)
            if frame["op"] == op and (type_ is None or frame.get("type") == type_):
                return frame


@contextlib.asynccontextmanager
async def lavalink_node(
    node_factory: NodeFactory, tmp_path: Path, **overrides: Any
) -> AsyncIterator[Raw]:
    """A node with the tone source, the ``lists`` test source and short Lavalink schedules."""
    shutil.copy(Path(__file__).parents[2] / "plugins" / "tone.py", tmp_path / "tone.py")
    (tmp_path / "lists.py").write_text(LISTS_PLUGIN)
    sources = {"plugins": ["tone", "lists"], "plugins_dir": str(tmp_path)}
    lavalink = {"player_update_interval": 0.5, "stats_interval": 1.0}
    async with node_factory(sources=sources, lavalink=lavalink, **overrides) as node:
        yield Raw(node)
