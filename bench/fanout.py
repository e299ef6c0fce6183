"""Fan-out cost: one live source to N players through one shared encode (``media/fanout.py``)
against N passthrough players, in the same run.

    python -m bench.fanout [--players 200] [--seconds 10]
    python -m bench.fanout --e2e [--players 500] [--dave] [--workers 1] [--seconds 20]
                           [--order live,passthrough] [--json out.json]

Media side (default): both cases pop one frame per player every 20 ms (absolute deadlines,
like the sender) and count the process's CPU (every thread) per frame popped; no network and
no crypto (those are per connection either way: ``bench/sender_micro.py``). The shared case
transcodes (MP3 → opus, complexity 10) once for all players; the passthrough case forwards
Ogg/Opus packets, one pipeline per player.

End to end (``--e2e``): ``bench/streams.py``'s rig (the node as ``python -m audionode run``,
the built-in voice server, the counting UDP sink, one bot joining N guilds), run twice in one
invocation: every guild plays one live stream served by this benchmark on loopback (an endless
MP3, 44.1 kHz 128 kbit/s, without a length header, sent chunked at real time after a 2 s lead:
the probe finds no duration, so the track is live, and the node's guilds share one transcode
per worker), then every guild plays the same local Ogg/Opus file (passthrough, one pipeline
each). The node's config is ``bench/streams.py``'s (``sources.http.allow_private`` on, for
the loopback URL) with admission off (500 players on one worker are over its default budget;
this benchmark measures cost, ``bench/overload.py`` admission).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiohttp import web

from audionode.config import EngineConfig
from audionode.media.fanout import SharedEncode
from audionode.media.frames import Frame
from audionode.media.pipeline import Pipeline
from audionode.playable import Playable
from bench import media
from bench.sink import Sink
from bench.streams import add_rig_arguments, describe, node_config, run_node


def paced(
    pops: list[Callable[[], Frame | None]], seconds: float, warmup: float
) -> tuple[float, int]:
    """CPU seconds per popped frame after ``warmup``, and the frames not ready."""
    ticks = int((seconds + warmup) / 0.02)
    popped = nulled = 0
    cpu0 = time.process_time()
    deadline = time.monotonic()
    for tick in range(ticks):
        if tick == int(warmup / 0.02):
            cpu0, popped, nulled = time.process_time(), 0, 0
        for pop in pops:
            if pop() is None:
                nulled += 1
            else:
                popped += 1
        deadline += 0.02
        delay = deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return (time.process_time() - cpu0) / max(1, popped), nulled


def live_mp3(path: Path, seconds: float) -> Path:
    """``bench/media.py``'s music as MP3 (44.1 kHz stereo, 128 kbit/s) with no Xing/Info
    frame and no ID3 tag: nothing in the stream tells its length, as on a radio."""
    rate = 44100
    pcm = media.music(seconds, rate)
    with av.open(
        str(path), "w", format="mp3", options={"write_xing": "0", "id3v2_version": "0"}
    ) as out:
        stream = out.add_stream("libmp3lame", rate=rate, layout="stereo")
        stream.bit_rate = 128_000  # type: ignore[union-attr]
        stream.format = "fltp"  # type: ignore[union-attr]
        step = 1152
        for i in range(0, len(pcm) - step + 1, step):
            chunk = np.ascontiguousarray(pcm[i : i + step].T)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = rate, i, Fraction(1, rate)
            for packet in stream.encode(frame):  # type: ignore[union-attr]
                out.mux(packet)
        for packet in stream.encode(None):  # type: ignore[union-attr]
            out.mux(packet)
    return path


@contextlib.asynccontextmanager
async def live_server(data: bytes, lead: float = 2.0) -> AsyncIterator[tuple[str, dict[str, int]]]:
    """``data`` looped as an endless chunked HTTP response on loopback, paced at its bitrate
    (16 kB/s) on an absolute clock after ``lead`` seconds sent at once; yields the URL and
    the count of requests served."""
    rate = 16_000  # bytes per second of 128 kbit/s
    served = {"requests": 0}

    async def live(request: web.Request) -> web.StreamResponse:
        served["requests"] += 1
        resp = web.StreamResponse(headers={"Content-Type": "audio/mpeg", "icy-name": "bench"})
        await resp.prepare(request)
        start, sent = time.monotonic() - lead, 0
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while True:
                due = int((time.monotonic() - start) * rate)
                while sent < due:
                    at = sent % len(data)
                    piece = data[at : at + min(due - sent, len(data) - at)]
                    await resp.write(piece)
                    sent += len(piece)
                await asyncio.sleep(0.1)
        return resp

    app = web.Application()
    app.router.add_get("/live.mp3", live)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/live.mp3", served
    finally:
        await runner.cleanup()


async def e2e_case(args: argparse.Namespace, root: Path, case: str) -> dict[str, Any]:
    """One run of the rig: every guild on the live stream, or on the passthrough file."""
    config = node_config(args, root, 0)
    config["engine"]["admission"] = {"enabled": False}
    sink = Sink()
    args.members = []
    try:
        if case == "live":
            mp3 = live_mp3(root / "live.mp3", 30.0)
            async with live_server(mp3.read_bytes()) as (url, served):
                result = await run_node(args, root, url, sink, config)
                result["live_requests"] = served["requests"]
        else:
            length = args.seconds + args.warmup + 90 + args.players * 0.4
            ogg = media.ogg_opus(root / "music.ogg", length)
            result = await run_node(args, root, f"local:{ogg}", sink, config)
    finally:
        for member in args.members:
            await member.close()
        sink.close()
    result["load_avg"] = os.getloadavg()
    return result


def e2e(args: argparse.Namespace) -> None:
    results: dict[str, dict[str, Any]] = {}
    for case in args.order.split(","):
        args.mode = "transcode" if case == "live" else "passthrough"
        with tempfile.TemporaryDirectory(prefix=f"bench-fanout-{case}-") as tmp:
            results[case] = result = asyncio.run(e2e_case(args, Path(tmp), case))
        print(f"## {case}: load average {result['load_avg']}")
        describe(args, result)
        shared = {k: v.get("shared") for k, v in result["engine"]["engines"].items()}
        print(f"shared encodes per engine: {shared}", flush=True)
    if "live" in results and "passthrough" in results:
        live, passthrough = results["live"], results["passthrough"]
        print(
            f"live shared / passthrough CPU per guild: "
            f"{live['cpu_pct_per_stream'] / passthrough['cpu_pct_per_stream']:.3f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_rig_arguments(p, players=200, workers=1)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--e2e", action="store_true", help="through the node, the sender and the sink")
    p.add_argument("--order", default="live,passthrough", help="--e2e cases, in this order")
    p.add_argument("--json", help="--e2e: also write the results here")
    a = p.parse_args()
    if a.e2e:
        a.peer, a.stress, a.talk = "node", False, False
        e2e(a)
        return
    length = a.seconds + a.warmup + 5
    with tempfile.TemporaryDirectory() as tmp:
        ogg = media.ogg_opus(Path(tmp) / "a.ogg", length).read_bytes()
        mp3 = media.mp3(Path(tmp) / "a.mp3", length).read_bytes()
    cfg = EngineConfig(complexity=10, bitrate=128000)

    shared_pipe = Pipeline(cfg)
    shared_pipe.start()
    source = Playable.from_bytes(mp3)
    encode = SharedEncode(("bench",), source, shared_pipe)
    shared_pipe.play(source, 1)
    tees = [encode.join(i, i + 1) for i in range(a.players)]
    shared_cpu, shared_nulled = paced([t.pop for t in tees], a.seconds, a.warmup)
    for t in tees:
        t.close()

    pipes = [Pipeline(cfg) for _ in range(a.players)]
    for i, pipe in enumerate(pipes):
        pipe.start()
        pipe.play(Playable.from_bytes(ogg), i + 1)
    pass_cpu, pass_nulled = paced([pp.buffer.pop for pp in pipes], a.seconds, a.warmup)
    for pipe in pipes:
        pipe.close()

    print(
        f"{a.players} players, {a.seconds:g} s: shared transcode {shared_cpu * 1e6:.1f} us CPU "
        f"per player-frame (nulled {shared_nulled}); passthrough pipelines "
        f"{pass_cpu * 1e6:.1f} us (nulled {pass_nulled}); shared / passthrough "
        f"{shared_cpu / pass_cpu:.3f}"
    )


if __name__ == "__main__":
    main()
