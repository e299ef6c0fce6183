"""A counting UDP sink standing in for the voice server's media port in ``bench/streams.py``.

Why not the voice server's own forwarding unit: it opens (AEAD) and re-seals every packet in
Python, which for thousands of streams would cost more CPU than the node under test on the same
2-core machine. The sink instead reads the RTP header only (SSRC) and takes the arrival time
from the kernel (``SO_TIMESTAMPNS``), so the gap figures stay exact even when the sink itself is
scheduled late. It drains its socket every few milliseconds instead of blocking in recvmsg (see
``_serve``). It answers IP discovery (docs/discord-voice.md §1.8) like the real server, so voice
clients (ours and discord.py's) complete their handshake unchanged.

It runs in its own process (``start_sink``); the parent controls it through a pipe:
``"start"`` clears the record and begins the window, ``"stop"`` ends it and returns the stats;
``"cut"`` (``bench/soak.py``) hands over the packets recorded since the last cut, raw, and
keeps recording, so a long run is analysed piece by piece without a gap between pieces.
``("talk", streams, spread)`` makes it send, from its own socket (the node's sockets are
connected to it and take nothing from elsewhere), one packet of each stream per 20 ms: what the
forwarding unit would relay from speaking members (``bench/talk.py``).
"""

from __future__ import annotations

import array
import multiprocessing
import socket
import struct
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from audionode.voice.rtp import pack_discovery_response

MISS_MS = 40.0
"""A gap above two frame periods is a deadline miss (issue 7)."""
_TIMESPEC = struct.Struct("@qq")
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def _serve(conn: Connection, host: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:  # root may exceed rmem_max; a deep queue keeps bursts from being dropped
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, 64 << 20)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    sock.bind((host, 0))
    # Non-blocking, draining the queue every few ms: a receiver blocked in recvmsg would be
    # woken by every packet, and on loopback the sender pays for that wake-up (it is not a
    # cost a real network card puts on the node). Kernel timestamps keep the gaps exact.
    sock.setblocking(False)
    conn.send(sock.getsockname()[1])
    ssrcs = array.array("I")
    stamps = array.array("d")
    recording = False
    packets = 0
    talk = _Talk(sock)
    while True:
        packets += 1
        talk.due()
        try:
            data, anc, _flags, addr = sock.recvmsg(2048, 64)
        except BlockingIOError:
            data = b""
            time.sleep(0.004)
        if data:
            n = len(data)
            if n == 74 and data[1] == 1:
                ssrc = int.from_bytes(data[4:8], "big")
                sock.sendto(pack_discovery_response(ssrc, addr[0], addr[1]), addr)
            elif recording and n > 12 and data[0] & 0xC0 == 0x80 and data[1] & 0x7F == 0x78:
                ssrcs.append(int.from_bytes(data[8:12], "big"))
                sec, nsec = _TIMESPEC.unpack(anc[0][2]) if anc else (0, 0)
                stamps.append(sec + nsec * 1e-9)
            if packets & 255:  # look at the pipe every 256 packets, or when idle
                continue
        if conn.poll():
            command = conn.recv()
            if command == "start":
                ssrcs, stamps, recording = array.array("I"), array.array("d"), True
            elif command == "cut":
                conn.send((ssrcs.tobytes(), stamps.tobytes()))
                ssrcs, stamps = array.array("I"), array.array("d")
            elif command == "stop":
                recording = False
                stats = gap_stats(np.frombuffer(ssrcs, np.uint32), np.frombuffer(stamps))
                conn.send({**stats, "talk_sent": talk.sent} if talk.sent else stats)
            elif isinstance(command, tuple) and command[0] == "talk":
                talk.begin(command[1], command[2])
            elif command == "quit":
                return


