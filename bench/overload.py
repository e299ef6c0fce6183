"""Overload: twice a worker's budget asked of the node; the admitted keep their pacing (issue 17).

    python -m bench.overload [--workers 1] [--budget 100] [--ask 200] [--limit players|cpu]
                             [--max-cpu C] [--dave] [--seconds S] [--peer off|none] [--json out]

The rig is ``bench/streams.py``'s (built-in voice server in this process, the counting UDP
sink in its own, the node as ``python -m audionode run``, one Discodo bot session, the same
Ogg/Opus file passing through in every guild). The node's admission (``engine.admission``,
``engine/admission.py``) is given a small budget:

- ``--limit players`` (default): ``max_players_per_worker = --budget``; the budget is exact;
- ``--limit cpu``: ``max_cpu = --max-cpu`` cores per worker (the measured limit); the budget
  is whatever the node admits, ``--budget`` only sets what is asked (``--ask``, default twice
  it).

Each of the ``--ask`` guilds sends its voice state (the player is created and placed, or
refused) at ``--concurrency`` at a time; an admitted guild then connects and plays, a refused
one must get the Discodo error event (``DISCORD_EVENT`` with ``error.code ==
NODE_AT_CAPACITY``) and nothing else. With the node full, ``--rest-checks`` more guilds ask the
Lavalink front (``PATCH /v4/sessions/{id}/players/{guild}``): each must answer 503 with a
``Retry-After``. Then the window: the admitted streams' packets/s, gaps and misses at the sink.

``--peer off`` (default) runs the same ask again with admission off (``engine.admission.
enabled = false``: every player placed, none refused), in the same invocation, so the cost of
taking everyone shows beside the admitted row; ``--peer none`` skips it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from audionode.demo.bot import Bot
from audionode.voiceserver.app import VoiceServer
from audionode.voiceserver.lvsp_client import LvspClient
from bench import media
from bench.sink import Sink
from bench.streams import (
    BOT,
    CHANNEL0,
    GUILD0,
    LVSP_TOKEN,
    PASSWORD,
    Tree,
    add_rig_arguments,
    dave_member,
    engine_delta,
    measure,
    node_config,
    node_process,
    status,
    voice_server,
)

AT_CAPACITY = "NODE_AT_CAPACITY"


class Outcomes:
    """What the node answered a guild's voice state: ``VC_CREATED`` (admitted) or the error
    reply (refused), read off the bot's event stream as it comes. The error reply of a
    ``DISCORD_EVENT`` names no guild (its ``d`` had none at the top), so one guild asks at a
    time (:attr:`turn`); the connects and plays that follow run concurrently."""

    def __init__(self) -> None:
        self.turn = asyncio.Lock()
        self.waiting: tuple[int, asyncio.Future[tuple[str, Any]]] | None = None
        self.stray: list[tuple[str, Any]] = []
        """Answers while no guild was asking (a second answer: not clean)."""

    def expect(self, guild: int) -> asyncio.Future[tuple[str, Any]]:
        future: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting = (guild, future)
        return future

    def __call__(self, op: str, d: Any) -> None:
        if not isinstance(d, dict):
            return
        created = op == "VC_CREATED"
        if not created and not (op == "DISCORD_EVENT" and "error" in d):
            return
        waiting, self.waiting = self.waiting, None
        if waiting is None or waiting[1].done():
            self.stray.append((op, d))
            return
        guild, future = waiting
        if created and str(d.get("guild_id")) != str(guild):
            self.stray.append((op, d))
            self.waiting = waiting
            return
        future.set_result((op, d))


async def ask(
    args: argparse.Namespace, http: aiohttp.ClientSession, url: str, vs: VoiceServer, query: str
) -> tuple[Bot, dict[str, Any]]:
    """``args.ask`` guilds ask for a player; the admitted ones connect and play ``query``."""
    lvsp = await LvspClient.open(http, vs.lvsp_url, LVSP_TOKEN)
    bot = await Bot.open(http, url, PASSWORD, BOT)
    outcomes = Outcomes()
    bot.log.listeners.append(outcomes)
    gate = asyncio.Semaphore(args.concurrency)
    endpoint = f"ws://127.0.0.1:{vs.port}"
    admitted: list[int] = []
    refused: list[dict[str, Any]] = []
    unclean: list[Any] = []
    failed: list[str] = []

    async def one(i: int) -> None:
        guild, channel = GUILD0 + i, CHANNEL0 + i
        async with gate:
            if args.dave:
                await dave_member(args, http, lvsp, vs, guild, channel)
            grant = await lvsp.grant(BOT, channel, guild)
            bot.voice_sessions[guild] = grant.session_id
            state = {"guild_id": str(guild), "user_id": str(BOT),
                     "channel_id": str(channel), "session_id": grant.session_id}  # fmt: skip
            async with outcomes.turn:
                answer = outcomes.expect(guild)
                await bot.send("DISCORD_EVENT", {"t": "VOICE_STATE_UPDATE", "d": state})
                op, d = await asyncio.wait_for(answer, 60)
            if op == "DISCORD_EVENT":
                error = d["error"]
                if error.get("code") == AT_CAPACITY and "capacity" in error.get("message", ""):
                    refused.append(error)
                else:
                    unclean.append(error)
                return
            try:
                # what Bot.join does after its voice state: the server update, VOICE_CONNECTED
                await bot._server_update(guild, grant.token, endpoint)
                await bot.play(guild, query)
                admitted.append(guild)
            except Exception as e:  # an admitted guild that did not play: reported, counted
                failed.append(f"guild {guild}: {e}")

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(args.ask)))
    took = time.monotonic() - started
    print(
        f"# asked {args.ask}: {len(admitted)} admitted and playing, {len(refused)} refused "
        f"with {AT_CAPACITY}, {len(unclean)} other errors, {len(failed)} admitted but not "
        f"playing, after {took:.1f} s",
        flush=True,
    )
    return bot, {
        "asked": args.ask,
        "admitted": len(admitted),
        "refused_clean": len(refused),
        "refused_unclean": unclean[:5],
        "admitted_not_playing": failed[:5],
        "admitted_not_playing_count": len(failed),
        "stray_answers": len(outcomes.stray),
        "refusal_example": refused[0] if refused else None,
        "setup_s": round(took, 1),
    }


async def rest_checks(http: aiohttp.ClientSession, url: str, n: int, first: int) -> dict[str, Any]:
    """``n`` Lavalink player creations on the full node: each must be a 503 with a
    ``Retry-After`` (and a Lavalink error body naming the capacity)."""
    headers = {"Authorization": PASSWORD, "User-Id": str(BOT), "Client-Name": "overload/1"}
    clean, other = 0, []
    async with http.ws_connect(f"{url}/v4/websocket", headers=headers) as ws:
        ready = json.loads((await ws.receive(timeout=10)).data)
        session = ready["sessionId"]
        for i in range(n):
            path = f"{url}/v4/sessions/{session}/players/{first + i}"
            async with http.patch(path, json={}, headers={"Authorization": PASSWORD}) as r:
                body = await r.json()
                retry = r.headers.get("Retry-After")
                if r.status == 503 and retry and "capacity" in str(body.get("message")):
                    clean += 1
                else:
                    other.append({"status": r.status, "retry_after": retry, "body": body})
    return {"asked": n, "clean_503": clean, "other": other[:5]}


def overload_config(args: argparse.Namespace, root: Path, admission: bool) -> dict[str, Any]:
    """``bench/streams.py``'s node config with the small budget (or admission off)."""
    config = node_config(args, root, 0)
    limits: dict[str, Any] = {"enabled": admission, "retry_after": 5}
    if args.limit == "players":
        limits["max_players_per_worker"] = args.budget
    else:
        limits["max_cpu"] = args.max_cpu
    if args.max_tick_ms is not None:
        limits["max_tick_ms"] = args.max_tick_ms
    config["engine"]["admission"] = limits
    return config


