"""Issue 11 item 10: a hypothesis-driven client against the live REST API: 0 responses of 5xx.

The node runs in its own thread and event loop (hypothesis drives a plain synchronous client),
with one identified bot whose voice client has a few tracks queued, so most requests reach real
handlers with real state. Sources are the tone plugin only: nothing leaves the machine.
``AUDIONODE_FUZZ_CASES`` raises the number of cases (docs/SECURITY.md gives the largest run).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audionode.protocol.discodo_routes import ROUTES, argument_fields
from audionode.server import start_node
from tests.conftest import PASSWORD, make_config

CASES = int(os.environ.get("AUDIONODE_FUZZ_CASES", "600"))
BOT, GUILD = "31337", "4040"


class LiveNode:
    """A node with a bot session, in a background thread."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.port = 0
        self.headers: dict[str, str] = {}
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._run(),))

    def __enter__(self) -> LiveNode:
        self._thread.start()
        assert self.ready.wait(30), "the node did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self._loop.close()

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        sources = {"plugins": ["tone"], "http": {"enabled": False}, "ytdlp": {"enabled": False}}
        cfg = make_config(sources=sources, control={"max_queue": 50})
        async with start_node(cfg) as node, aiohttp.ClientSession() as http_:
            url = f"http://127.0.0.1:{node.port}"
            async with http_.ws_connect(f"{url}/ws", headers={"Authorization": PASSWORD}) as ws:
                await ws.receive()
                await ws.send_json({"op": "IDENTIFY", "d": {"user_id": BOT}})
                await ws.receive()
                state = {"guild_id": GUILD, "user_id": BOT, "channel_id": "1", "session_id": "s"}
                await ws.send_json(
                    {"op": "DISCORD_EVENT", "d": {"t": "VOICE_STATE_UPDATE", "d": state}}
                )
                vc_id = json.loads((await ws.receive()).data)["d"]["id"]
                self.port = node.port
                self.headers = {
                    "Authorization": PASSWORD,
                    "User-ID": BOT,
                    "Guild-ID": GUILD,
                    "VoiceClient-ID": vc_id,
                }
                for freq in (440, 550, 660):
                    body = {"query": f"tone:{freq}?seconds=30"}
                    await http_.post(f"{url}/loadSource", json=body, headers=self.headers)
                drain = asyncio.create_task(_drain(ws))
                self.ready.set()
                await self._stop.wait()
                drain.cancel()


async def _drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    async for _ in ws:  # keep reading: the session's events must not pile up
        pass


@pytest.fixture(scope="module")
def live() -> Iterator[LiveNode]:
    with LiveNode() as node:
        yield node


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**66), 2**66)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
routes = [r for r in ROUTES if r.http is not None]


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], bytes | None]:
    route = draw(st.sampled_from(routes))
    assert route.http is not None
    method, path = route.http
    if draw(st.booleans()):
        method = draw(st.sampled_from(["GET", "POST", "DELETE", "PUT"]))
    key = draw(st.sampled_from(["0", "-1", "2", "99", "x" * 32]) | st.text(min_size=1, max_size=30))
    path = path.replace("<key>", quote(key, safe=""))
    names = argument_fields(route) or ["x"]
    fields = draw(st.dictionaries(st.sampled_from(names), json_values, max_size=len(names)))
    if draw(st.integers(0, 4)) == 0:
        path += "?" + urlencode(
            draw(st.dictionaries(st.sampled_from(["query", "q"]), st.text(max_size=40)))
        )
    body = draw(
        st.sampled_from([None, "fields", "json", "bytes"]).map(
            lambda kind: {
                None: None,
                "fields": json.dumps(fields).encode(),
                "json": json.dumps(draw(json_values)).encode(),
                "bytes": draw(st.binary(max_size=40)),
            }[kind]
        )
    )
    return method, path, draw(header_sets()), body


@st.composite
def header_sets(draw: st.DrawFn) -> dict[str, str]:
    """The bot's own headers, usually intact, sometimes one dropped or replaced."""
    base = {"Authorization": PASSWORD, "User-ID": BOT, "Guild-ID": GUILD, "VoiceClient-ID": "?"}
    name = draw(st.sampled_from([None, *base, "Shard-ID"]))
    if name is None:
        return base
    if draw(st.booleans()):
        return {k: v for k, v in base.items() if k != name}
    value = draw(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=25))
    return {**base, name: value}


@settings(
    max_examples=CASES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests())
def test_no_request_gets_a_5xx(
    live: LiveNode, request: tuple[str, str, dict[str, str], Any]
) -> None:
    method, path, headers, body = request
    if headers.get("VoiceClient-ID") == "?":
        headers = {**headers, "VoiceClient-ID": live.headers["VoiceClient-ID"]}
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
    finally:
        conn.close()
    assert response.status < 500, (method, path, headers, body, payload[:300])
    if response.status >= 400 and method != "HEAD":
        error = json.loads(payload)["error"]
        assert error["code"] and error["message"], payload
