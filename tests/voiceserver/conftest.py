"""A real voice server on loopback ephemeral ports, and LVSP clients connected to it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aiohttp
import pytest

from audionode.config import VoiceServerConfig
from audionode.voiceserver.app import VoiceServer
from audionode.voiceserver.lvsp_client import LvspClient

from .member import VoiceMember

TOKEN = "lvsp-test-token"


LvspFactory = Callable[[], Awaitable[LvspClient]]
"""Connects a raw (not yet identified) LVSP client to the test's server."""


@pytest.fixture
def server_config() -> VoiceServerConfig:
    return VoiceServerConfig(host="127.0.0.1", port=0, udp_port=0, lvsp_token=TOKEN)


@pytest.fixture
async def server(server_config: VoiceServerConfig) -> AsyncIterator[VoiceServer]:
    srv = VoiceServer(server_config)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
    for m in list(VoiceMember.live):  # a failed test must not leak sockets into the next one
        await m.close()


@pytest.fixture
async def lvsp(server: VoiceServer, http: aiohttp.ClientSession) -> AsyncIterator[LvspFactory]:
    made: list[LvspClient] = []

    async def connect() -> LvspClient:
        made.append(await LvspClient.connect(http, server.lvsp_url, TOKEN))
        return made[-1]

    yield connect
    for c in made:
        await c.close()


@pytest.fixture
async def control(lvsp: LvspFactory) -> LvspClient:
    """An identified LVSP client (Litecord's part), read frame by frame."""
    c = await lvsp()
    await c.identify()
    return c


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Records at ERROR or with a traceback: bad input must never produce one."""
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    return [r.getMessage() for r in bad] + (["Traceback"] if "Traceback" in caplog.text else [])


@pytest.fixture
def no_traceback(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The test fails if anything was logged at ERROR or with a traceback."""
    caplog.set_level(logging.INFO)
    yield
    assert errors_logged(caplog) == []