async def run(args: argparse.Namespace, root: Path, admission: bool) -> dict[str, Any]:
    path = media.ogg_opus(root / "music.ogg", args.seconds + args.warmup + 90 + args.ask * 0.4)
    sink = Sink()
    args.members = []
    try:
        async with (
            voice_server(sink.port, args.dave) as vs,
            node_process(args, root, overload_config(args, root, admission)) as (url, pid),
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
        ):
            tree = Tree(pid)
            await asyncio.sleep(1.0)
            bot, asked = await ask(args, http, url, vs, f"local:{path}")
            full = await status(http, url)
            checks = None
            if admission and args.rest_checks:
                checks = await rest_checks(http, url, args.rest_checks, GUILD0 + args.ask)
            args.players = max(1, asked["admitted"])  # measure() divides by it
            result = await measure(args, tree, sink, snap=lambda: status(http, url))
            before, after = result.pop("snaps")
            result["engine"] = engine_delta(before["engine"], after["engine"])
            result["admission_after_setup"] = full["engine"].get("admission")
            result["bot_errors"] = bot.log.errors[:5]
            await bot.close()
    finally:
        for member in args.members:
            await member.close()
        sink.close()
    result["load_avg"] = os.getloadavg()
    return {"admission": admission, **asked, "rest_checks": checks, **result}


