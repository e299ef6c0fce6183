"""The node's Prometheus metrics, one :class:`NodeMetrics` per app (docs/OPERATIONS.md).

Each :class:`NodeMetrics` has its own ``CollectorRegistry`` (never the process-global one), so
several nodes in one process (the tests) do not collide. Two kinds of metric live in it:

- counted as things happen, by the front doors (``web/metrics.py``) and the sources: REST
  requests by route template and status, websockets opened per front door, extraction time
  and failures per source;
- read at scrape time from the service (:class:`_NodeCollector`): players by state, sessions,
  voice connections, the engines' frame counters and tick histograms, worker restarts, and
  the CPU and memory of every process.

The engines' counters come from their periodic reports (``engine/stats.py``,
:class:`~audionode.engine.stats.Lifetime`): a worker that dies and respawns starts again from
0, so the control process exports the sum over every worker that served a slot, and no counter
ever goes backwards. The processes' CPU seconds are summed the same way here (by pid).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import psutil
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from audionode import __version__
from audionode.control.views import PlayerState
from audionode.engine.messages import LATE_BOUNDS, TICK_BOUNDS
from audionode.engine.messages import Histogram as TickHistogram
from audionode.engine.stats import StatsBook
from audionode.service import NodeService

log = logging.getLogger(__name__)

# The ``*_created`` timestamps double every counter's series and tell a scraper nothing it
# uses; prometheus-client only offers to drop them process-wide.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text exposition format."""

FRONT_DOORS: Final = ("discodo", "rpc", "lavalink")
"""The websocket front doors, always exported (0 when none is open)."""

EXTRACTION_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_STATES: Final = {
    PlayerState.PLAYING: "playing",
    PlayerState.PAUSED: "paused",
    PlayerState.STOPPED: "stopped",
    PlayerState.DISCONNECTED: "disconnected",
}


class NodeMetrics:
    """The metrics of one node: ``render()`` answers a scrape.

    The front doors call :meth:`request` once per answered HTTP request and
    :meth:`websocket_opened` once per accepted websocket; the sources report through
    ``SourceManager.observer`` (set here).
    """

    def __init__(self, service: NodeService) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=False)
        self._requests = Counter(
            "audionode_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._ws_opened = Counter(
            "audionode_websocket_connections_opened",
            "Websocket connections accepted, by front door",
            ["front"],
            registry=self.registry,
        )
        self._extraction = Histogram(
            "audionode_source_extraction_seconds",
            "Time a source took to resolve a query (op=load) or open a track (op=open)",
            ["source", "op"],
            buckets=EXTRACTION_BUCKETS,
            registry=self.registry,
        )
        self._extraction_failures = Counter(
            "audionode_source_extraction_failures",
            "Loads that ended in an error result and opens that raised, by source",
            ["source", "op"],
            registry=self.registry,
        )
        for front in FRONT_DOORS:
            self._ws_opened.labels(front)
        self._sockets: dict[str, list[Callable[[], bool]]] = {f: [] for f in FRONT_DOORS}
        self._processes = _ProcessBook()
        self.registry.register(_NodeCollector(self))
        if service.sources is not None:
            service.sources.observer = self.extracted

    # --- fed by the front doors and the sources -------------------------------------------

    def request(self, method: str, route: str, status: int) -> None:
        """One HTTP request answered; ``route`` is the route's template (bounded), never the
        raw path."""
        self._requests.labels(method, route, str(status)).inc()

    def websocket_opened(self, front: str, is_open: Callable[[], bool]) -> None:
        """A websocket was accepted at ``front``; ``is_open()`` says whether it still is
        (asked at scrape time, so a socket that closed in any way stops being counted)."""
        self._ws_opened.labels(front).inc()
        self._sockets.setdefault(front, []).append(is_open)

    def extracted(self, source: str, op: str, seconds: float, ok: bool) -> None:
        """``SourceManager.observer``: one load or open by ``source``."""
        self._extraction.labels(source, op).observe(seconds)
        if not ok:
            self._extraction_failures.labels(source, op).inc()
        else:  # the series exists (at 0) once the source was used
            self._extraction_failures.labels(source, op)

    def open_websockets(self) -> dict[str, int]:
        """Websockets open now, per front door (closed ones are forgotten)."""
        out = {}
        for front, checks in self._sockets.items():
            checks[:] = [c for c in checks if c()]
            out[front] = len(checks)
        return out

    # --- the scrape -----------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)


