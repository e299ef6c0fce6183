"""The voice server process: one aiohttp application and one UDP socket.

Routes (one HTTP port): ``GET /lvsp`` the LVSP control websocket, ``GET /?v=8`` the Discord voice
gateway, ``GET /stats`` per-channel counters (``Authorization: <stats token>``).

Embedding (tests, or a host process)::

    server = VoiceServer(cfg.voiceserver)      # cfg.voiceserver.port 0 = an ephemeral port
    await server.start()                       # binds HTTP and UDP inside the running loop
    ... server.port, server.udp_port, server.lvsp_url, server.endpoint ...
    await server.stop()

``audionode voiceserver`` calls :func:`run_forever`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
from typing import Any

from aiohttp import web

from audionode.config import VoiceServerConfig
from audionode.errors import ConfigError
from audionode.logs import configure_logging
from audionode.protocol.lvsp_session import LvspSessions
from audionode.runtime import listen_socket, run
from audionode.voiceserver.gateway_server import VoiceGatewayEndpoint
from audionode.voiceserver.lvsp_server import LvspEndpoint
from audionode.voiceserver.state import VoiceRegistry
from audionode.voiceserver.udp import Forwarder, open_forwarder

log = logging.getLogger("audionode.voiceserver")

LVSP_PATH = "/lvsp"
STATS_PATH = "/stats"


class VoiceServer:
    """Registry + LVSP + voice gateway + UDP forwarding unit, started in the caller's loop."""

    def __init__(self, cfg: VoiceServerConfig) -> None:
        if not cfg.lvsp_token:
            raise ConfigError("config key `voiceserver.lvsp_token` must be set (the LVSP secret)")
        self.cfg = cfg
        self.registry = VoiceRegistry(dave_required=cfg.dave_required)
        self.forwarder = Forwarder(
            discovery_rate=cfg.udp_discovery_rate, debug_packets=log.isEnabledFor(logging.DEBUG)
        )
        self.gateway = VoiceGatewayEndpoint(
            registry=self.registry,
            forwarder=self.forwarder,
            udp_address=lambda: (cfg.public_ip, self.udp_port),
            heartbeat_interval_ms=round(cfg.heartbeat_interval * 1000),
            identify_timeout=cfg.identify_timeout,
            max_frame_bytes=cfg.max_frame_bytes,
        )
        self.lvsp = LvspEndpoint(
            token=cfg.lvsp_token,
            registry=self.registry,
            endpoint=lambda: self.endpoint,
            heartbeat_interval_ms=round(cfg.lvsp_heartbeat_interval * 1000),
            voice=self.gateway,
            sessions=LvspSessions(
                max_buffer=cfg.lvsp_max_kept,
                resume_window=cfg.lvsp_resume_window,
                max_detached=cfg.lvsp_max_detached,
            ),
            identify_timeout=cfg.identify_timeout,
            max_frame_bytes=cfg.max_frame_bytes,
        )
        self._sweeper: asyncio.Task[None] | None = None
        self._stats_token = (cfg.stats_token or cfg.lvsp_token).encode()
        self._runner: web.AppRunner | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self.port = 0
        self.udp_port = 0

    @property
    def endpoint(self) -> str:
        """``host:port`` of the voice gateway as LVSP READY announces it."""
        return self.cfg.public_endpoint or f"{self.cfg.public_ip}:{self.port}"

    @property
    def lvsp_url(self) -> str:
        return f"ws://{self.cfg.host}:{self.port}{LVSP_PATH}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(LVSP_PATH, self.lvsp.handle)
        app.router.add_get("/", self.gateway.handle)
        app.router.add_get(STATS_PATH, self._stats)
        return app

    async def start(self) -> None:
        """Bind UDP then HTTP (ports 0 = ephemeral; read :attr:`port`/:attr:`udp_port`)."""
        self._udp, _ = await open_forwarder(self.forwarder, self.cfg.host, self.cfg.udp_port)
        self.udp_port = int(self._udp.get_extra_info("sockname")[1])
        # Handlers still running after the sockets were closed are cancelled soon (aiohttp
        # waits 60 s by default).
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = listen_socket(self.cfg.host, self.cfg.port)
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()
        self._sweeper = asyncio.create_task(self.lvsp.sweep_forever())
        log.info(
            "voice server on %s:%d (UDP %d), LVSP at %s",
            self.cfg.host,
            self.port,
            self.udp_port,
            LVSP_PATH,
        )

    async def stop(self) -> None:
        """Stop promptly (well under a second): stop listening first, so that clients
        reconnecting on their 1001 (the node's voice clients do) find the port closed instead
        of a socket that would wait for its identify deadline; then close every socket."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self.lvsp.shutting_down = self.gateway.shutting_down = True
        if self._runner is not None:
            for site in list(self._runner.sites):
                await site.stop()
        await self.lvsp.close_all()
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None

    async def _stats(self, request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, self._stats_token):
            return web.json_response(
                {"code": "UNAUTHORIZED", "message": "Authorization header must be the stats token"},
                status=401,
            )
        return web.json_response(self.stats())

    def stats(self) -> dict[str, Any]:
        """``{"channels": {id: {...}}, "udp": {...}}``: config, members and forwarding counters
        per channel, and the counters of datagrams that belong to no channel."""
        udp = self.forwarder.stats()
        out: dict[str, Any] = {}
        for cid in sorted(set(self.registry.channels) | set(udp)):
            ch = self.registry.channels.get(cid)
            _, counters = udp.get(cid, (0, None))
            entry: dict[str, Any] = {
                "members": self.gateway.member_count(cid),
                "voice_states": sum(1 for s in self.registry.states() if s.channel_id == cid),
                "bitrate": ch.bitrate if ch else None,
                "dave_required": ch.dave_required if ch else None,
            }
            entry.update(counters.as_dict() if counters else {})
            out[str(cid)] = entry
        return {"channels": out, "udp": self.forwarder.udp_stats.as_dict()}


def run_forever(cfg: VoiceServerConfig, log_level: str = "INFO") -> int:
    """``audionode voiceserver``: serve until SIGINT/SIGTERM; returns the exit code."""
    configure_logging(log_level)
    try:
        server = VoiceServer(cfg)
    except ConfigError as e:
        log.error("%s", e)
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await server.start()
        await stop.wait()
        await server.stop()

    run(main())
    return 0
