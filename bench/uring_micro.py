"""One tick's sends, sendmmsg per socket vs one io_uring_enter (docs/PERFORMANCE.md, "io_uring").

The native flush (docs/decisions/0017-native-packet-path.md) sends each voice stream's datagram
with one ``sendmmsg(MSG_DONTWAIT)`` on that stream's own connected UDP socket, so a tick of N
streams makes N syscalls. This measures, without sealing (the same in every variant), what the
send step costs per datagram for N sockets each connected (non-blocking, as
``transport/udp.py``) to one receiver on loopback, one ~200-byte datagram per socket per tick:

- ``sendmmsg``: one ``sendmmsg`` of one message per socket (what the flush does);
- ``sendto``: one ``send`` per socket (for reference);
- ``uring-sendmsg``: N ``IORING_OP_SENDMSG`` SQEs, one ``io_uring_enter`` submitting them all
  and waiting for the N completions (``DEFER_TASKRUN``, ``SINGLE_ISSUER``, ``COOP_TASKRUN``);
- ``uring-send``: the same with ``IORING_OP_SEND`` (no ``msghdr`` to copy): what the flush's
  io_uring backend does (``audionode/native/_uring.c``, docs/decisions/0021-io-uring-flush.md);
- ``uring-plain``: ``uring-send`` on a ring set up without ``SINGLE_ISSUER``/``DEFER_TASKRUN``
  (any thread may flush it);
- ``uring-fixed``: ``uring-send`` on registered files (no per-request fd lookup);
- ``uring-sqpoll``: ``uring-send`` with a kernel submission thread (``SQPOLL``, 2 ms idle) and
  the completions polled; that thread is one of the process's, so its CPU is counted;
- ``flush-sendmmsg`` and ``flush-io_uring``: the extension's own ``Batch.flush`` with each
  backend (``Batch(backend=...)``), 300 AES-256-GCM channels, the CPU of the flush calls only
  (sealing included, the same in both); needs the extension built.

The receiver is a separate process (like ``bench/sink.py``: one socket, 64 MiB queue, kernel
timestamps, drained every 2 ms with ``recvmmsg``) or, with ``hold``, one that never reads (its
queue fills and the kernel drops at enqueue: the cheapest receive side loopback has). On
loopback the receive softirq runs in the sender's context, so it is part of every variant's cost.

CPU per datagram is the sender process's CPU (``CLOCK_PROCESS_CPUTIME_ID``: every thread, with
softirq time run in its context, as this kernel has no IRQ time accounting) over the measured
ticks, divided by the datagrams; ticks are paced at 20 ms as the node's. The tick's wall time
(median) is the flush's send step as the worker sees it. Variants run in turns, each round in a
rotated order, with the load average recorded per run (other work may share the machine).

Run: ``python -m bench.uring_micro [--streams 300] [--ticks 300] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("uring_micro.c")
MODES = (
    "sendmmsg",
    "sendto",
    "uring-sendmsg",
    "uring-send",
    "uring-plain",
    "uring-fixed",
    "uring-sqpoll",
    "flush-sendmmsg",
    "flush-io_uring",
)
SINKS = ("drain", "hold")


def build() -> Path:
    """Compile ``uring_micro.c`` into a temporary directory; the binary's path."""
    cc = os.environ.get("CC") or shutil.which("cc") or "gcc"
    out = Path(tempfile.gettempdir()) / f"uring_micro-{os.getpid()}"
    subprocess.run([cc, "-O2", "-Wall", "-o", str(out), str(SOURCE)], check=True)
    return out


