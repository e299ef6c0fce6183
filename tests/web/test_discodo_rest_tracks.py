"""Track routes with good and bad input: getSource, searchSources, loadSource, putSource and
POST /queue. Tracks come from the tone plugin; nothing here needs a voice connection."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from tests.conftest import NodeFactory
from tests.web.test_discodo_rest import Rest, bot


@contextlib.asynccontextmanager
async def tone_bot(node_factory: NodeFactory) -> AsyncIterator[Rest]:
    async with node_factory(sources={"plugins": ["tone"]}) as node, bot(node) as (_, rest):
        yield rest


async def test_get_and_search_sources(node_factory: NodeFactory) -> None:
    async with tone_bot(node_factory) as rest:
        status, body = await rest.call("GET", "/getSource?query=tone:440%3Fseconds=2")
        assert status == 200
        track = body["source"]
        assert track["source"] == "tone" and track["duration"] == 2.0 and track["encoded"]
        status, body = await rest.call("GET", "/searchSources?query=tone:440")
        assert status == 200 and [t["source"] for t in body["sources"]] == ["tone"]


async def test_load_source_errors_are_4xx_with_reasons(node_factory: NodeFactory) -> None:
    async with tone_bot(node_factory) as rest:
        status, body = await rest.call("GET", "/getSource")
        assert status == 400 and "`query` is required" in body["error"]["message"]
        status, body = await rest.call("GET", "/getSource?query=tone:banana")
        assert 400 <= status < 500 and "banana" in body["error"]["message"], body
        status, body = await rest.call("GET", "/getSource?query=nosuchscheme:x")
        assert status == 422 and body["error"]["code"] == "LOAD_FAILED"
        status, body = await rest.call("GET", "/getSource?query=http://127.0.0.1:9/a.mp3")
        assert status == 422 and "refusing to fetch from 127.0.0.1" in body["error"]["message"]
        status, body = await rest.call("POST", "/loadSource", {"query": ""})
        assert status == 400 and "`query`" in body["error"]["message"]
        status, body = await rest.call("POST", "/loadSource", {"q": "tone:440"})
        assert status == 400 and "`q` is unknown" in body["error"]["message"]


async def test_put_source_accepts_only_tracks_this_node_issued(node_factory: NodeFactory) -> None:
    async with tone_bot(node_factory) as rest:
        track = (await rest.call("GET", "/getSource?query=tone:440"))[1]["source"]
        track["context"] = {"requester": "42"}
        status, body = await rest.call("POST", "/putSource", {"source": [track, track]})
        assert status == 200 and [t["context"] for t in body["source"]] == [{"requester": "42"}] * 2
        forged = dict(track, encoded=track["encoded"][:-4] + "AAAA")
        status, body = await rest.call("POST", "/putSource", {"source": forged})
        assert status == 400 and body["error"]["message"] == (
            "field `source.encoded`: expected a track token issued by this node"
        )
        status, body = await rest.call(
            "POST", "/putSource", {"source": {"url": "file:///etc/passwd"}}
        )
        assert status == 400 and "`source.encoded` is required" in body["error"]["message"]
        status, body = await rest.call("POST", "/putSource", {"source": track, "index": -1})
        assert status == 400 and "`index`" in body["error"]["message"]


async def test_post_queue_inserts_at_an_index(node_factory: NodeFactory) -> None:
    async with tone_bot(node_factory) as rest:
        a = (await rest.call("GET", "/getSource?query=tone:440"))[1]["source"]
        b = (await rest.call("GET", "/getSource?query=tone:660"))[1]["source"]
        c = (await rest.call("GET", "/getSource?query=tone:880"))[1]["source"]
        # Without a voice connection the first track waits in the engine; the rest queue up.
        await rest.call("POST", "/putSource", {"source": [a, b]})
        status, body = await rest.call("POST", "/queue", {"source": c, "index": 0})
        assert status == 200 and body["source"]["id"] == c["id"]
        entries = (await rest.call("GET", "/queue"))[1]["entries"]
        assert [e["id"] for e in entries] == [c["id"], b["id"]]
        status, body = await rest.call("POST", "/queue", {"source": c, "index": 9})
        assert status == 400 and "`index`: expected 0..2" in body["error"]["message"]
        tag = entries[1]["tag"]
        status, moved = await rest.call(
            "POST", f"/queue/{tag}", {"index": 0, "start_position": 0.5}
        )
        assert status == 200 and moved["start_position"] == 0.5
        status, body = await rest.call("POST", f"/queue/{tag}", {"start_position": 1.5})
        assert status == 400 and body["error"]["message"] == (
            "field `start_position`: expected <= 1 (the track's length), got 1.5"
        )
        assert (await rest.call("GET", "/queue"))[1]["entries"][0]["tag"] == tag
        status, body = await rest.call("DELETE", "/queue/-1")
        assert status == 200 and body["removed"]["id"] == c["id"] and len(body["entries"]) == 1
