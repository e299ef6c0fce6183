"""The faults ``bench/soak.py`` injects into a playing node, and the rig they act on.

Each fault is a coroutine ``fault(rig, n) -> details`` (``n``: how many faults of any kind came
before, so repeated kinds vary their target). What each one does and what it records:

- ``worker_kill``: SIGKILL one engine worker (found among the node process's children, its
  slot named by ``/status``); records the pid, the players on it and how long until ``/status``
  showed a live replacement in that slot.
- ``voice_restart``: stop the built-in voice server (it closes every LVSP and voice socket with
  1001 and forgets everything) and start a new one on the same ports; then do what Discord does
  for the guilds it served: the LVSP client reconnects (a fresh IDENTIFY, nothing survives) and
  every guild gets a new VOICE_SERVER_UPDATE for the same voice session. Records each step's time.
- ``stalled_bot``: a second bot session identifies, joins guilds, plays, then stops reading and
  keeps sending heartbeats with a large payload (the node echoes each ``d`` in HEARTBEAT_ACK),
  so unread frames pile up at the node. The node should close it by its outbound-bytes bound
  (``control.max_outbound_bytes``, close code 4008). Records how the socket ended, the node's
  control-process RSS before and after, and whether the session survived (a new socket with
  the same user resumes it); then destroys its guilds.
- ``bad_requests``: a burst of malformed requests against REST and ``/ws`` (malformed JSON,
  oversize bodies, bad headers, unknown routes and methods, huge seek numbers at a real
  player) while ``/health`` is polled; records every status and close code, and the slowest
  ``/health``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import psutil

from audionode.demo.bot import Bot, DemoError
from audionode.voiceserver.app import VoiceServer
from audionode.voiceserver.lvsp_client import LvspClient
from bench.sink import Sink
from bench.streams import PASSWORD, dave_member, open_voice_server, status
from tests.transport.listener import Listener

STALL_USER = 5151
STALL_GUILD0 = 900_000
CHANNEL_OFFSET = 10_000
"""A guild's voice channel id is its id plus this (``bench/streams.py``: 10 000 -> 20 000)."""


@dataclass
class Rig:
    """The system under test and the bench's handles on it. ``vs`` and ``members`` change
    when the voice server restarts."""

    args: argparse.Namespace
    http: aiohttp.ClientSession
    url: str
    node_pid: int
    sink: Sink
    vs: VoiceServer
    vs_port: int
    vs_udp_port: int
    lvsp: LvspClient
    bot: Bot
    guilds: list[int]
    """The guilds under test (their packets are measured)."""
    victim: int
    """The main bot's extra guild that the bad requests aim at (not measured)."""
    query: str
    members: dict[int, Listener] = field(default_factory=dict)
    dead_ssrcs: dict[int, float] = field(default_factory=dict)
    """SSRC -> when (``time.time()``) the voice server it was announced by went away."""

    @property
    def endpoint(self) -> str:
        return f"ws://127.0.0.1:{self.vs.port}"

    def all_guilds(self) -> list[int]:
        return [*self.guilds, self.victim]


Fault = Callable[[Rig, int], Awaitable[dict[str, Any]]]


