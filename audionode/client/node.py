"""One audionode node as the bot sees it: its control socket, its REST routes, its load.

A :class:`Node` is configured by the bot (``Node(url=..., password=...)``) and run by the
:class:`~audionode.client.pool.Pool`: it keeps a ``/ws`` connection identified as the bot
(reconnecting with back-off whenever it drops), routes the node's events to the players it
holds, and polls ``GET /status`` for the pool's load balancer. What happens to its players
when it drops or returns is the pool's decision (``docs/CLIENT.md``, "Failover").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp

from audionode.client.errors import (
    AudionodeClientError,
    AuthenticationFailed,
    NodeError,
    NodeUnavailable,
    ProtocolError,
)
from audionode.client.load import NodeStats, penalty
from audionode.client.socket import TAKEN_OVER, NodeSocket, cancel_and_wait

if TYPE_CHECKING:
    from audionode.client.player import Player

log = logging.getLogger(__name__)
JSON = Any

RETRY_DELAYS = (0.0, *(0.25,) * 8, 0.5, 1.0, 2.0, 5.0)
"""Seconds before each reconnection attempt (the last repeats): every quarter of a second for
two seconds, so a restarting node is found as soon as it listens again, then backing off."""


class Owner(Protocol):
    """What a node tells its pool (implemented by :class:`~audionode.client.pool.Pool`)."""

    user_id: int
    http: aiohttp.ClientSession

    def node_ready(self, node: Node, resumed: set[int] | None) -> None: ...

    def node_lost(self, node: Node) -> None: ...


class Node:
    """A node of the pool.

    ``url`` is the node's HTTP base (``http://host:port``; ``https`` for a node behind TLS),
    ``password`` its ``password`` setting, ``identifier`` a name for logs and events (the url
    by default). ``status_interval``: seconds between reads of its ``/status`` (its load);
    ``ping_interval``: seconds between websocket pings (a pong missing for half of it counts
    as a lost node; None: rely on TCP alone).
    """

    def __init__(
        self,
        *,
        url: str,
        password: str,
        identifier: str | None = None,
        status_interval: float = 10.0,
        ping_interval: float | None = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.password = password
        self.identifier = identifier or self.url
        self.status_interval = status_interval
        self.ping_interval = ping_interval
        self.players: dict[int, Player] = {}
        """This bot's players on the node, by guild id."""
        self.stats = NodeStats()
        """The node's figures as last polled (``GET /status``)."""
        self.placed = 0
        """Players placed here since :attr:`stats` was read."""
        self.socket: NodeSocket | None = None
        self._owner: Owner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._first: asyncio.Future[None] | None = None
        self._closing = False

    def __repr__(self) -> str:
        return f"<Node {self.identifier} available={self.available} players={len(self.players)}>"

    @property
    def available(self) -> bool:
        """True while the node's socket is up and identified."""
        return self.socket is not None and not self.socket.ws.closed

    @property
    def penalty(self) -> float:
        """The node's load as one number (``audionode.client.load``); lower takes players."""
        return penalty(self.stats, self.placed)

    # --- lifecycle (driven by the pool) ---------------------------------------------------------

    def start(self, owner: Owner) -> asyncio.Future[None]:
        """Connect in the background; the future resolves after the first attempt (with
        :class:`AuthenticationFailed` if the password was refused)."""
        self._owner = owner
        self._first = asyncio.get_running_loop().create_future()
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._poll())]
        return self._first

    async def close(self) -> None:
        self._closing = True
        await cancel_and_wait(*self._tasks)
        if self.socket is not None:
            await self.socket.close()

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            await asyncio.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
            try:
                code = await self._session()
            except AuthenticationFailed as e:
                log.error("%s", e)
                self._first_done(e)
                return
            except (AudionodeClientError, aiohttp.ClientError, OSError) as e:
                log.debug("node %s: %s", self.identifier, e)
                self._first_done(None)
                attempt += 1
                continue
            except Exception:  # a bug of ours must not stop the reconnecting for good
                log.exception("node %s: connection failed", self.identifier)
                self._first_done(None)
                attempt += 1
                continue
            attempt = 1
            if code == TAKEN_OVER:
                log.error(
                    "node %s: another connection identified as this bot; not reconnecting",
                    self.identifier,
                )
                return

    async def _session(self) -> int | None:
        """One connection: open, identify, serve until it closes; returns its close code."""
        owner = self._require_owner()
        sock = await NodeSocket.open(
            owner.http, self._ws_url(), self.password, ping=self.ping_interval
        )
        sock.start(lambda op, d: self._on_frame(sock, op, d))
        try:
            resumed = await self._identify(sock, owner.user_id)
        except BaseException:
            await sock.close()
            raise
        self.socket = sock
        log.info("node %s ready (resumed: %s)", self.identifier, resumed is not None)
        self._first_done(None)
        await self.refresh_stats()
        owner.node_ready(self, resumed)
        code = await sock.closed
        self.socket = None
        if not self._closing:
            log.warning("node %s: connection lost (%s)", self.identifier, code)
            owner.node_lost(self)
        return code

    async def _identify(self, sock: NodeSocket, user_id: int) -> set[int] | None:
        """IDENTIFY; the guilds of the voice clients the node kept when it resumed the
        session (``RESUMED``), or None when the session is new."""
        resumed = await sock.identify(user_id)
        if resumed is None:
            return None
        clients = resumed.get("voice_clients") if isinstance(resumed, dict) else None
        if not isinstance(clients, list):
            raise ProtocolError("RESUMED: `voice_clients` must be a list")
        try:
            return {int(pair[0]) for pair in clients}
        except (TypeError, ValueError, IndexError) as e:
            raise ProtocolError(f"RESUMED: `voice_clients`: {e}") from e

    def _first_done(self, error: BaseException | None) -> None:
        if self._first is not None and not self._first.done():
            if error is None:
                self._first.set_result(None)
            else:
                self._first.set_exception(error)

    def _require_owner(self) -> Owner:
        if self._owner is None:
            raise RuntimeError("the node is not started: add it to a Pool")
        return self._owner

    def _ws_url(self) -> str:
        scheme, _, rest = self.url.partition("://")
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws"

    # --- events ---------------------------------------------------------------------------------

    def _on_frame(self, sock: NodeSocket, op: str, d: JSON) -> None:
        guild = d.get("guild_id") if isinstance(d, dict) else None
        if guild is None:
            return
        player = self.players.get(int(guild))
        if player is not None:
            player._on_node_event(self, op, d)
        elif op == "VC_CREATED":
            # A voice client no player of ours owns: kept by a node that came back after its
            # players moved elsewhere (or left over by a crashed bot). It must not play on.
            asyncio.get_running_loop().create_task(self._destroy_stale(sock, str(guild)))

    async def _destroy_stale(self, sock: NodeSocket, guild_id: str) -> None:
        log.info("node %s: destroying the stale voice client of guild %s", self.identifier,
                 guild_id)  # fmt: skip
        with contextlib.suppress(AudionodeClientError, asyncio.TimeoutError):
            await sock.request("VC_DESTROY", {"guild_id": guild_id}, "VC_DESTROYED", guild_id)

    # --- REST -----------------------------------------------------------------------------------

    async def rest(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: JSON = None,
        params: Mapping[str, str] | None = None,
        within: float = 30.0,
    ) -> JSON:
        """One REST call; the decoded body (None for 204). :class:`NodeError` for an error
        answer, :class:`NodeUnavailable` when the node cannot be reached."""
        http = self._require_owner().http
        all_headers = {"Authorization": self.password, **(headers or {})}
        try:
            async with http.request(
                method, self.url + path, headers=all_headers, json=json, params=params,
                timeout=aiohttp.ClientTimeout(total=within),
            ) as r:  # fmt: skip
                body = await r.json(content_type=None) if r.status != 204 else None
                status = r.status
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise NodeUnavailable(f"node {self.identifier}: {e or type(e).__name__}") from e
        except ValueError as e:
            raise ProtocolError(f"node {self.identifier}: {method} {path}: not JSON") from e
        if status >= 400:
            raise _error(status, body)
        return body

    async def refresh_stats(self) -> None:
        """Read ``GET /status`` now (the node polls it every ``status_interval``). The node
        samples its CPU itself and reports a 10 s mean, so a reading is good as it comes."""
        try:
            body = await self.rest("GET", "/status", within=5.0)
        except AudionodeClientError as e:
            log.debug("node %s: no status: %s", self.identifier, e)
            return
        self.stats = NodeStats.from_status(body)
        self.placed = 0

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.status_interval)
            if self.available:
                await self.refresh_stats()


def _error(status: int, body: JSON) -> NodeError:
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return NodeError(status, str(err.get("code")), str(err.get("message")))
    return NodeError(status, "HTTP_ERROR", str(body)[:200])
