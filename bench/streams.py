"""Many guild players in one node: CPU, memory and pacing per stream (issue 7).

    python -m bench.streams --players N --mode passthrough|transcode [--dave] [--seconds S]
                            [--workers W] [--peer discordpy] [--stress] [--json out.json]
                            [--receive] [--talk] [--ab K] [--churn R]

Setup, all on loopback: the built-in voice server (voice gateway, LVSP, DAVE delivery) runs in
this process; its advertised UDP port is a counting sink (``bench/sink.py``, its own process:
RTP headers only, kernel arrival timestamps), because re-sealing every packet in the voice
server would cost more CPU than the node under test. The node runs as ``python -m audionode
run`` (control process + ``--workers`` engine processes); one bot session
(``audionode/demo/bot.py``) joins N guilds, one channel each, and plays the same local file in
every guild:

- passthrough: Ogg/Opus 48 kHz 128 kbit/s (forwarded packet for packet);
- transcode: MP3 44.1 kHz 128 kbit/s, decoded, resampled and encoded with libopus
  (complexity 10, 128 kbit/s), and the bare-libopus cost of the same audio measured here.

With ``--peer discordpy`` the same players are discord.py 2.7.1 ``VoiceClient``s playing with
its ``AudioPlayer`` (``bench/dpy_peer.py``) instead of the node. CPU is the sum over every
process of the system under test (node: control, workers, extraction pool; discord.py: its
process and its ffmpeg children), from psutil CPU times over the window.

Receive (issue 15): ``--receive`` turns the node's ``voice.receive`` on; ``--talk`` (with
``--dave``) makes each channel's second member speak to the node (``bench/talk.py``), so every
player also receives one stream; ``--ab K`` runs K pairs, receive off then on, in one
invocation and prints the send path's gaps side by side.

Churn: ``--churn R`` (with ``--dave``) replaces R channel members a second during the window,
so the node commits DAVE group changes while it plays (``bench/churn.py``).
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
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from audionode.config import VoiceServerConfig
from audionode.demo.bot import Bot
from audionode.voiceserver.app import VoiceServer
from audionode.voiceserver.lvsp_client import LvspClient
from bench import media
from bench.churn import Churn
from bench.sink import Sink
from bench.stress import Pages, Stress
from bench.talk import talk_streams
from tests.transport.listener import Listener

LVSP_TOKEN = "bench-lvsp"  # noqa: S105 - loopback-only benchmark secret
PASSWORD = "bench-password"  # noqa: S105 - loopback-only benchmark secret
BOT = 4242
LISTENER = 4343
GUILD0, CHANNEL0 = 10_000, 20_000


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Tree:
    """CPU and RSS of a process and all its descendants (re-listed at every reading)."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)

    def procs(self) -> list[psutil.Process]:
        return [self.root, *self.root.children(recursive=True)]

    def cpu(self) -> dict[int, float]:
        out = {}
        for p in self.procs():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                out[p.pid] = t.user + t.system + t.children_user + t.children_system
        return out

    def rss(self) -> int:
        total = 0
        for p in self.procs():
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def pss(self) -> int:
        """Proportional set size summed: shared pages (libraries, forked parents) are split
        between the processes that map them instead of counted in each, so trees of many
        processes (discord.py's ffmpeg per guild) are not overstated as the RSS sum is."""
        total = 0
        for p in self.procs():
            with contextlib.suppress(psutil.Error):
                total += p.memory_full_info().pss
        return total


async def open_voice_server(
    sink_port: int, dave: bool, port: int = 0, udp_port: int = 0
) -> VoiceServer:
    """The built-in voice server, started in this loop, advertising the sink as its UDP port
    (ports 0 = ephemeral; ``bench/soak.py`` restarts it on the ports it had)."""
    cfg = VoiceServerConfig(
        host="127.0.0.1",
        port=port,
        udp_port=udp_port,
        lvsp_token=LVSP_TOKEN,
        dave_required=dave,
        lvsp_heartbeat_interval=3600.0,
    )
    server = VoiceServer(cfg)
    await server.start()
    # Op 2 Ready advertises (public_ip, udp_port): point voice clients at the sink instead.
    server.udp_port = sink_port
    return server