def row(result: dict[str, Any]) -> str:
    r = result["receiver"]
    checks = result["rest_checks"]
    rest = "-" if checks is None else f"{checks['clean_503']}/{checks['asked']}"
    load = ", ".join(f"{x:.2f}" for x in result["load_avg"])
    return (
        f"admission {'on ' if result['admission'] else 'off'}: asked {result['asked']}, "
        f"admitted {result['admitted']}, refused {result['refused_clean']} (clean "
        f"{AT_CAPACITY} events; other errors {len(result['refused_unclean'])}), Lavalink 503 + "
        f"Retry-After {rest}; streams seen {r.get('streams')}, packets/s mean "
        f"{r.get('pps_per_stream')} (min {r.get('pps_per_stream_min')}), gap p50 / p99 / max "
        f"{r.get('gap_p50_ms')} / {r.get('gap_p99_ms')} / {r.get('gap_max_ms')} ms, missed "
        f"{r.get('missed_pct')} %, node {result['cpu_cores']:.3f} cores "
        f"({result['cpu_pct_per_stream']:.3f} % per admitted stream); load avg {load}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_rig_arguments(p, players=0, workers=1)
    p.add_argument("--limit", choices=("players", "cpu"), default="players")
    p.add_argument("--budget", type=int, default=100, help="players per worker (--limit players)")
    p.add_argument("--max-cpu", type=float, default=0.2, help="cores per worker (--limit cpu)")
    p.add_argument(
        "--max-tick-ms", type=float, help="engine.admission.max_tick_ms (default: the node's)"
    )
    p.add_argument(
        "--ask", type=int, default=0, help="guilds asking (default 2 x budget x workers)"
    )
    p.add_argument("--rest-checks", type=int, default=20, help="Lavalink creations on a full node")
    p.add_argument("--peer", choices=("off", "none"), default="off")
    p.add_argument("--seconds", type=float, default=20.0, help="measurement window")
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if not args.ask:
        args.ask = 2 * args.budget * args.workers
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = []
    for admission in (True, False) if args.peer == "off" else (True,):
        with tempfile.TemporaryDirectory(prefix="bench-overload-") as tmp:
            result = asyncio.run(run(args, Path(tmp), admission))
        results.append(result)
        print(row(result), flush=True)
        engine = result["engine"]
        print(f"# engine frames in window: {json.dumps(engine['frames_in_window'])}; "
              f"bot errors {result['bot_errors']}", flush=True)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
