"""Per-packet cost of the sender's hot path alone: ``Sender.step`` over N real
``VoiceConnection`` send paths (RTP, AES-GCM, DAVE-style frame encryption optional, uvloop UDP
``sendto`` to a local socket nobody blocks on), frames ready in memory.

    python -m bench.sender_micro [--streams 500] [--ticks 400] [--dave] [--path python|native]

``--path native`` (the default when the extension is built) uses the native packetizer and the
sender's per-tick batch (decision 0017); ``--path python`` the pure-Python path.

The connections are not handshaken: each gets the packetizer, cipher and UDP socket a finished
handshake would install (op 2 + op 4), and with ``--dave`` a real davey session of a one-member
group in passthrough-off mode is not available without a voice server, so ``--dave`` uses a
stand-in that appends a DAVE-sized trailer (the cost of ``DaveState.encrypt_opus`` itself is in
the full benchmark's profile, ``bench/streams.py``). Prints microseconds per packet.
"""

from __future__ import annotations

import argparse
import os
import socket
import time

import uvloop

from audionode import native
from audionode.config import VoiceConfig
from audionode.media.frames import Frame
from audionode.transport.sender import Sender
from audionode.transport.udp import VoiceUdp
from audionode.transport.voice_conn import VoiceConnection
from audionode.voice.crypto import AesGcmRtpsize
from audionode.voice.packetizer import NativePacketizer, Packetizer


class Loop:
    """An endless frame source."""

    def __init__(self, frame: Frame) -> None:
        self.frame = frame

    def pop(self) -> Frame:
        return self.frame


class FakeDave:
    def __init__(self) -> None:
        # What DaveState offers the native path (its davey encrypt_opus, called directly).
        self.frame_encrypt = self.encrypt_opus

    def encrypt_opus(self, frame: bytes) -> bytes:
        return frame + b"\x00" * 14 + b"\xfa\xfa"


async def run(streams: int, ticks: int, dave: bool, path: str) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    rx.bind(("127.0.0.1", 0))
    host, port = rx.getsockname()
    mod = native.module() if path == "native" else None
    if path == "native" and mod is None:
        raise SystemExit(native.describe())
    sender: Sender[int] = Sender(out=mod.Batch() if mod is not None else None)
    packetizer = NativePacketizer if mod is not None else Packetizer
    frame = Frame(os.urandom(320), 1, 0)
    for i in range(streams):
        conn = VoiceConnection(1, 2, "s", 3, "t", "ws://127.0.0.1:1", VoiceConfig(), print)
        p = packetizer(1000 + i, AesGcmRtpsize(os.urandom(32)))
        if dave:
            p.set_encryptor(FakeDave())
        conn.session.packetizer = p  # what op 2 + op 4 would install
        conn.session._udp_open = True
        conn.session._refresh()
        conn._udp = await VoiceUdp.open(host, port)
        sender.attach(i, conn)
        sender.play(i, Loop(frame))
    now = 0.0
    sender.step(now)  # apply the commands, speaking on
    began_cpu, began = time.process_time(), time.perf_counter()
    for _ in range(ticks):
        now += 0.02
        sender.step(now)
        while True:  # keep the receive queue short without blocking on it
            try:
                rx.recv(2048, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
    cpu, wall = time.process_time() - began_cpu, time.perf_counter() - began
    packets = streams * ticks
    print(
        f"{path}: {streams} streams x {ticks} ticks, dave={'stand-in' if dave else 'off'}: "
        f"{cpu / packets * 1e6:.2f} us CPU per packet (incl. draining the receiver), "
        f"{wall / ticks * 1e3:.2f} ms per tick"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--streams", type=int, default=500)
    p.add_argument("--ticks", type=int, default=400)
    p.add_argument("--dave", action="store_true")
    p.add_argument(
        "--path", choices=("python", "native"), default="native" if native.built() else "python"
    )
    a = p.parse_args()
    uvloop.run(run(a.streams, a.ticks, a.dave, a.path))


if __name__ == "__main__":
    main()