@contextlib.asynccontextmanager
async def voice_server(sink_port: int, dave: bool) -> AsyncIterator[VoiceServer]:
    server = await open_voice_server(sink_port, dave)
    try:
        yield server
    finally:
        await server.stop()


def node_config(args: argparse.Namespace, root: Path, port: int) -> dict[str, Any]:
    """The node's config file: loopback, local files under ``root``, ``args.workers`` engine
    workers, ``args.dave``, ``args.buffer_frames``."""
    return {
        "password": PASSWORD,
        "host": "127.0.0.1",
        "port": port,
        "log_level": "WARNING",
        "heartbeat_interval": 3600.0,
        "engine": {
            "workers": args.workers,
            "complexity": 10,
            "bitrate": 128000,
            "buffer_frames": args.buffer_frames,
            # --admission off: measure cost past the budget admission control keeps (its
            # prior, engine.admission.stream_cost, refuses a worker's 284th player until
            # the worker has measured itself).
            "admission": {"enabled": getattr(args, "admission", "on") == "on"},
            "realtime_priority": getattr(args, "realtime", 0),
        },
        "voice": {"dave": args.dave, "receive": args.receive},
        # allow_private: --stress searches pages of a loopback server (bench/stress.py).
        "sources": {
            "local": {"enabled": True, "roots": [str(root)]},
            "http": {"allow_private": True},
        },
    }


@contextlib.asynccontextmanager
async def node_process(
    args: argparse.Namespace, root: Path, config: dict[str, Any] | None = None
) -> AsyncIterator[tuple[str, int]]:
    """``python -m audionode run`` with ``config`` (default :func:`node_config`); yields its
    URL and pid once ``/health`` answers. Its stderr goes to ``root/node.log`` (a file, not a
    pipe nobody reads while it runs: a full pipe would block the node's logging)."""
    port = free_port()
    config = node_config(args, root, port) if config is None else {**config, "port": port}
    path = root / "node.json"
    path.write_text(json.dumps(config))
    log_path = root / "node.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "audionode",
            "run",
            "--config",
            str(path),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_file,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                if proc.returncode is not None:
                    await proc.wait()
                    tail = log_path.read_bytes()[-2000:].decode(errors="replace")
                    raise SystemExit(f"the node exited: {tail}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{url}/health") as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        err = log_path.read_bytes()
        if args.json:  # kept beside the result: the node's warnings (stalls, gc) explain misses
            Path(args.json).with_suffix(".node.log").write_bytes(err)
        if b"Traceback" in err or b"ERROR" in err:
            print("# node stderr (tail):\n" + err.decode(errors="replace")[-3000:])


async def status(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(f"{url}/status", headers={"Authorization": PASSWORD}) as r:
        body: dict[str, Any] = await r.json()
        return body


async def dave_member(
    args: argparse.Namespace,
    http: aiohttp.ClientSession,
    lvsp: LvspClient,
    vs: VoiceServer,
    guild: int,
    channel: int,
) -> Listener:
    """A second member per channel, joined first: a lone member forms no DAVE group (the
    built-in voice server, like Discord, needs a committer and someone to add), so with
    ``--dave`` every stream is end-to-end encrypted to this member. It reads nothing but its
    websocket (the node's packets go to the sink). It heartbeats: one that did not would time
    out 27.5 s after joining (two Hello intervals) and leave the group, and the node would then
    commit hundreds of removals inside the window of a large run (before 2026-12-07 it did)."""
    grant = await lvsp.grant(LISTENER, channel, guild)
    member = Listener(
        f"ws://127.0.0.1:{vs.port}",
        guild,
        LISTENER,
        channel,
        grant.session_id,
        grant.token,
        heartbeat=True,
    )
    await member.connect(http)
    args.members.append(member)
    return member


async def start_players(
    args: argparse.Namespace,
    http: aiohttp.ClientSession,
    url: str,
    vs: VoiceServer,
    query: str | Callable[[int], str],
    lvsp: LvspClient | None = None,
) -> Bot:
    """One bot session, ``args.players`` guilds joined (``args.concurrency`` at a time), the
    same ``query`` playing in each (or ``query(guild)``); ``lvsp`` (default: a new client)
    grants the voice states."""
    if lvsp is None:
        lvsp = await LvspClient.open(http, vs.lvsp_url, LVSP_TOKEN)
    bot = await Bot.open(http, url, PASSWORD, BOT)
    gate = asyncio.Semaphore(args.concurrency)
    endpoint = f"ws://127.0.0.1:{vs.port}"

    async def one(i: int) -> None:
        async with gate:
            if args.dave:
                await dave_member(args, http, lvsp, vs, GUILD0 + i, CHANNEL0 + i)
            await bot.join_via(lvsp, GUILD0 + i, CHANNEL0 + i, endpoint)
            await bot.play(GUILD0 + i, query if isinstance(query, str) else query(GUILD0 + i))

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(args.players)))
    print(f"# {args.players} players playing after {time.monotonic() - started:.1f} s", flush=True)
    return bot