class _Talk:
    """Packets to send to the node: one per stream per 20 ms on an absolute clock, the streams
    spread evenly over the 20 ms (each speaking member has its own phase, as independent
    speakers do; ``spread=False``: all at once, a burst per tick)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.streams: list[tuple[tuple[str, int], list[bytes]]] = []
        self.start = 0.0
        self.j = 0
        self.n = 0
        self.step = 0.02
        self.sent = 0

    def begin(self, streams: list[tuple[tuple[str, int], list[bytes]]], spread: bool) -> None:
        self.streams, self.start, self.j = streams, time.monotonic(), 0
        self.n = min((len(p) for _, p in streams), default=0) * len(streams)
        self.step = 0.02 / len(streams) if spread and streams else 0.0

    def due(self) -> None:
        width = len(self.streams)
        while self.j < self.n:
            i, k = divmod(self.j, width)
            if time.monotonic() < self.start + i * 0.02 + k * self.step:
                return
            target, packets = self.streams[k]
            try:
                self.sock.sendto(packets[i], target)
                self.sent += 1
            except BlockingIOError:
                pass
            self.j += 1


def gap_stats(ssrcs: np.ndarray, stamps: np.ndarray) -> dict[str, Any]:
    """Per-stream inter-arrival gaps, pooled over all streams, plus per-stream extremes."""
    if len(ssrcs) < 2:
        return {"packets": len(ssrcs), "streams": 0}
    order = np.lexsort((stamps, ssrcs))
    s, t = ssrcs[order], stamps[order]
    same = s[1:] == s[:-1]
    gaps = np.diff(t)[same] * 1000.0
    streams, counts = np.unique(s, return_counts=True)
    span = float(t.max() - t.min())
    starts = np.r_[0, np.flatnonzero(~same) + 1]
    # Per-stream maximum gap: zero the differences that cross from one stream to the next.
    boundary = np.r_[~same, True]
    clean = np.where(boundary, 0.0, np.r_[np.diff(t) * 1000.0, 0.0])
    per_stream_max = np.maximum.reduceat(clean, starts)
    late_at = (t[1:][same][gaps > MISS_MS] - t.min()).round(1)
    when, count = np.unique(late_at, return_counts=True)
    top = np.argsort(-count)[:5]
    return {
        "miss_times_s": {f"{float(when[i]):.1f}": int(count[i]) for i in top},
        "packets": len(s),
        "streams": len(streams),
        "span_s": round(span, 3),
        "pps_per_stream": round(float(np.mean(counts)) / span, 3) if span else 0.0,
        "pps_per_stream_min": round(float(np.min(counts)) / span, 3) if span else 0.0,
        "gap_p50_ms": round(float(np.percentile(gaps, 50)), 3),
        "gap_p99_ms": round(float(np.percentile(gaps, 99)), 3),
        "gap_p999_ms": round(float(np.percentile(gaps, 99.9)), 3),
        "gap_max_ms": round(float(gaps.max()), 3),
        "missed": int(np.count_nonzero(gaps > MISS_MS)),
        "missed_pct": round(100.0 * np.count_nonzero(gaps > MISS_MS) / len(gaps), 4),
        "worst_stream_max_ms": round(float(per_stream_max.max()), 3),
        "streams_with_a_miss": int(np.count_nonzero(per_stream_max > MISS_MS)),
    }


class Sink:
    """The parent's handle: ``port``, :meth:`start`, :meth:`stop` -> stats, :meth:`close`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, host), daemon=True, name="sink")
        self.process.start()
        child.close()
        self.port: int = self._conn.recv()

    def start(self) -> None:
        self._conn.send("start")

    def talk(self, streams: list[tuple[tuple[str, int], list[bytes]]], spread: bool) -> None:
        """Send ``(target, packets)`` streams from the sink's socket, 20 ms apart (spread
        over the 20 ms, or all at once)."""
        self._conn.send(("talk", streams, spread))

    def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        self._conn.send("stop")
        if not self._conn.poll(timeout):
            raise TimeoutError("the sink did not answer")
        stats: dict[str, Any] = self._conn.recv()
        return stats

    def cut(self, timeout: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
        """``(ssrcs, kernel arrival times)`` of the packets since :meth:`start` or the last
        cut, in arrival order; recording goes on."""
        self._conn.send("cut")
        if not self._conn.poll(timeout):
            raise TimeoutError("the sink did not answer")
        raw_ssrcs, raw_stamps = self._conn.recv()
        return np.frombuffer(raw_ssrcs, np.uint32), np.frombuffer(raw_stamps)

    def close(self) -> None:
        self._conn.send("quit")
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
