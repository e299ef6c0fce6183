"""Logs (docs/OPERATIONS.md): ``log_format`` text or JSON, every player's line names its guild
and the node, and no secret ever reaches a log line, even at DEBUG through the whole chain."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from audionode.config import load_config
from audionode.errors import ConfigError
from audionode.logs import guild_scope, make_handler
from tests.conftest import PASSWORD, NodeFactory
from tests.e2e.chain import chain, events_until


@contextlib.contextmanager
def captured(
    log_format: str, node: str = "node-a", level: int = logging.DEBUG
) -> Iterator[io.StringIO]:
    """Everything logged in the block, as the node's own handler writes it."""
    out = io.StringIO()
    handler = make_handler(log_format, node, stream=out)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line]


def test_json_lines_carry_ts_level_logger_msg_guild_node_and_the_exception() -> None:
    log = logging.getLogger("audionode.test.logs")
    with captured("json") as out:
        with guild_scope(4242):
            log.info("hello %s", "there")
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("it failed")
        log.warning("outside any guild")
    first, second, third = json_lines(out.getvalue())
    assert first["msg"] == "hello there" and first["level"] == "INFO"
    assert first["logger"] == "audionode.test.logs"
    assert first["guild"] == 4242 and first["node"] == "node-a"
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert second["guild"] == 4242 and "ValueError: boom" in second["exc"]
    assert "exc" not in first
    assert third["guild"] is None and third["level"] == "WARNING"


def test_text_lines_name_the_node_and_the_guild() -> None:
    log = logging.getLogger("audionode.test.logs")
    with captured("text", node="eu-1:8000") as out:
        with guild_scope(77):
            log.info("in a guild")
        log.info("node-wide")
    first, second = out.getvalue().splitlines()
    assert "[eu-1:8000 guild=77]" in first and first.endswith("in a guild")
    assert "[eu-1:8000]" in second and "guild=" not in second


async def test_a_task_started_for_a_guild_logs_that_guild() -> None:
    import asyncio

    log = logging.getLogger("audionode.test.logs")

    async def later() -> None:
        await asyncio.sleep(0)
        log.info("from the task")

    with captured("json") as out:
        with guild_scope(99):
            task = asyncio.get_running_loop().create_task(later())
        await task
    (line,) = json_lines(out.getvalue())
    assert line["guild"] == 99


@pytest.mark.parametrize("bad", ["xml", "JSON ", 3])
def test_log_format_is_validated(bad: Any) -> None:
    with pytest.raises(ConfigError, match="log_format"):
        load_config(None, env={}, overrides={"password": "x", "log_format": bad})


def test_node_name_is_validated() -> None:
    with pytest.raises(ConfigError, match="node_name"):
        load_config(None, env={}, overrides={"password": "x", "node_name": "has space"})


async def test_no_secret_reaches_the_logs_at_debug(node_factory: NodeFactory) -> None:
    """The whole chain at DEBUG (bot socket, REST, voice connect with DAVE, playback): the
    node's password, the metrics token and the voice token appear in no log line, and the
    player's lines name its guild and the node."""
    metrics_token = "metrics-secret-token-5f2e"
    with captured("json", node="node-under-test") as out:
        async with chain(
            node_factory,
            log_level="DEBUG",
            metrics_token=metrics_token,
            node_name="node-under-test",
        ) as c:
            await c.load("tone:440?seconds=1")
            await events_until(c.ws, "SOURCE_STOP")
            status, _ = await c.rest("GET", "/status")
            assert status == 200
            async with c.node.http.get(
                f"{c.node.url}/metrics", headers={"Authorization": f"Bearer {metrics_token}"}
            ) as r:
                assert r.status == 200
            voice_token = c.token
    text = out.getvalue()
    lines = json_lines(text)
    assert len(lines) > 20, text  # DEBUG really was on
    for secret in (PASSWORD, metrics_token, voice_token):
        assert secret not in text, f"a secret reached the logs: {secret!r}"
    mine = [line for line in lines if line["guild"] == c.guild]
    assert mine, "no log line named the player's guild"
    players = [line for line in lines if line["msg"].startswith("player ")]
    assert players and all(line["guild"] == c.guild for line in players), players
    assert all(line["node"] == "node-under-test" for line in lines)
    print(f"{len(lines)} lines, {len(mine)} name guild {c.guild}")