async def measure(
    args: argparse.Namespace, tree: Tree, sink: Sink, during: Any = None, snap: Any = None
) -> dict[str, Any]:
    """The window: sink gaps, CPU of the tree, RSS at the end; ``snap()`` (async) is called
    at both ends and its results kept as ``snaps``; ``during()`` starts loads for the window,
    a dict of name -> load whose ``await stop()`` result goes into the receiver's row."""
    await asyncio.sleep(args.warmup)
    snaps = [await snap()] if snap is not None else []
    cpu0, t0 = tree.cpu(), time.monotonic()
    sink.start()
    loads = during() if during is not None else {}
    await asyncio.sleep(args.seconds)
    cpu1, t1 = tree.cpu(), time.monotonic()
    if snap is not None:
        snaps.append(await snap())
    gaps = sink.stop()
    for name, load in loads.items():
        gaps[name] = await load.stop()
    span = t1 - t0
    per_pid = {pid: cpu1[pid] - cpu0.get(pid, 0.0) for pid in cpu1}
    cpu_total = sum(per_pid.values())
    return {
        "window_s": round(span, 3),
        "cpu_cores": round(cpu_total / span, 4),
        "cpu_pct_per_stream": round(100 * cpu_total / span / args.players, 4),
        "cpu_by_pid": {str(k): round(v / span, 4) for k, v in per_pid.items()},
        "rss_mb": round(tree.rss() / 2**20, 1),
        "rss_kb_per_stream": round(tree.rss() / 1024 / args.players, 1),
        "pss_mb": round(tree.pss() / 2**20, 1),
        "pss_kb_per_stream": round(tree.pss() / 1024 / args.players, 1),
        "receiver": gaps,
        "snaps": snaps,
    }