class _NodeCollector(Collector):
    """The metrics read from the service at scrape time."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        service = self.metrics.service
        yield from self._node(service)
        yield from self._players(service)
        engine: Any = service.engine
        stats: dict[str, Any] = engine.stats() if engine is not None else {}
        book = getattr(engine, "book", None)
        if isinstance(book, StatsBook):
            yield from _engines(book)
        yield from self._workers(stats)
        sockets = GaugeMetricFamily(
            "audionode_websocket_connections",
            "Websocket connections open now, by front door",
            labels=["front"],
        )
        for front, n in self.metrics.open_websockets().items():
            sockets.add_metric([front], n)
        yield sockets

    def _node(self, service: NodeService) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "audionode_build_info", "Always 1; the node's version", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info
        uptime = GaugeMetricFamily("audionode_uptime_seconds", "Seconds since the node started")
        uptime.add_metric([], time.monotonic() - service.started)
        yield uptime
        sessions = GaugeMetricFamily(
            "audionode_sessions",
            "Sessions (bot shards), by whether a bot's socket is attached",
            labels=["state"],
        )
        by_ref = service.sessions.by_ref.values()
        attached = sum(1 for s in by_ref if s.sink is not None)
        sessions.add_metric(["attached"], attached)
        sessions.add_metric(["detached"], len(by_ref) - attached)
        yield sessions

    def _players(self, service: NodeService) -> Iterator[Metric]:
        counts = dict.fromkeys(_STATES.values(), 0)
        voice: dict[tuple[str, str], int] = {}
        book = getattr(service.engine, "book", None)
        dave = book.dave() if isinstance(book, StatsBook) else {}
        for session in service.sessions.by_ref.values():
            for player in session.players.values():
                counts[_STATES[player.state]] += 1
                if not player.connected:
                    continue
                if dave.get(player.key):
                    state = "active"
                elif player.dave_version > 0:
                    state = "negotiated"  # a DAVE session, frames not (yet) encrypted
                else:
                    state = "off"
                labels = (player.voice_mode or "unknown", state)
                voice[labels] = voice.get(labels, 0) + 1
        players = GaugeMetricFamily(
            "audionode_players", "Voice clients (players), by state", labels=["state"]
        )
        for state, n in counts.items():
            players.add_metric([state], n)
        yield players
        conns = GaugeMetricFamily(
            "audionode_voice_connections",
            "Voice connections up, by encryption mode and DAVE state (active: frames leave "
            "DAVE-encrypted; negotiated: DAVE session, not encrypting yet; off: no DAVE)",
            labels=["mode", "dave"],
        )
        for (mode, state), n in sorted(voice.items()):
            conns.add_metric([mode, state], n)
        yield conns

    def _workers(self, stats: dict[str, Any]) -> Iterator[Metric]:
        processes: list[dict[str, Any]] = stats.get("processes", [])
        restarts = CounterMetricFamily(
            "audionode_worker_restarts",
            "Engine worker processes that died and were replaced, by slot",
            labels=["worker"],
        )
        up = GaugeMetricFamily(
            "audionode_worker_up",
            "1 while the slot's worker is alive and healthy",
            labels=["worker"],
        )
        pids: dict[str, int | None] = {"control": None}
        if stats.get("workers") == 0:  # the engine runs in the control process: it cannot die
            restarts.add_metric(["0"], 0)
            up.add_metric(["0"], 1)
        for p in processes:
            worker = str(p["slot"])
            restarts.add_metric([worker], p["restarts"])
            up.add_metric([worker], 1 if p.get("alive") else 0)
            pids[f"worker-{worker}"] = p["pid"] if p.get("alive") else None
        yield restarts
        yield up
        cpu = CounterMetricFamily(
            "audionode_process_cpu_seconds",
            "CPU seconds (user + system) of the control process and of each worker slot "
            "(summed over the slot's successive worker processes)",
            labels=["process"],
        )
        memory = GaugeMetricFamily(
            "audionode_process_resident_memory_bytes",
            "Resident memory of the control process and of each live worker",
            labels=["process"],
        )
        for name, pid in pids.items():
            seconds, rss = self.metrics._processes.read(name, pid)
            cpu.add_metric([name], seconds)
            if rss is not None:
                memory.add_metric([name], rss)
        yield cpu
        yield memory


def _engines(book: StatsBook) -> Iterator[Metric]:
    lifetimes = book.lifetime()
    families = {
        name: CounterMetricFamily(f"audionode_{name}", text, labels=["worker"])
        for name, text in (
            ("frames_sent", "Audio frames the sender handed to a voice connection"),
            ("frames_nulled", "Ticks in which a playing stream had no frame ready"),
            ("frames_deficit", "Slots of a playing stream skipped when the clock resynced"),
            ("frames_silence", "Silence frames (F8 FF FE) sent after a break in the audio"),
            ("sender_errors", "Exceptions raised by a voice connection or frame source"),
            ("sender_ticks", "Ticks of the 20 ms sender clock"),
            ("sender_resyncs", "Times the sender clock fell too far behind and resynced"),
        )
    }
    late = HistogramMetricFamily(
        "audionode_sender_lateness_seconds",
        "How long after its deadline each sender tick woke",
        labels=["worker"],
    )
    took = HistogramMetricFamily(
        "audionode_sender_tick_seconds",
        "How long each sender tick ran (every stream of the engine)",
        labels=["worker"],
    )
    for slot, life in lifetimes.items():
        worker = [str(slot)]
        f = life.frames
        values = (f.sent, f.nulled, f.deficit, f.silence, f.errors, life.ticks, life.resyncs)
        for family, value in zip(families.values(), values, strict=True):
            family.add_metric(worker, value)
        late.add_metric(worker, _buckets(life.late, LATE_BOUNDS), life.late.total)
        took.add_metric(worker, _buckets(life.tick, TICK_BOUNDS), life.tick.total)
    yield from families.values()
    yield late
    yield took


def _buckets(h: TickHistogram, bounds: tuple[float, ...]) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs, ``+Inf`` last, as Prometheus wants them."""
    out: list[tuple[str, float]] = []
    running = 0
    for bound, n in zip((*map(repr, bounds), "+Inf"), h.counts, strict=True):
        running += n
        out.append((bound, running))
    return out


