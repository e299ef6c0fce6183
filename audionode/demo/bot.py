"""The one bot of the demo, the benchmarks and the tests: a Discodo bot (seed 002, docs/API.md).

"Discord" is the package's LVSP client (:class:`~audionode.voiceserver.lvsp_client.LvspClient`,
Litecord's side of ``docs/protocols/lvsp.md``): it asks the built-in voice server for voice states
(:class:`~audionode.voiceserver.lvsp_client.VoiceGrant`), which is what Discord would put in a
bot's VOICE_STATE_UPDATE / VOICE_SERVER_UPDATE.

:class:`EventLog` reads a node's control websocket in the background: every frame is counted per
op, handed to ``listeners``, remembered per (op, guild) and, unless ``keep=False`` (benchmarks
that run for hours), kept with its arrival time. Reading can be paused, as a stuck bot would.
Tests that check exact frame sequences read a raw socket instead (``tests/conftest.py``).

:class:`Bot` is a bot using the node: ``/ws`` (IDENTIFY, then per guild the two
``DISCORD_EVENT`` s that point the node at the voice server) and REST with the headers
``Authorization``, ``User-ID``, ``Guild-ID``, ``VoiceClient-ID``, for one guild or hundreds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from audionode.errors import AudionodeError
from audionode.tasks import cancel_and_wait
from audionode.voiceserver.lvsp_client import LvspClient, VoiceGrant

Match = Callable[[dict[str, Any]], bool]
ERROR_OPS = ("PLAYER_TRACEBACK", "SOURCE_TRACEBACK", "VOICE_CLOSED")


class DemoError(AudionodeError):
    """A step did not happen as the protocol says (the message names the step)."""


@dataclass(frozen=True)
class BotEvent:
    at: float
    """``time.monotonic()`` on arrival."""
    op: str
    d: Any
    """The frame's ``d``: an object for every op but a few (seed 002's ``RESUMED`` list form)."""


def _guild_of(d: Any) -> int:
    if isinstance(d, dict):
        with contextlib.suppress(TypeError, ValueError):
            return int(d.get("guild_id") or 0)
    return 0


def _is_error(d: Any) -> bool:
    return isinstance(d, dict) and isinstance(d.get("error"), dict)


class EventLog:
    """Reads ``ws`` until it closes; :meth:`wait` for an event, :meth:`stop` to let go."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, *, keep: bool = True) -> None:
        self.ws, self.keep = ws, keep
        self.events: list[BotEvent] = []
        self.counts: Counter[str] = Counter()
        self.errors: list[dict[str, Any]] = []
        self.listeners: list[Callable[[str, Any], None]] = []
        self.closed: tuple[int | None, str] | None = None
        """(close code, reason) once the socket closed."""
        self._latest: dict[tuple[str, int], Any] = {}
        self._changed = asyncio.Event()
        self._reading = asyncio.Event()
        self._reading.set()
        self._task = asyncio.create_task(self._run())

    @property
    def done(self) -> bool:
        """The socket closed (or the reader was stopped)."""
        return self._task.done()

    def ops(self, *names: str) -> list[dict[str, Any]]:
        """Every kept frame (``{"op", "d"}``) whose op is one of ``names``, in arrival order."""
        return [{"op": e.op, "d": e.d} for e in self.events if e.op in names]

    def forget(self, op: str, guild: int) -> None:
        """Make the next :meth:`wait` for ``op`` of ``guild`` wait for a new one."""
        self._latest.pop((op, guild), None)

    def pause(self) -> None:
        """Leave every further frame unread (the socket's buffers fill, then the node's)."""
        self._reading.clear()

    def resume(self) -> None:
        self._reading.set()

    async def wait(
        self, op: str, match: Match | None = None, *, guild: int | None = None,
        within: float = 15.0,
    ) -> Any:  # fmt: skip
        """The ``d`` of an event ``op`` (of ``guild``, matching ``match``), already received or
        still to come: the first such kept event, or with ``guild`` and no ``match`` the latest
        one (which works with ``keep=False``; there, a ``match`` is tried on the latest only)."""
        return (await self.wait_first([(op, match)], guild=guild, within=within))[1]

    async def wait_first(
        self, choices: list[tuple[str, Match | None]], *, guild: int | None = None,
        within: float = 15.0,
    ) -> tuple[str, Any]:  # fmt: skip
        """``(op, d)`` of the first of ``choices`` found (each as in :meth:`wait`), in the
        order given: e.g. the event a request asked for, or its error reply."""
        names = " or ".join(op for op, _ in choices)
        try:
            async with asyncio.timeout(within):
                while True:
                    for op, match in choices:
                        found = self._find(op, match, guild)
                        if found is not None:
                            return op, found
                    if self.done:
                        raise DemoError(f"the socket closed {self.closed} before {names}")
                    await self._changed.wait()
        except TimeoutError:
            raise DemoError(f"no {names} from the node within {within:g} s") from None

    async def wait_closed(self, within: float) -> bool:
        """Whether the node closed the socket within ``within`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), within)
        return self.done

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    def _find(self, op: str, match: Match | None, guild: int | None) -> Any:
        if guild is not None and (match is None or not self.keep):
            latest = self._latest.get((op, guild))
            return latest if latest is None or match is None or match(latest) else None
        for event in self.events:
            mine = guild is None or _guild_of(event.d) == guild
            if event.op == op and mine and (match is None or match(event.d)):
                return event.d
        return None

    async def _run(self) -> None:
        try:
            while True:
                await self._reading.wait()
                msg = await self.ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    self.closed = (self.ws.close_code, str(msg.extra or ""))
                    return
                frame = json.loads(msg.data)
                self._on_frame(frame["op"], frame.get("d"))
        finally:
            self._wake()

    def _on_frame(self, op: str, d: Any) -> None:
        d = {} if d is None else d
        self.counts[op] += 1
        for listener in self.listeners:
            listener(op, d)
        if op in ERROR_OPS:
            self.errors.append({"op": op, "d": d})
        self._latest[(op, _guild_of(d))] = d
        if self.keep:
            self.events.append(BotEvent(time.monotonic(), op, d))
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


class Bot:
    """A bot of ``user_id`` on the node at ``url``: :meth:`connect` (or ``await Bot.open``),
    :meth:`join` per guild, then REST calls; :attr:`log` reads events until :meth:`close`.

    ``keep=False`` keeps counts and the latest event per guild only (long benchmarks)."""

    def __init__(
        self, http: aiohttp.ClientSession, url: str, password: str, user_id: int,
        *, keep: bool = True,
    ) -> None:  # fmt: skip
        self.http, self.url, self.password, self.user_id = http, url, password, user_id
        self.keep = keep
        self.vc_ids: dict[int, str] = {}
        self.ssrc_guild: dict[int, int] = {}
        """Each SSRC a ``VOICE_CONNECTED`` announced, to its guild."""
        self.voice_sessions: dict[int, str] = {}
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._log: EventLog | None = None
        self._guild: int | None = None

    @classmethod
    async def open(
        cls, http: aiohttp.ClientSession, url: str, password: str, user_id: int,
        *, keep: bool = False,
    ) -> Bot:  # fmt: skip
        bot = cls(http, url, password, user_id, keep=keep)
        await bot.connect()
        return bot

    @property
    def log(self) -> EventLog:
        if self._log is None:
            raise DemoError("the bot is not connected")
        return self._log

    @property
    def events(self) -> list[BotEvent]:
        return self.log.events

    async def connect(self) -> None:
        """Open ``/ws``: HELLO, IDENTIFY → IDENTIFIED; then read every event."""
        auth = {"Authorization": self.password}
        self.ws = await self.http.ws_connect(f"{self.url}/ws", headers=auth, max_msg_size=0)
        self._log = EventLog(self.ws, keep=self.keep)
        self._log.listeners.append(self._track)
        await self.log.wait("HELLO", guild=0)
        await self.send("IDENTIFY", {"user_id": self.user_id, "shard_id": None})
        await self.log.wait("IDENTIFIED", guild=0)

    async def join(self, guild: int, channel: int, grant: VoiceGrant, endpoint: str) -> None:
        """Forward what Discord sent the bot (seed 002 ``DISCORD_EVENT``) and wait until the
        node's voice connection is up (``VOICE_CONNECTED``)."""
        self.voice_sessions[guild] = grant.session_id
        state = {"guild_id": str(guild), "user_id": str(self.user_id),
                 "channel_id": str(channel), "session_id": grant.session_id}  # fmt: skip
        await self.send("DISCORD_EVENT", {"t": "VOICE_STATE_UPDATE", "d": state})
        op, d = await self.log.wait_first(
            [("VC_CREATED", None), ("DISCORD_EVENT", _is_error)], guild=guild, within=60
        )
        if op != "VC_CREATED":  # e.g. NODE_AT_CAPACITY: no player was made
            error = d["error"]
            raise DemoError(f"guild {guild} refused: {error['code']}: {error['message']}")
        self._guild = guild if self._guild is None else self._guild
        await self._server_update(guild, grant.token, endpoint)

    async def join_via(self, lvsp: LvspClient, guild: int, channel: int, endpoint: str) -> None:
        """:meth:`join` with a voice state the voice server grants over LVSP."""
        await self.join(guild, channel, await lvsp.grant(self.user_id, channel, guild), endpoint)

    async def rejoin(self, lvsp: LvspClient, guild: int, channel: int, endpoint: str) -> None:
        """What Discord does when a guild's voice server went away: the same voice session on a
        new voice server, so only a new VOICE_SERVER_UPDATE; returns once a new
        ``VOICE_CONNECTED`` arrived."""
        grant = await lvsp.grant(
            self.user_id, channel, guild, session_id=self.voice_sessions[guild]
        )
        await self._server_update(guild, grant.token, endpoint)

    async def _server_update(self, guild: int, token: str, endpoint: str) -> None:
        self.log.forget("VOICE_CONNECTED", guild)
        server = {"guild_id": str(guild), "token": token, "endpoint": endpoint}
        await self.send("DISCORD_EVENT", {"t": "VOICE_SERVER_UPDATE", "d": server})
        await self.log.wait("VOICE_CONNECTED", guild=guild, within=60)

    def headers(self, guild: int | None = None) -> dict[str, str]:
        """The REST headers for ``guild`` (default: the first guild joined)."""
        headers = {"Authorization": self.password, "User-ID": str(self.user_id)}
        guild = self._guild if guild is None else guild
        if guild is not None and guild in self.vc_ids:
            headers |= {"Guild-ID": str(guild), "VoiceClient-ID": self.vc_ids[guild]}
        return headers

    async def request(
        self, method: str, path: str, body: Any = None, *, guild: int | None = None
    ) -> tuple[int, Any]:
        """One REST call with the bot's headers: (status, JSON body or None)."""
        url = f"{self.url}{path}"
        async with self.http.request(method, url, headers=self.headers(guild), json=body) as r:
            raw = await r.read()
            try:
                data = json.loads(raw) if raw else None
            except ValueError:
                data = raw.decode(errors="replace")
            return r.status, data

    async def rest(
        self, method: str, path: str, body: Any = None, *, guild: int | None = None
    ) -> Any:
        """:meth:`request`, where anything but 2xx raises :class:`DemoError` naming the error."""
        status, data = await self.request(method, path, body, guild=guild)
        if status >= 300:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            why = f"{error.get('code')}: {error.get('message')}" if error else data
            raise DemoError(f"{method} {path} answered {status} {why}")
        return data

    async def play(self, guild: int, query: str) -> None:
        """Load ``query`` in ``guild`` and wait until it starts (``SOURCE_START``)."""
        await self.rest("POST", "/loadSource", {"query": query}, guild=guild)
        await self.log.wait("SOURCE_START", guild=guild, within=60)

    async def wait(
        self, op: str, match: Match | None = None, *, guild: int | None = None,
        within: float = 10.0,
    ) -> Any:  # fmt: skip
        """:meth:`EventLog.wait` on the bot's socket."""
        return await self.log.wait(op, match, guild=guild, within=within)

    async def send(self, op: str, d: Any) -> None:
        if self.ws is None:
            raise DemoError("the bot is not connected")
        await self.ws.send_str(json.dumps({"op": op, "d": d}))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._log is not None:
            self._log.resume()  # a paused reader sees the closed socket and ends
            await asyncio.gather(self._log._task, return_exceptions=True)

    def _track(self, op: str, d: Any) -> None:
        guild = _guild_of(d)
        if op == "VC_CREATED" and isinstance(d, dict):
            self.vc_ids[guild] = str(d["id"])
        elif op == "VOICE_CONNECTED" and isinstance(d, dict) and "ssrc" in d:
            self.ssrc_guild[int(d["ssrc"])] = guild
