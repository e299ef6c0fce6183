"""Pacing benchmark: 10 s of opus through VoiceConnection + Sender, timed at the receiver.

Setup (all on loopback, one process, one event loop, like an in-process engine): the built-in
voice server; the node's VoiceConnection (DAVE on) fed by the real-time Sender; a second member
(another VoiceConnection, receive path on) in the same channel that timestamps every packet of
the node it opens. Prints packets/s and the inter-packet gap distribution at the
receiver (and, for comparison, at the send call).

    .venv/bin/python bench/pacing.py [--seconds 10] [--mode aes|xchacha] [--uvloop]

Target (issue 4): 50.0 ± 0.5 packets/s, p99 gap <= 25 ms on an idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for the tests' helpers


from audionode.config import VoiceConfig
from audionode.transport.sender import Sender
from audionode.transport.voice_conn import VoiceConnection
from audionode.voice.crypto import AES_GCM_MODE, XCHACHA_MODE
from audionode.voice.events import AudioPacket, ReceiveEvent
from tests.transport.opus import OpusFrame, sine_opus
from tests.transport.voiceserver_harness import voice_server

GUILD, CHANNEL, NODE, LISTENER = 9001, 9002, 9003, 9004


class Frames:
    def __init__(self, opus: list[bytes]) -> None:
        self.frames = [OpusFrame(p, 1, 20 * i) for i, p in enumerate(opus)]
        self.i = 0

    def pop(self) -> OpusFrame | None:
        if self.i >= len(self.frames):
            return None
        self.i += 1
        return self.frames[self.i - 1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(label: str, times: list[float]) -> None:
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(times)]
    span = times[-1] - times[0]
    rate = (len(times) - 1) / span
    print(
        f"{label:<9} packets={len(times):5d}  rate={rate:7.3f}/s  gap ms: "
        f"p50={statistics.median(gaps):6.2f} p99={percentile(gaps, 0.99):6.2f} "
        f"max={max(gaps):6.2f} min={min(gaps):6.2f}  (<5 ms: {sum(g < 5 for g in gaps)})"
    )


async def run(seconds: float, mode: str) -> None:
    opus = sine_opus(seconds)[: round(seconds * 50)]
    arrivals: list[float] = []
    sends: list[float] = []
    async with voice_server() as h:
        grants = [await h.lvsp.grant(u, CHANNEL, GUILD) for u in (NODE, LISTENER)]

        def on_receive(event: ReceiveEvent) -> None:
            if isinstance(event, AudioPacket):
                arrivals.append(time.monotonic())

        conns = [
            VoiceConnection(
                GUILD,
                g.user_id,
                g.session_id,
                CHANNEL,
                g.token,
                h.endpoint,
                VoiceConfig(),
                lambda e: None,
                http=h.http,
                modes=(mode,),
                on_receive=on_receive if g.user_id == LISTENER else None,
            )
            for g in grants
        ]
        node, listener = conns
        for c in conns:
            await c.connect()
        deadline = time.monotonic() + 10
        while not (node.dave.ready and listener.dave.ready):
            assert time.monotonic() < deadline, "DAVE group not established in 10 s"
            await asyncio.sleep(0.02)
        send = node.send_frame

        def timed_send(opus: bytes) -> None:
            sends.append(time.monotonic())
            send(opus)

        node.send_frame = timed_send  # type: ignore[method-assign]
        sender: Sender[int] = Sender()
        sender.start()
        sender.attach(GUILD, node)
        sender.play(GUILD, Frames(opus))
        await asyncio.sleep(seconds + 0.5)
        sender.close()
        stats = sender.stats(GUILD)
        for c in conns:
            await c.close()
    loop = type(asyncio.get_running_loop()).__module__
    print(
        f"receiver: second member via the built-in voice server (loopback), mode {mode}, "
        f"DAVE on, loop {loop}, {seconds:g} s of audio"
    )
    print(f"sender stats: {stats}")
    audio = len(opus)
    report("receiver", arrivals[:audio])
    report("send call", sends[:audio])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--mode", choices=("aes", "xchacha"), default="aes")
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    mode = AES_GCM_MODE if args.mode == "aes" else XCHACHA_MODE
    if args.uvloop:
        import uvloop

        uvloop.run(run(args.seconds, mode))
    else:
        asyncio.run(run(args.seconds, mode))


if __name__ == "__main__":
    main()