def node_processes(node_pid: int, node_status: dict[str, Any]) -> list[dict[str, Any]]:
    """Every process of the node with its role and RSS: ``control``, ``worker<slot>`` (the
    pids ``/status`` names), ``extractor`` (the niced yt-dlp pool), ``other`` (e.g.
    multiprocessing's resource tracker)."""
    slots = {
        p.get("pid"): p.get("slot")
        for p in node_status.get("engine", {}).get("processes", [])
        if isinstance(p, dict)
    }
    out: list[dict[str, Any]] = []
    try:
        root = psutil.Process(node_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return out
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.pid == node_pid:
                role = "control"
            elif proc.pid in slots:
                role = f"worker{slots[proc.pid]}"
            elif proc.nice() > 0:
                role = "extractor"
            else:
                role = "other"
            out.append({"pid": proc.pid, "role": role, "rss_mb": proc.memory_info().rss / 2**20})
    return out


def control_rss_mb(rig: Rig) -> float:
    rss: int = psutil.Process(rig.node_pid).memory_info().rss
    return round(rss / 2**20, 1)


# --- worker SIGKILL -----------------------------------------------------------------------------


async def worker_kill(rig: Rig, n: int) -> dict[str, Any]:
    before = await status(rig.http, rig.url)
    slots = {p["slot"]: p for p in before["engine"].get("processes", [])}
    children = {p.pid for p in psutil.Process(rig.node_pid).children()}
    workers = sorted(s for s, p in slots.items() if p.get("pid") in children)
    if not workers:
        return {"error": "no engine worker among the node's children (engine.workers = 0?)"}
    slot = workers[n % len(workers)]
    pid = slots[slot]["pid"]
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    details: dict[str, Any] = {"slot": slot, "pid": pid, "players": slots[slot].get("players")}
    while time.monotonic() - killed < 60:
        await asyncio.sleep(0.2)
        now = (await status(rig.http, rig.url))["engine"].get("processes", [])
        entry: dict[str, Any] = next((p for p in now if p.get("slot") == slot), {})
        if entry.get("pid") not in (None, pid) and entry.get("alive"):
            details.update(respawn_s=round(time.monotonic() - killed, 2), new_pid=entry["pid"])
            return details
    details["respawn_s"] = None  # not back within a minute: a finding
    return details


# --- voice server restart -------------------------------------------------------------------------


async def voice_restart(rig: Rig, n: int) -> dict[str, Any]:
    began = time.monotonic()
    for ssrc in list(rig.bot.ssrc_guild):  # the sink would still count them: see Packets
        rig.dead_ssrcs.setdefault(ssrc, time.time())
    await rig.vs.stop()
    stopped = time.monotonic()
    for attempt in itertools.count(1):  # the old sockets may take a moment to be released
        try:
            rig.vs = await open_voice_server(
                rig.sink.port, rig.args.dave, rig.vs_port, rig.vs_udp_port
            )
            break
        except OSError:
            if attempt == 100:
                raise
            await asyncio.sleep(0.1)
    up = time.monotonic()
    resumed = await rig.lvsp.reconnect(rig.http)
    gate = asyncio.Semaphore(rig.args.concurrency)
    failed: list[str] = []

    async def one(guild: int) -> None:
        async with gate:
            try:
                if rig.args.dave:
                    old = rig.members.pop(guild, None)
                    if old is not None:
                        await old.close()
                    rig.members[guild] = await dave_member(
                        rig.args, rig.http, rig.lvsp, rig.vs, guild, guild + CHANNEL_OFFSET
                    )
                await rig.bot.rejoin(rig.lvsp, guild, guild + CHANNEL_OFFSET, rig.endpoint)
            except (TimeoutError, AssertionError, aiohttp.ClientError) as e:
                failed.append(f"{guild}: {e!r}"[:200])

    await asyncio.gather(*(one(g) for g in rig.all_guilds()))
    return {
        "stop_s": round(stopped - began, 2),
        "start_s": round(up - stopped, 2),
        "bind_attempts": attempt,
        "lvsp_resumed": resumed,
        "rejoin_all_s": round(time.monotonic() - up, 2),
        "rejoin_failed": len(failed),
        "rejoin_errors": failed[:5],
    }


# --- a bot that stops reading ---------------------------------------------------------------------


async def stalled_bot(rig: Rig, n: int) -> dict[str, Any]:
    args = rig.args
    bot = await Bot.open(rig.http, rig.url, PASSWORD, STALL_USER)
    guilds = [STALL_GUILD0 + 1000 * n + i for i in range(args.stall_guilds)]
    playing = 0
    refused: list[str] = []
    for guild in guilds:  # its guilds play if they can; the stall is the point
        try:  # a node at capacity refuses new guilds (NODE_AT_CAPACITY): stall without them
            await bot.join_via(rig.lvsp, guild, guild + CHANNEL_OFFSET, rig.endpoint)
        except DemoError as e:
            refused.append(str(e))
            continue
        await bot.request("POST", "/loadSource", {"query": rig.query}, guild=guild)
        with contextlib.suppress(DemoError):
            await bot.wait("SOURCE_START", guild=guild, within=10)
            playing += 1
    rss_before = control_rss_mb(rig)
    bot.log.pause()
    sent, ended = await _send_unread(bot, args)
    rss_stalled = control_rss_mb(rig)
    bot.log.resume()  # now read what is left, up to the close if the node sent one
    assert bot.ws is not None
    closed_by_node = await bot.log.wait_closed(args.stall_drain)
    details: dict[str, Any] = {
        "guilds": len(guilds),
        "guilds_playing": playing,
        "guilds_refused": refused,
        "sent_mb": round(sent / 2**20, 1),
        "stalled_s": round(ended, 1),
        "closed_by_node": closed_by_node,
        "close_code": bot.ws.close_code if closed_by_node else None,
        "control_rss_mb": [rss_before, rss_stalled, control_rss_mb(rig)],
    }
    await bot.close()
    details["session_resumed"] = await _resume_and_destroy(rig, guilds)
    return details


async def _send_unread(bot: Bot, args: argparse.Namespace) -> tuple[int, float]:
    """Heartbeats of ``args.stall_payload`` bytes at ``args.stall_rate`` per second, none of
    the replies read, until the node closes the socket, ``args.stall_seconds`` pass or
    ``args.stall_max_mb`` were sent (the bench's own bound, for nodes without one)."""
    assert bot.ws is not None
    payload = "x" * args.stall_payload
    began = time.monotonic()
    sent = 0
    while time.monotonic() - began < args.stall_seconds and sent < args.stall_max_mb * 2**20:
        if bot.ws.closed or bot.ws.close_code is not None:
            break
        try:
            await bot.ws.send_str(json.dumps({"op": "HEARTBEAT", "d": payload}))
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            break
        sent += args.stall_payload
        await asyncio.sleep(1.0 / args.stall_rate)
    return sent, time.monotonic() - began


async def _resume_and_destroy(rig: Rig, guilds: list[int]) -> bool:
    """A new socket as the stalled user: the session must still be there (RESUMED); then
    VC_DESTROY its guilds so that the next fault starts from the main bot alone."""
    again = await Bot.open(rig.http, rig.url, PASSWORD, STALL_USER)
    try:
        for guild in guilds:
            await again.send("VC_DESTROY", {"guild_id": str(guild)})
        for guild in guilds:
            with contextlib.suppress(DemoError):
                await again.wait("VC_DESTROYED", guild=guild, within=10)
        return again.log.counts["RESUMED"] > 0
    finally:
        await again.close()


# --- bursts of bad requests ----------------------------------------------------------------------

_HUGE = (1e308, 1e300, 9.3e15, 1e18, 2.0**70, -1, "NaN", "1e999", None, [1], {"a": 1})


def rest_cases(rig: Rig) -> list[tuple[str, str, str, dict[str, str], bytes]]:
    """``(case, method, path, headers, body)``: every one must get a 4xx."""
    good = rig.bot.headers(rig.victim)
    auth = {"Authorization": PASSWORD}
    deep = b"[" * 100_000 + b"]" * 100_000
    cases = [
        ("malformed json", "POST", "/loadSource", good, b'{"query": '),
        ("json wrong type", "POST", "/loadSource", good, b'{"query": 5}'),
        ("json not an object", "POST", "/options", good, b'"volume"'),
        ("deep json", "POST", "/options", good, deep),
        ("oversize body", "POST", "/loadSource", good, b'{"query": "' + b"a" * (2 << 20) + b'"}'),
        ("bad User-ID", "GET", "/queue", {**good, "User-ID": "abc"}, b""),
        ("huge Guild-ID", "GET", "/queue", {**good, "Guild-ID": "9" * 400}, b""),
        ("no VoiceClient-ID", "GET", "/queue", {k: v for k, v in good.items() if k[0] != "V"}, b""),
        ("wrong VoiceClient-ID", "GET", "/queue", {**good, "VoiceClient-ID": "nope"}, b""),
        ("wrong password", "GET", "/status", {"Authorization": "wrong"}, b""),
        ("no password", "GET", "/status", {}, b""),
        ("unknown route", "GET", "/nope", auth, b""),
        ("path traversal", "GET", "/../../etc/passwd", auth, b""),
        ("unknown method", "PATCH", "/seek", good, b"{}"),
        ("huge queue index", "GET", "/queue/" + "9" * 40, good, b""),
        ("huge volume", "POST", "/options", good, b'{"volume": 1e308}'),
    ]
    for value in _HUGE:
        body = json.dumps({"offset": value}).encode()
        cases.append((f"seek {value!r}", "POST", "/seek", good, body))
    return cases


WS_CASES: list[tuple[str, str | bytes]] = [
    ("not json", "{{{"),
    ("binary frame", b"\x00\x01\x02"),
    ("unknown op", json.dumps({"op": "NOPE", "d": {}})),
    ("identify bad user_id", json.dumps({"op": "IDENTIFY", "d": {"user_id": "abc"}})),
    ("op before identify", json.dumps({"op": "getState", "d": {"guild_id": "1"}})),
    ("deep frame", "[" * 100_000 + "]" * 100_000),
    ("oversize frame", json.dumps({"op": "HEARTBEAT", "d": "x" * (2 << 20)})),
    ("frame not an object", json.dumps([1, 2, 3])),
]


async def bad_requests(rig: Rig, n: int) -> dict[str, Any]:
    statuses: dict[str, Counter[str]] = {}
    health: list[float] = []
    stop = asyncio.Event()
    poller = asyncio.create_task(_poll_health(rig, health, stop))
    cases = rest_cases(rig)
    gate = asyncio.Semaphore(16)

    async def one(case: tuple[str, str, str, dict[str, str], bytes]) -> None:
        name, method, path, headers, body = case
        async with gate:
            statuses.setdefault(name, Counter())[
                await _request(rig, method, path, headers, body)
            ] += 1

    began = time.monotonic()
    await asyncio.gather(
        *(one(c) for c in itertools.islice(itertools.cycle(cases), rig.args.burst))
    )
    ws = {name: await _ws_case(rig, frame) for name, frame in WS_CASES}
    stop.set()
    await poller
    flat = Counter[str]()
    for counter in statuses.values():
        flat.update(counter)
    bad = {k: dict(v) for k, v in statuses.items() if any(not s.startswith("4") for s in v)}
    return {
        "requests": sum(flat.values()),
        "burst_s": round(time.monotonic() - began, 2),
        "statuses": dict(flat),
        "not_4xx": bad,
        "ws": ws,
        "health_max_ms": round(max(ok) * 1000, 1)
        if (ok := [h for h in health if h >= 0])
        else None,
        "health_failed": sum(1 for h in health if h < 0),
    }


async def _request(rig: Rig, method: str, path: str, headers: dict[str, str], body: bytes) -> str:
    try:
        async with rig.http.request(
            method, rig.url + path, headers=headers, data=body or None
        ) as r:
            await r.read()
            return str(r.status)
    except (aiohttp.ClientError, ConnectionError, TimeoutError) as e:
        return type(e).__name__


async def _ws_case(rig: Rig, frame: str | bytes) -> str:
    """Send one bad frame on a fresh socket; the reply's op (an error payload) or the close."""
    try:
        async with rig.http.ws_connect(
            f"{rig.url}/ws", headers={"Authorization": PASSWORD}, max_msg_size=0
        ) as ws:
            await ws.receive(timeout=5)  # HELLO
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
            msg = await ws.receive(timeout=5)
            if msg.type is aiohttp.WSMsgType.TEXT:
                reply = json.loads(msg.data)
                d = reply.get("d")
                err = d.get("error") if isinstance(d, dict) else None
                code = err.get("code") if isinstance(err, dict) else None
                return f"reply {reply.get('op')}" + (f" {code}" if code else "")
            if msg.type is aiohttp.WSMsgType.CLOSE:
                # The code the node sent: ws.close_code says 1006 instead whenever aiohttp's
                # echo of the close frame fails because the node already shut the socket (seen
                # 2 in 90 oversize frames on a loaded machine, while msg.data held 1009).
                return f"close {msg.data}"
            return f"close {ws.close_code}"
    except (aiohttp.ClientError, ConnectionError, TimeoutError) as e:
        return type(e).__name__


async def _poll_health(rig: Rig, out: list[float], stop: asyncio.Event) -> None:
    """``GET /health`` every 100 ms: seconds per answer, -1 for a failure."""
    while not stop.is_set():
        began = time.monotonic()
        try:
            async with rig.http.get(rig.url + "/health", timeout=aiohttp.ClientTimeout(5)) as r:
                await r.read()
                out.append(time.monotonic() - began if r.status == 200 else -1.0)
        except (aiohttp.ClientError, TimeoutError):
            out.append(-1.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


FAULTS: dict[str, Fault] = {
    "worker_kill": worker_kill,
    "bad_requests": bad_requests,
    "stalled_bot": stalled_bot,
    "voice_restart": voice_restart,
}
"""Every fault by name, in the default schedule's order."""
