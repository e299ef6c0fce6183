"""The Discord voice gateway (server side): aiohttp websocket driver (WIP: waits for voice-core)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from audionode.voice.opcodes import CloseCode
from audionode.voiceserver.state import VoiceRegistry, VoiceState
from audionode.voiceserver.udp import Forwarder

log = logging.getLogger("audionode.voiceserver.gateway")


class VoiceGatewayEndpoint:
    """Serves ``GET /?v=8``."""

    def __init__(
        self,
        *,
        registry: VoiceRegistry,
        forwarder: Forwarder,
        udp_address: Callable[[], tuple[str, int]],
        heartbeat_interval_ms: int,
    ) -> None:
        self._registry = registry
        self._forwarder = forwarder
        self._udp_address = udp_address
        self._interval_ms = heartbeat_interval_ms

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if request.query.get("v") != "8":
            await ws.close(code=CloseCode.BAD_REQUEST, message=b"unsupported gateway version")
            return ws
        await ws.close(code=CloseCode.VOICE_SERVER_CRASHED, message=b"not implemented yet")
        return ws

    async def disconnect(self, state: VoiceState) -> None:
        """Close the client of a removed/moved voice state with 4014."""

    async def close_all(self) -> None:
        """Close every voice client (server shutting down)."""

    def member_count(self, channel_id: int) -> int:
        return 0
