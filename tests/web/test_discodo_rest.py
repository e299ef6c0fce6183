"""Discodo REST routes: header resolution, validation, and the control-only player routes.
(Routes that load and play tracks are covered end to end with the engine.)"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import PASSWORD, NodeHarness, WsClient

GUILD = "555"
BOT = "1000"


class Rest:
    def __init__(self, node: NodeHarness, headers: dict[str, str]) -> None:
        self.node = node
        self.headers = headers

    async def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        hdrs = {**self.headers, **(headers or {})}
        kwargs: dict[str, Any] = {"data": raw} if raw is not None else {"json": json}
        async with self.node.http.request(
            method, f"{self.node.url}{path}", headers=hdrs, **kwargs
        ) as r:
            body = await r.json() if r.content_length else None
            return r.status, body


@contextlib.asynccontextmanager
async def bot(node: NodeHarness, shard: int | None = None) -> AsyncIterator[tuple[WsClient, Rest]]:
    async with node.ws() as ws:
        await ws.identify(BOT, shard)
        await ws.send(
            "DISCORD_EVENT",
            {
                "t": "VOICE_STATE_UPDATE",
                "d": {"guild_id": GUILD, "user_id": BOT, "channel_id": "9", "session_id": "s"},
            },
        )
        vc_id = (await ws.expect("VC_CREATED"))["id"]
        await ws.expect("VC_CHANNEL_EDITED")
        headers = {
            "Authorization": PASSWORD,
            "User-ID": BOT,
            "Guild-ID": GUILD,
            "VoiceClient-ID": vc_id,
        }
        if shard is not None:
            headers["Shard-ID"] = str(shard)
        yield ws, Rest(node, headers)


@pytest.mark.parametrize(
    ("drop", "override", "status", "code", "text"),
    [
        ("User-ID", {}, 400, "BAD_REQUEST", "header `User-ID` is required"),
        ("Guild-ID", {}, 400, "BAD_REQUEST", "header `Guild-ID` is required"),
        ("VoiceClient-ID", {}, 400, "BAD_REQUEST", "header `VoiceClient-ID` is required"),
        (None, {"Guild-ID": "abc"}, 400, "BAD_REQUEST", "header `Guild-ID`: expected an integer"),
        (None, {"User-ID": "1"}, 404, "SESSION_NOT_FOUND", "no session for user 1"),
        (None, {"Guild-ID": "1"}, 404, "VOICE_CLIENT_NOT_FOUND", "guild 1"),
        (None, {"VoiceClient-ID": "f" * 32}, 403, "VOICE_CLIENT_ID_MISMATCH", "does not match"),
        (None, {"Authorization": "nope"}, 403, "AUTHENTICATION_FAILED", "wrong password"),
    ],
)
async def test_header_errors(
    node: NodeHarness, drop: str | None, override: dict[str, str], status: int, code: str, text: str
) -> None:
    async with bot(node) as (_, rest):
        headers = {k: v for k, v in rest.headers.items() if k != drop}
        headers.update(override)
        got, body = await Rest(node, headers).call("GET", "/options")
        assert got == status and body["error"]["code"] == code and text in body["error"]["message"]


async def test_shard_id_is_honoured_and_optional(node: NodeHarness) -> None:
    async with bot(node, shard=3) as (_, rest):
        assert (await rest.call("GET", "/options"))[0] == 200
        status, body = await rest.call("GET", "/options", headers={"Shard-ID": "4"})
        assert status == 404 and body["error"]["code"] == "SESSION_NOT_FOUND"
        # Discodo's own client never sends Shard-ID: the user's only session is meant.
        no_shard = {k: v for k, v in rest.headers.items() if k != "Shard-ID"}
        assert (await Rest(node, no_shard).call("GET", "/options"))[0] == 200
        async with node.ws() as other:  # a second shard holding no voice client for the guild
            await other.identify(BOT, 5)
            assert (await Rest(node, no_shard).call("GET", "/options"))[0] == 200
            status, body = await Rest(node, {**no_shard, "Guild-ID": "1"}).call("GET", "/options")
            assert status == 404 and body["error"]["code"] == "VOICE_CLIENT_NOT_FOUND"


async def test_context_round_trip_and_validation(node: NodeHarness) -> None:
    async with bot(node) as (ws, rest):
        assert await rest.call("GET", "/context") == (200, {})
        ctx = {"text_channel": "42", "requester": {"id": 1}}
        assert await rest.call("POST", "/context", {"context": ctx}) == (200, ctx)
        assert await rest.call("GET", "/context") == (200, ctx)
        status, body = await rest.call("POST", "/context", {"context": 5})
        assert (
            status == 400
            and body["error"]["message"] == "field `context`: expected `object`, got `int`"
        )
        status, body = await rest.call("POST", "/context", raw=b"{nope")
        assert status == 400 and body["error"]["message"].startswith("body: expected JSON (")
        await ws.send("getState", {"guild_id": GUILD})
        assert (await ws.expect("getState"))["context"] == ctx


async def test_options_validation_keeps_player_intact(node: NodeHarness) -> None:
    async with bot(node) as (_, rest):
        status, body = await rest.call(
            "POST", "/options", {"volume": 0.5, "crossfade": 2, "autoplay": True}
        )
        assert status == 200 and body == {
            "autoplay": True,
            "volume": 0.5,
            "crossfade": 2.0,
            "filter": {},
        }
        for bad, text in (
            ({"volume": 9}, "field `volume`: expected `float` <= 5.0"),
            ({"volume": "loud"}, "field `volume`: expected `float`, got `str`"),
            ({"crossfade": -1}, "field `crossfade`: expected `float` >= 0.0"),
            ({"colume": 1}, "field `colume` is unknown"),
            ([], "field `body`: expected `object`, got `array`"),
        ):
            status, err = await rest.call("POST", "/options", bad)
            assert status == 400 and err["error"]["message"].startswith(text), err
        assert (await rest.call("GET", "/options"))[1]["volume"] == 0.5


async def test_repeat_and_playback_conflicts(node: NodeHarness) -> None:
    async with bot(node) as (_, rest):
        assert await rest.call("POST", "/repeat", {"mode": "queue"}) == (200, {"mode": "queue"})
        assert await rest.call("GET", "/repeat") == (200, {"mode": "queue"})
        status, body = await rest.call("POST", "/repeat", {"mode": "sometimes"})
        assert status == 400 and "expected one of off, track, queue" in body["error"]["message"]
        for path, payload in (
            ("/skip", {}),
            ("/seek", {"offset": 3}),
            ("/previous", None),
            ("/current", {"context": {}}),
        ):
            status, body = await rest.call("POST", path, payload)
            assert status == 409 and body["error"]["code"] in ("NOT_PLAYING", "NO_PREVIOUS"), (
                path,
                body,
            )
        status, body = await rest.call("POST", "/skip", {"offset": 0})
        assert status == 400 and "`offset`: expected `int` >= 1" in body["error"]["message"]
        status, body = await rest.call("POST", "/seek", {})
        assert status == 400 and body["error"]["message"] == "field `offset` is required"
        assert await rest.call("GET", "/current") == (200, None)
        assert await rest.call("GET", "/seek") == (
            200,
            {"duration": None, "position": None, "remain": None},
        )


async def test_empty_queue_routes(node: NodeHarness) -> None:
    async with bot(node) as (_, rest):
        assert await rest.call("GET", "/queue") == (200, {"entries": []})
        assert await rest.call("POST", "/shuffle") == (200, {"entries": []})
        assert await rest.call("POST", "/clear") == (200, {"entries": []})
        for method in ("GET", "POST", "DELETE"):
            status, body = await rest.call(method, "/queue/0", {} if method == "POST" else None)
            assert status == 404 and "out of range" in body["error"]["message"]
            status, body = await rest.call(
                method, "/queue/" + "a" * 32, {} if method == "POST" else None
            )
            assert status == 404 and "no queue entry with tag" in body["error"]["message"]
        assert (await rest.call("POST", "/pause"))[0] == 204
        assert (await rest.call("POST", "/resume"))[0] == 204
        assert (await rest.call("POST", "/stop"))[0] == 204


async def test_filters_are_validated_and_bad_ones_change_nothing(node: NodeHarness) -> None:
    async with bot(node) as (_, rest):
        good = {"timescale": {"speed": 1.25}, "equalizer": [{"band": 3, "gain": 0.5}]}
        status, body = await rest.call("POST", "/options", {"filter": good})
        assert status == 200 and body["filter"]["timescale"]["speed"] == 1.25
        for bad in (
            {"timescale": {"speed": -1}},
            {"equalizer": [{"band": 15, "gain": 0.1}]},
            {"nosuchfilter": {}},
            {"raw": {"notafilter": "x=1"}},
        ):
            status, err = await rest.call("POST", "/options", {"filter": bad})
            assert status == 400 and err["error"]["code"] in ("BAD_REQUEST", "FILTER_INVALID"), err
        assert (await rest.call("GET", "/options"))[1]["filter"]["timescale"]["speed"] == 1.25