def flush_child(backend: str, port: int, streams: int, ticks: int) -> None:
    """A ``flush-*`` run, in its own process: the extension's Batch.flush over ``streams``
    connected sockets, 20 ms ticks; prints the same key=value line as the C sender."""
    import socket
    import time

    from audionode.native import _packet

    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(streams)]
    for s in socks:
        s.setblocking(False)
        s.connect(("127.0.0.1", port))
    channels = []
    for i in range(streams):
        ch = _packet.Channel(1000 + i)
        ch.set_key(_packet.MODE_AES_GCM, os.urandom(32))
        channels.append(ch)
    batch = _packet.Batch(backend=backend)
    assert batch.backend == backend
    frame = os.urandom(200 - 12 - 16 - 4)
    fds = [s.fileno() for s in socks]
    cpu = 0.0
    sent = 0
    walls = []
    warm = ticks // 10 + 5
    deadline = time.monotonic()
    for t in range(-warm, ticks):
        for ch, fd in zip(channels, fds, strict=True):
            batch.add(ch, frame, fd)
        c0, w0 = time.process_time(), time.perf_counter()
        n = batch.flush()
        c1, w1 = time.process_time(), time.perf_counter()
        if t >= 0:
            cpu += c1 - c0
            sent += n
            walls.append((w1 - w0) * 1e6)
        deadline += 0.02
        time.sleep(max(0.0, deadline - time.monotonic()))
    errors = sum(ch.send_errors for ch in channels)
    print(
        f"mode=flush-{backend} n={streams} ticks={ticks} sent={sent} errors={errors} enters=0 "
        f"cpu_s={cpu:.6f} wall_s=0 sys_busy_s=0 sys_total_s=0 "
        f"tick_wall_p50_us={statistics.median(walls):.1f}"
    )


def run_once(binary: Path, mode: str, port: int, streams: int, ticks: int) -> dict[str, float]:
    """One sender run; its key=value line as numbers, plus the load average before it."""
    load = float(Path("/proc/loadavg").read_text().split()[0])
    if mode.startswith("flush-"):
        command = [sys.executable, "-m", "bench.uring_micro", "--child", mode[6:]]
        command += [str(port), str(streams), str(ticks)]
    else:
        command = [str(binary), "send", mode, str(streams), str(ticks), "20000", str(port)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    row: dict[str, float] = {"load": load}
    for pair in out.split():
        key, _, value = pair.partition("=")
        if key != "mode":
            row[key] = float(value)
    return row


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        flush_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--ticks", type=int, default=300, help="measured 20 ms ticks per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--sinks", default=",".join(SINKS))
    args = parser.parse_args()
    modes = args.modes.split(",")
    binary = build()
    try:
        for sink_mode in args.sinks.split(","):
            sink = subprocess.Popen(
                [str(binary), "sink", sink_mode], stdout=subprocess.PIPE, text=True
            )
            assert sink.stdout is not None
            port = int(sink.stdout.readline())
            results: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
            for r in range(args.rounds):
                order = modes[r % len(modes) :] + modes[: r % len(modes)]
                for mode in order:
                    row = run_once(binary, mode, port, args.streams, args.ticks)
                    results[mode].append(row)
                    per = row["cpu_s"] * 1e6 / max(row["sent"], 1)
                    print(
                        f"sink={sink_mode} round={r} {mode:14s} cpu/dgram={per:5.2f} us "
                        f"tick p50={row['tick_wall_p50_us']:7.1f} us sent={int(row['sent'])} "
                        f"errors={int(row['errors'])} sys_busy={row['sys_busy_s']:.2f}/"
                        f"{row['sys_total_s']:.2f} s load={row['load']:.2f}",
                        flush=True,
                    )
            sink.terminate()
            received = sink.communicate()[0].strip()
            print(f"sink={sink_mode}: received {received or '?'} datagrams")
            base = (
                statistics.median(x["cpu_s"] * 1e6 / x["sent"] for x in results.get("sendmmsg", []))
                if results.get("sendmmsg")
                else None
            )
            print(f"\nsink={sink_mode}, N={args.streams}, medians of {args.rounds} runs:")
            print("mode            cpu us/dgram  vs sendmmsg  tick wall p50 us/dgram  load")
            for mode in modes:
                rows = results[mode]
                per = statistics.median(x["cpu_s"] * 1e6 / max(x["sent"], 1) for x in rows)
                wall = statistics.median(x["tick_wall_p50_us"] / args.streams for x in rows)
                loads = "/".join(f"{x['load']:.1f}" for x in rows)
                delta = f"{per - base:+.2f}" if base is not None else "-"
                print(f"{mode:14s}  {per:12.2f}  {delta:>11s}  {wall:22.2f}  {loads}")
            print(flush=True)
    finally:
        binary.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