@dataclass(slots=True)
class _Seen:
    pid: int
    process: Any
    """The ``psutil.Process`` (kept: it remembers the pid's start time)."""
    seconds: float = 0.0


class _ProcessBook:
    """CPU seconds per process name, summed over the pids that bore it (a slot's successive
    workers), so the exported counter never goes backwards when a worker is replaced."""

    def __init__(self) -> None:
        self._seen: dict[str, _Seen] = {}
        self._base: dict[str, float] = {}

    def read(self, name: str, pid: int | None) -> tuple[float, int | None]:
        """``(cpu seconds, rss)`` of ``name`` (``pid`` None: the control process itself, or a
        slot whose worker is down: its last known CPU seconds, no rss)."""
        seen = self._seen.get(name)
        if name == "control":
            pid = os.getpid()
        if seen is not None and seen.pid != pid:
            # The slot's worker died (and maybe a new one runs): keep what the last one used.
            self._base[name] = self._base.get(name, 0.0) + seen.seconds
            seen = None
            del self._seen[name]
        if pid is None:
            return self._base.get(name, 0.0), None
        rss: int | None = None
        try:
            if seen is None:
                seen = _Seen(pid, psutil.Process(pid))
                self._seen[name] = seen
            with seen.process.oneshot():
                times = seen.process.cpu_times()
                seen.seconds = max(seen.seconds, times.user + times.system)
                rss = int(seen.process.memory_info().rss)
        except psutil.Error:  # it just died: its last reading stands
            pass
        return self._base.get(name, 0.0) + (seen.seconds if seen else 0.0), rss
