"""Soak: many guilds playing for minutes while faults hit the node on a schedule (issue 11).

    python -m bench.soak [--players 300] [--minutes 10] [--workers 2] [--dave]
                         [--faults worker_kill,bad_requests,stalled_bot,voice_restart]
                         [--fault-count K] [--json out.json]

The rig is ``bench/streams.py``'s, all on loopback: the built-in voice server in this process
(its advertised UDP port is the counting sink, ``bench/sink.py``), the node as ``python -m
audionode run`` with ``--workers`` engine processes, one bot session (``audionode/demo/bot.py``)
playing a local Ogg/Opus track, queued twice on repeat, in each of ``--players`` guilds (the
same URL everywhere, as with a popular song; ``--distinct-tracks``: one URL per guild), plus
one guild of the same bot that the bad requests aim at (not measured). The faults
(``bench/soak_faults.py``) run one after another, evenly spread over the run.

Every ``--interval`` seconds a timeline row records the RSS of every node process, the
sessions lost (a guild the bot joined whose ``GET /current`` is now a 404), the packets/s per
stream and the gaps at the sink, and the faults begun. Each fault is then judged on its
observation window (from its start to the next fault, at most ``--observe`` seconds): how
long until packets/s per stream were back at 49.5 for good, the longest silence of the guilds
it hit, and the gap p99 of the others. The run lasts ``--minutes``, and up to ``--observe``
seconds longer while a late fault still runs. The summary says pass or fail for: sessions
lost = 0; every stream at rate in the rows between faults and sounding at the end; RSS growth
(MB/hour, least squares after the first fifth of the run) under ``--rss-slope-limit``;
recovery within ``--recover-within`` seconds after every fault; others' gap p99 during faults
under ``--gap-p99-limit``; and each fault's own check (worker back, guilds rejoined, stalled
socket closed by the node with the control process grown 16 MB at most, its session resumed,
bad requests all answered 4xx, ``/health`` under 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from audionode.voiceserver.lvsp_client import LvspClient
from bench import media
from bench.sink import Sink
from bench.soak_faults import CHANNEL_OFFSET, FAULTS, Rig, node_processes
from bench.soak_report import judge, judge_run, print_report
from bench.soak_stats import Packets, Piece, window_row
from bench.streams import (
    GUILD0,
    LVSP_TOKEN,
    add_rig_arguments,
    free_port,
    node_process,
    open_voice_server,
    start_players,
    status,
)

WATCHED_OPS = ("PLAYER_TRACEBACK", "VOICE_CLOSED", "VOICE_CONNECTED", "SOURCE_STOP")


def schedule(args: argparse.Namespace) -> list[tuple[float, str]]:
    """``(seconds after the timeline's start, fault)``: evenly spread, kinds in turn."""
    kinds = [k for k in args.faults.split(",") if k]
    duration = args.minutes * 60
    count = args.fault_count
    if count is None:
        count = max(len(kinds), round(duration / 75))
    if not kinds or count <= 0:
        return []
    first = args.first_fault if args.first_fault is not None else min(30.0, duration / (count + 1))
    spacing = (duration - first) / count
    return [(first + i * spacing, kinds[i % len(kinds)]) for i in range(count)]


class Soak:
    """The timeline sampler and the fault runner over one :class:`Rig`."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.args = rig.args
        self.plan = schedule(self.args)
        self.packets = Packets(rig.guilds, keep=max(self.args.observe + 90.0, 150.0))
        self.events: list[tuple[float, str, int, str]] = []
        self.rows: list[dict[str, Any]] = []
        self.rss: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.lost: dict[int, float] = {}
        rig.bot.log.listeners.append(self._on_event)

    def _on_event(self, op: str, d: Any) -> None:
        if op in WATCHED_OPS and isinstance(d, dict):
            guild = int(d.get("guild_id") or 0)
            detail = str(d.get("traceback") or d.get("code") or d.get("reason") or "")[:120]
            self.events.append((time.time(), op, guild, detail))

    async def run(self) -> None:
        self.t_start = time.time()
        self.rig.sink.start()
        end = self.t_start + self.args.minutes * 60
        runner = asyncio.create_task(self._run_faults())
        t_prev = self.t_start
        try:  # until the end, or while a late fault still runs (at most --observe longer)
            while True:
                t_next = t_prev + self.args.interval
                if t_prev < end - 0.05:
                    t_next = min(t_next, end)
                await asyncio.sleep(max(0.0, t_next - time.time()))
                t_prev = await self._sample(t_prev)
                self._judge_faults(done=False)
                over = t_prev >= end - 0.05
                if over and (runner.done() or t_prev >= end + self.args.observe):
                    break
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        self._judge_faults(done=True)

    async def _run_faults(self) -> None:
        for i, (at, kind) in enumerate(self.plan):
            await asyncio.sleep(max(0.0, self.t_start + at - time.time()))
            planned_next = self.plan[i + 1][0] if i + 1 < len(self.plan) else None
            record: dict[str, Any] = {
                "n": i,
                "kind": kind,
                "t": round(time.time() - self.t_start, 2),
            }
            record["planned_next"] = planned_next
            self.faults.append(record)
            print(f"# t={record['t']:.1f} s: fault {i} {kind}", flush=True)
            try:
                record["details"] = await FAULTS[kind](self.rig, i)
            except asyncio.CancelledError:
                record["details"] = {"error": "still running when the run ended"}
                raise
            except Exception as e:  # a fault that cannot be injected is a result, not a crash
                record["details"] = {"error": f"{type(e).__name__}: {e}"[:300]}
            record["t_done"] = round(time.time() - self.t_start, 2)
            print(f"#   {kind} done at t={record['t_done']:.1f} s: {record['details']}", flush=True)

    async def _sample(self, t_prev: float) -> float:
        ssrcs, stamps = await asyncio.to_thread(self.rig.sink.cut)
        now = time.time()
        self.packets.add(Piece(t_prev, now, ssrcs, stamps))
        s, t = self.packets.streams(self.rig.bot.ssrc_guild, t_prev, now, self.rig.dead_ssrcs)
        row: dict[str, Any] = {"t": round(now - self.t_start, 1), "span_s": round(now - t_prev, 2)}
        row.update(window_row(s, t, len(self.rig.guilds), now - t_prev))
        node_status = await status(self.rig.http, self.rig.url)
        procs = node_processes(self.rig.node_pid, node_status)
        self.rss.append({"t": now - self.t_start, "processes": procs})
        row["rss_control_mb"] = round(sum(p["rss_mb"] for p in procs if p["role"] == "control"), 1)
        row["rss_workers_mb"] = round(
            sum(p["rss_mb"] for p in procs if p["role"].startswith("worker")), 1
        )
        row["rss_all_mb"] = round(sum(p["rss_mb"] for p in procs), 1)
        row["worker_restarts"] = node_status.get("engine", {}).get("restarts", 0)
        row.update(await self._sessions(now))
        row["faults"] = [
            f"{f['n']}:{f['kind']}"
            for f in self.faults
            if t_prev - self.t_start < f["t"] <= now - self.t_start
        ]
        self.rows.append(row)
        print(_row_line(row), flush=True)
        return now

    async def _sessions(self, now: float) -> dict[str, Any]:
        """``GET /current`` for every guild the bot joined: 404 = the node lost it."""
        gate = asyncio.Semaphore(32)
        outcome: dict[int, str] = {}

        async def one(guild: int) -> None:
            async with gate:
                try:
                    async with self.rig.http.get(
                        self.rig.url + "/current", headers=self.rig.bot.headers(guild)
                    ) as r:
                        body = await r.read()
                        idle = r.status == 200 and body.strip() == b"null"
                        outcome[guild] = "idle" if idle else str(r.status)
                except (aiohttp.ClientError, TimeoutError) as e:
                    outcome[guild] = type(e).__name__

        await asyncio.gather(*(one(g) for g in self.rig.all_guilds()))
        for guild, result in outcome.items():
            if result == "404":
                self.lost.setdefault(guild, now - self.t_start)
        return {
            "sessions_lost": len(self.lost),
            "players_idle": sum(1 for r in outcome.values() if r == "idle"),
            "session_check_other": sum(
                1 for r in outcome.values() if r not in ("200", "idle", "404")
            ),
        }

    def _judge_faults(self, done: bool) -> None:
        """Judge every fault whose observation window has passed (all of them at the end)."""
        now = time.time() - self.t_start
        for record in self.faults:
            if "judged" in record or ("t_done" not in record and not done):
                continue
            limit = record["t"] + self.args.observe
            if record["planned_next"] is not None:
                limit = min(limit, record["planned_next"])
            obs_end = max(min(limit, now), record["t"] + 1.0)
            if obs_end > now - 0.5 and not done:
                continue
            judge(self, record, obs_end)


def _row_line(row: dict[str, Any]) -> str:
    return (
        f"t={row['t']:6.1f}s pps {row['pps_mean']:6.2f} (min {row['pps_min']:6.2f}) "
        f"p99 {row.get('gap_p99_ms', float('nan')):7.2f} ms missed {row.get('missed', 0):5d} "
        f"RSS ctl {row['rss_control_mb']:6.1f} wrk {row['rss_workers_mb']:7.1f} MB "
        f"lost {row['sessions_lost']} idle {row['players_idle']} "
        f"restarts {row['worker_restarts']} {' '.join(row['faults'])}"
    )


async def setup_and_soak(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    track = media.ogg_opus(root / "music.ogg", args.track_seconds)
    query = f"local:{track}"
    per_guild = _distinct_tracks(track, args) if args.distinct_tracks else query
    sink = Sink()
    vs_port, vs_udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    vs = await open_voice_server(sink.port, args.dave, vs_port, vs_udp_port)
    args.members = []
    rig: Rig | None = None
    try:
        async with node_process(args, root) as (url, pid), aiohttp.ClientSession() as http:
            lvsp = await LvspClient.open(http, vs.lvsp_url, LVSP_TOKEN)
            bot = await start_players(args, http, url, vs, per_guild, lvsp)
            victim = GUILD0 + args.players
            rig = Rig(
                args, http, url, pid, sink, vs, vs_port, vs_udp_port, lvsp, bot,
                [GUILD0 + i for i in range(args.players)], victim, query,
            )  # fmt: skip
            rig.members = {m.server_id: m for m in args.members}
            await bot.join_via(lvsp, victim, victim + CHANNEL_OFFSET, rig.endpoint)
            await bot.play(victim, query)
            await _repeat(rig, per_guild)
            await asyncio.sleep(args.warmup)
            soak = Soak(rig)
            await soak.run()
            result = {
                "timeline": soak.rows,
                "faults": soak.faults,
                "rss_samples": soak.rss,
                "events": [list(e) for e in soak.events[-2000:]],
                "lost_sessions": {str(g): round(t, 1) for g, t in soak.lost.items()},
                "bot_events": dict(bot.log.counts),
                "t_start": soak.t_start,
            }
            await bot.close()
            await lvsp.close()
            return result
    finally:
        for member in rig.members.values() if rig is not None else args.members:
            with contextlib.suppress(Exception):
                await member.close()
        await (rig.vs if rig is not None else vs).stop()
        sink.close()


def _distinct_tracks(track: Path, args: argparse.Namespace) -> Callable[[int], str]:
    """A hard link of the track per guild: the same audio under a URL of its own, as if every
    guild played a different song (the node tells tracks apart by URL)."""
    for i in range(args.players):
        os.link(track, track.with_name(f"music-{GUILD0 + i}.ogg"))
    return lambda guild: f"local:{track.with_name(f'music-{guild}.ogg')}"


async def _repeat(rig: Rig, query: str | Callable[[int], str]) -> None:
    """Every guild loops, so the soak crosses track ends: ``--repeat queue`` (default) queues
    the track a second time and repeats the queue (each end is a gapless join to the other
    entry); ``--repeat track`` repeats the one track."""
    gate = asyncio.Semaphore(32)
    mode = rig.args.repeat

    async def one(guild: int) -> None:
        async with gate:
            if mode == "queue":
                again = rig.query if isinstance(query, str) or guild == rig.victim else query(guild)
                body = {"query": again}
                code, _ = await rig.bot.request("POST", "/loadSource", body, guild=guild)
                assert code == 200, f"/loadSource for guild {guild}: HTTP {code}"
            code, _ = await rig.bot.request("POST", "/repeat", {"mode": mode}, guild=guild)
            assert code == 200, f"/repeat for guild {guild}: HTTP {code}"

    await asyncio.gather(*(one(g) for g in rig.all_guilds()))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    add_rig_arguments(p, players=300, workers=2)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--interval", type=float, default=10.0, help="seconds per timeline row")
    p.add_argument("--faults", default=",".join(FAULTS), help="kinds, in turn")
    p.add_argument("--fault-count", type=int, help="default: one per 75 s, at least one of each")
    p.add_argument("--first-fault", type=float, help="seconds (default: min(30, spacing))")
    p.add_argument("--observe", type=float, default=30.0, help="longest window judged per fault")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds between set-up and t=0")
    p.add_argument("--track-seconds", type=float, default=120.0, help="length of the track")
    p.add_argument("--repeat", choices=("queue", "track"), default="queue")
    p.add_argument(
        "--distinct-tracks",
        action="store_true",
        help="every guild plays its own URL (default: all play one, as with a popular song)",
    )
    p.add_argument("--stall-guilds", type=int, default=2)
    p.add_argument("--stall-seconds", type=float, default=15.0)
    p.add_argument("--stall-rate", type=float, default=20.0, help="unread heartbeats per second")
    p.add_argument("--stall-payload", type=int, default=256 << 10, help="bytes per heartbeat")
    p.add_argument("--stall-max-mb", type=float, default=64.0)
    p.add_argument("--stall-drain", type=float, default=10.0)
    p.add_argument("--burst", type=int, default=300, help="bad REST requests per burst")
    p.add_argument("--recover-within", type=float, default=5.0)
    p.add_argument("--gap-p99-limit", type=float, default=40.0, help="ms")
    p.add_argument("--rss-slope-limit", type=float, default=50.0, help="MB per hour")
    p.add_argument("--json", help="result file (default bench/results/soak-<time>.json)")
    args = p.parse_args(argv)
    unknown = set(args.faults.split(",")) - set(FAULTS) - {""}
    if unknown:
        p.error(f"--faults: unknown {sorted(unknown)}; expected some of {', '.join(FAULTS)}")
    if args.json is None:
        args.json = f"bench/results/soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    return args


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        return await setup_and_soak(args, Path(tmp))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(main_async(args))
    result["args"] = {k: v for k, v in vars(args).items() if k != "members"}
    result["summary"] = summary = judge_run(args, result)
    print_report(result)
    Path(args.json).write_text(json.dumps(result, indent=1, default=_jsonable))
    print(f"# written: {args.json} (node log beside it)")
    return 0 if summary["pass"] else 1


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON: {type(x)}")


if __name__ == "__main__":
    sys.exit(main())
