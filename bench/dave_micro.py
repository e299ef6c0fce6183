"""What davey's DAVE frame encryption costs per frame, alone: the floor it puts under the
per-packet path (docs/decisions/0017-native-packet-path.md, 0020-native-tick.md).

    python -m bench.dave_micro [--frames 200000] [--size 160]

A real node connection and a listening member join a channel of the built-in voice server, so
davey has a real two-member group (DAVE protocol 1, as in production); then the node's
``DaveState.frame_encrypt`` (davey's ``DaveSession.encrypt_opus``, what the native path calls)
encrypts ``--frames`` opus-sized frames in a tight loop. Prints µs of CPU per frame (process
time, one thread) and davey's own accounting (``get_encryption_stats``), against AES-128-GCM of
the same frame through ``cryptography`` (the cipher DAVE uses, with no framing) as the peer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from audionode.voice.crypto import AES_GCM_MODE
from tests.transport import rig
from tests.transport.rig import until
from tests.transport.voiceserver_harness import voice_server

GUILD, CHANNEL, NODE, LISTENER = 801, 802, 804, 805


def per_call(fn: object, frames: list[bytes], n: int) -> float:
    """µs of process CPU per call of ``fn`` over ``n`` calls (cycling ``frames``)."""
    call = fn  # a local: no attribute lookup in the loop
    k = len(frames)
    t0 = time.process_time()
    for i in range(n):
        call(frames[i % k])  # type: ignore[operator]
    return (time.process_time() - t0) / n * 1e6


async def run(count: int, size: int) -> None:
    async with voice_server() as h, contextlib.AsyncExitStack() as cleanup:
        listener = await rig.join_listener(h, LISTENER, CHANNEL, GUILD)
        cleanup.push_async_callback(listener.close)
        grant = await h.lvsp.grant(NODE, CHANNEL, GUILD)
        node = await rig.start_node(h, grant, AES_GCM_MODE, guild=GUILD)
        cleanup.push_async_callback(node.close)
        await until(lambda: node.vc.dave.ready and listener.dave_ready)
        encrypt = node.vc.dave.frame_encrypt
        session = node.vc.dave.session
        assert encrypt is not None and session is not None
        frames = [os.urandom(size) for _ in range(64)]
        per_call(encrypt, frames, 2000)  # warm-up
        before = session.get_encryption_stats()
        us = per_call(encrypt, frames, count)
        after = session.get_encryption_stats()
        done = after.successes - before.successes
        own = (after.duration - before.duration) / max(1, done)
        aead = AESGCM(os.urandom(16))
        nonce = os.urandom(12)
        peer = per_call(lambda f: aead.encrypt(nonce, f, None), frames, count)
        print(
            f"davey encrypt_opus: {us:.2f} us CPU per {size}-byte frame over {count} frames "
            f"(davey's own stats: {own:.2f} us per frame, {done} successes, "
            f"{after.failures - before.failures} failures); "
            f"AES-128-GCM alone (cryptography): {peer:.2f} us; ratio {us / peer:.1f}x"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--frames", type=int, default=200_000)
    p.add_argument("--size", type=int, default=160, help="opus frame bytes (128 kbit/s: ~320)")
    args = p.parse_args()
    asyncio.run(run(args.frames, args.size))


if __name__ == "__main__":
    main()