async def run_node(
    args: argparse.Namespace,
    root: Path,
    query: str,
    sink: Sink,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The node's side of a run; ``config``: the node's config (default :func:`node_config`,
    ``bench/fanout.py`` passes its own)."""
    async with (
        voice_server(sink.port, args.dave) as vs,
        node_process(args, root, config) as (url, pid),
        # no connection limit: with --talk, a websocket per channel stays open all along
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
    ):
        tree = Tree(pid)
        await asyncio.sleep(1.0)
        baseline = tree.rss()
        # opened before the set-up, while this process is idle (after it, at 1,000 players,
        # the LVSP handshake can time out behind the members' traffic)
        lvsp = await LvspClient.open(http, vs.lvsp_url, LVSP_TOKEN) if args.churn else None
        bot = await start_players(args, http, url, vs, query)
        if args.talk:
            talk_s = args.warmup + args.seconds + 10
            sink.talk(await talk_streams(vs, args.members, BOT, talk_s), not args.talk_burst)
        pages = await Pages.start() if args.stress else None

        def during() -> dict[str, Any]:
            loads: dict[str, Any] = {}
            if pages is not None:
                loads["stress"] = Stress.start(http, url, bot, GUILD0, args.players, pages.url)
            if lvsp is not None:
                loads["churn"] = Churn.start(http, lvsp, args.members, args.churn)
            return loads

        try:
            result = await measure(args, tree, sink, during, lambda: status(http, url))
        finally:
            if pages is not None:
                await pages.close()
        before, after = result.pop("snaps")
        result["rss_kb_per_stream_over_idle"] = round(
            (tree.rss() - baseline) / 1024 / args.players, 1
        )
        result["engine"] = engine_delta(before["engine"], after["engine"])
        result["bot_errors"] = bot.log.errors[:5]
        result["bot_events"] = dict(bot.log.counts)
        await bot.close()
        return result


def engine_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    f0, f1 = before.get("frames", {}), after.get("frames", {})
    players = after.get("players", {})
    return {
        "frames_in_window": {
            k: f1.get(k, 0) - f0.get(k, 0) for k in ("sent", "nulled", "deficit", "errors")
        },
        "players_reported": len(players),
        "players_dave": sum(1 for p in players.values() if p.get("dave")),
        "engines": after.get("engines", {}),
        "restarts": after.get("restarts", 0),
        "hearing": {
            k: v - before.get("hearing", {}).get(k, 0)
            for k, v in after.get("hearing", {}).items()
            if k.startswith("receive_")
        },
    }


async def run_discordpy(args: argparse.Namespace, path: Path, sink: Sink) -> dict[str, Any]:
    from bench.dpy_peer import spawn_peer

    async with voice_server(sink.port, args.dave) as vs, aiohttp.ClientSession() as http:
        if args.dave:
            lvsp = await LvspClient.open(http, vs.lvsp_url, LVSP_TOKEN)
            for i in range(args.players):
                await dave_member(args, http, lvsp, vs, GUILD0 + i, CHANNEL0 + i)
        proc, ready = await spawn_peer(
            vs.lvsp_url,
            LVSP_TOKEN,
            f"127.0.0.1:{vs.port}",
            args.players,
            path,
            args.mode,
            GUILD0,
            CHANNEL0,
        )
        try:
            started = time.monotonic()
            line = await asyncio.wait_for(ready, 120 + args.players * 1.0)
            _, playing, failed = line.split()
            print(
                f"# {playing} of {args.players} discord.py players playing after "
                f"{time.monotonic() - started:.1f} s ({failed} connects timed out or failed)",
                flush=True,
            )
            tree = Tree(proc.pid)
            result = await measure(args, tree, sink)
            result["peer_playing"], result["peer_failed_connects"] = int(playing), int(failed)
        finally:
            proc.terminate()
            await proc.wait()
        return result


def describe(args: argparse.Namespace, result: dict[str, Any]) -> None:
    r = result["receiver"]
    who = (
        "discord.py 2.7.1 VoiceClient+AudioPlayer"
        if args.peer == "discordpy"
        else f"audionode node ({args.workers} engine workers)"
    )
    print(
        f"system under test: {who}; mode {args.mode}; DAVE {'on' if args.dave else 'off'}; "
        f"{args.players} players; window {result['window_s']} s"
        f"{'; control-plane stress on' if args.stress else ''}"
    )
    print(
        "receiver: counting UDP sink (RTP header + kernel timestamp per packet; the voice "
        "server's gateway/LVSP/DAVE delivery are real, its UDP forwarding is bypassed)"
    )
    print(
        f"CPU: {result['cpu_cores']:.3f} cores total = "
        f"{result['cpu_pct_per_stream']:.3f} % of a core per stream; RSS {result['rss_mb']} MB "
        f"= {result['rss_kb_per_stream']} KB per stream; PSS {result['pss_mb']} MB = "
        f"{result['pss_kb_per_stream']} KB per stream"
    )
    print(
        f"packets/s per stream: mean {r.get('pps_per_stream')} min {r.get('pps_per_stream_min')}"
        f"; streams seen {r.get('streams')}"
    )
    print(
        f"gap ms: p50 {r.get('gap_p50_ms')} p99 {r.get('gap_p99_ms')} p99.9 "
        f"{r.get('gap_p999_ms')} max {r.get('gap_max_ms')}; missed (gap > 40 ms) "
        f"{r.get('missed')} = {r.get('missed_pct')} %"
    )
    for key in (
        "engine",
        "bare_libopus",
        "bare_libopus_other_core_busy",
        "cost_vs_bare_libopus",
        "cost_vs_bare_libopus_other_core_busy",
        "stress",
        "churn",
    ):
        if key in result or key in r:
            print(f"{key}: {json.dumps(result.get(key, r.get(key)))}")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as tmp:
        root = Path(tmp)
        length = args.seconds + args.warmup + 90 + args.players * 0.4
        if args.mode == "passthrough":
            path = media.ogg_opus(root / "music.ogg", length)
        else:
            path = media.mp3(root / "music.mp3", length)
        sink = Sink()
        args.members = []
        try:
            if args.peer == "discordpy":
                result = await run_discordpy(args, path, sink)
            else:
                result = await run_node(args, root, f"local:{path}", sink)
        finally:
            for member in args.members:
                await member.close()
            sink.close()
        if args.mode == "transcode":
            bare = media.bare_libopus(path, min(args.seconds, 30.0))
            with media.busy_neighbour():
                loaded = media.bare_libopus(path, min(args.seconds, 30.0))
            result["bare_libopus"] = bare
            result["bare_libopus_other_core_busy"] = loaded
            per_audio_s = result["cpu_pct_per_stream"] / 100
            result["cost_vs_bare_libopus"] = round(per_audio_s / bare["cpu_per_audio_s"], 3)
            result["cost_vs_bare_libopus_other_core_busy"] = round(
                per_audio_s / loaded["cpu_per_audio_s"], 3
            )
        return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_rig_arguments(p, players=50, workers=max(1, (os.cpu_count() or 2) - 1))
    p.add_argument("--mode", choices=("passthrough", "transcode"), default="passthrough")
    p.add_argument("--seconds", type=float, default=20.0, help="measurement window")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--peer", choices=("node", "discordpy"), default="node")
    p.add_argument(
        "--stress",
        action="store_true",
        help="200 REST requests/s and continuous searches during the window",
    )
    p.add_argument(
        "--churn",
        type=float,
        default=0.0,
        help="(--dave) members leaving and joining per second during the window (bench/churn.py)",
    )
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--ab", type=int, default=0, help="K pairs of runs, receive off then on")
    args = p.parse_args(argv)
    if args.churn and (not args.dave or args.talk or args.peer != "node"):
        p.error("--churn needs --dave, the node as the peer, and no --talk")
    return args


def add_rig_arguments(p: argparse.ArgumentParser, players: int, workers: int) -> None:
    """The options :func:`node_config` and :func:`start_players` read (``bench/soak.py``
    takes the same ones)."""
    p.add_argument("--players", type=int, default=players)
    p.add_argument("--dave", action="store_true", help="DAVE end-to-end encryption on")
    p.add_argument("--workers", type=int, default=workers, help="engine.workers")
    p.add_argument("--buffer-frames", type=int, default=3, help="engine.buffer_frames")
    p.add_argument("--concurrency", type=int, default=64, help="guilds set up at once")
    p.add_argument(
        "--admission", choices=("on", "off"), default="on", help="engine.admission.enabled"
    )
    p.add_argument("--receive", action="store_true", help="voice.receive on in the node")
    p.add_argument(
        "--realtime", type=int, default=0, help="engine.realtime_priority (0 = normal)"
    )
    p.add_argument("--talk", action="store_true", help="a member speaks to each player (--dave)")
    p.add_argument(
        "--talk-burst",
        action="store_true",
        help="the members' packets all at once each 20 ms (default: spread over the 20 ms)",
    )


def main_ab(args: argparse.Namespace) -> None:
    """Receive off and on alternately in one invocation: the send path's gaps side by side."""
    rows = []
    for k in range(args.ab):
        for receive in (False, True):
            args.receive = receive
            result = asyncio.run(main_async(args))
            r, e = result["receiver"], result["engine"]
            row = {
                "pair": k + 1, "receive": receive, "cpu_cores": result["cpu_cores"],
                "p50": r.get("gap_p50_ms"), "p99": r.get("gap_p99_ms"),
                "p999": r.get("gap_p999_ms"), "max": r.get("gap_max_ms"),
                "missed_pct": r.get("missed_pct"), "pps_min": r.get("pps_per_stream_min"),
                "received": e.get("hearing", {}), "talk_sent": r.get("talk_sent"),
                "dave": e.get("players_dave"), "load": os.getloadavg()[0],
            }  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    for receive in (False, True):
        p99 = [row["p99"] for row in rows if row["receive"] is receive]
        print(f"receive {'on ' if receive else 'off'}: p99 gap ms per run {p99}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.ab:
        main_ab(args)
        return
    result = asyncio.run(main_async(args))
    result["args"] = {k: v for k, v in vars(args).items() if k != "members"}
    describe(args, result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
