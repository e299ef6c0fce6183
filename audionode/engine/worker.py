"""Engine worker processes (``engine.workers = N``): guilds sharded by player key.

PyAV encoding holds the GIL, so the data plane scales across cores by processes
(docs/ARCHITECTURE.md). Each worker (``engine/child.py``) runs its own event loop with one engine
(its voice connections, pipelines and the one real-time sender of that process). The control
process talks to a worker over a socket pair with length-prefixed msgpack frames
(``engine/wire.py``), both ends asyncio: sending a command never blocks the control loop.

The node never goes down with a worker, and a worker never stays down (docs/SECURITY.md,
"Engine"):

- a worker that dies (crash, OOM kill, SIGKILL) is noticed by its socket's EOF; one that
  stalls (event loop or producer thread, ``engine.watchdog_timeout``) or never starts is
  noticed by the watchdog (``engine/watchdog.py``) and killed. Its players are reported at
  once (``on_worker_lost``: the service tells their bots and restores them) and a fresh worker
  is spawned in the same slot: at once after a worker that ran a while, with a doubling
  backoff (0.5 s up to :attr:`WorkerPool.backoff_max`) while workers keep dying young; a
  failed spawn is retried the same way;
- commands for a slot whose worker is down wait for the replacement, bounded by
  ``engine.max_pending_commands`` and ``engine.max_pending_bytes``; beyond that (and for a
  command over ``engine.max_message_bytes``) the command is refused with an error event;
- the track or filter set a death is blamed on is struck, and quarantined at its second
  strike (``engine/quarantine.py``): its replay is refused and the player moves on.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from audionode.config import Config
from audionode.engine import messages as msg
from audionode.engine import wire
from audionode.engine.admission import Placer, WorkerLoad, regroup
from audionode.engine.child import worker_main
from audionode.engine.host import DEFAULT_FACTORY, EventCallback
from audionode.engine.quarantine import Quarantine
from audionode.engine.sharing import VOLUME, ShareKey, filters_key, share_key
from audionode.engine.stats import StatsBook
from audionode.engine.watchdog import CHECK_EVERY, Beacon, verdict

log = logging.getLogger(__name__)

LostCallback = Callable[[int, set[int]], None]
"""``on_worker_lost(slot, player_keys)``: called on the control loop when a worker died."""


def default_workers(configured: int) -> int:
    """``-1`` means CPU count - 1, at least 1."""
    if configured >= 0:
        return configured
    return max(1, (os.cpu_count() or 2) - 1)


@dataclass(eq=False)
class _Worker:
    """One worker process of a slot."""

    slot: int
    process: Any
    writer: asyncio.StreamWriter
    beacon: Beacon
    spawned: float
    reader_task: asyncio.Task[None] | None = None
    alive: bool = True
    cause: str | None = None
    """Why the pool killed it (watchdog, protocol breach); None while healthy."""
    culprit: int | None = None
    blame_anyone: bool = True


@dataclass(eq=False)
class _Slot:
    """What outlives the worker processes of one slot."""

    index: int
    worker: _Worker | None = None
    players: set[int] = field(default_factory=set)
    pending: deque[bytes] = field(default_factory=deque)
    pending_bytes: int = 0
    restarts: int = 0
    young_deaths: int = 0
    """Consecutive deaths of workers that had run less than :attr:`WorkerPool.young`."""
    last_death: str | None = None


class WorkerPool:
    """N engine workers; a new player is placed on the least-loaded one (or refused when all
    are at their budget: ``engine/admission.py``) and its commands go there for its life."""

    young = 30.0
    """A worker dying sooner than this after its start counts toward the restart backoff."""
    backoff_max = 30.0
    """Longest wait before a respawn, reached while workers keep dying young."""
    startup_timeout = 60.0
    """A worker that has not published its vitals this long after its spawn is restarted."""

    def __init__(
        self,
        config: Config,
        on_event: EventCallback,
        on_worker_lost: LostCallback,
        workers: int,
        factory: str = DEFAULT_FACTORY,
    ) -> None:
        if workers < 1:
            raise ValueError("a worker pool needs at least one worker")
        self._config_json = msgspec.json.encode(config)
        self._limits = config.engine
        self._on_event = on_event
        self._on_lost = on_worker_lost
        self._factory = factory
        self._size = workers
        self._slots = [_Slot(i) for i in range(workers)]
        self._closing = False
        self._watch_task: asyncio.Task[None] | None = None
        self.restarts = 0
        self.book = StatsBook()
        self.quarantine = Quarantine()
        self.placer = Placer(workers, config.engine.admission)
        self.groups = _Groups(config.engine.share_live)
        """Who plays which shared encode where, for :meth:`_regroup`."""
        self.moved = 0
        """Players moved to the worker sharing their live source since the start."""
        self._stale: set[tuple[int, int]] = set()
        """(slot, player) pairs of players moved away from that slot: its late events (the
        old connection's close) are not theirs any more."""
        self._ctx = multiprocessing.get_context("spawn")

    async def start(self) -> None:
        for slot in self._slots:
            await self._spawn(slot)
        self._watch_task = asyncio.get_running_loop().create_task(self._watch())

    # --- spawning and losing workers --------------------------------------------------------

    async def _spawn(self, slot: _Slot) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        beacon = Beacon(self._ctx)
        process = self._ctx.Process(
            target=worker_main,
            args=(child, self._config_json, self._factory, slot.index, beacon),
            name=f"audionode-engine-{slot.index}",
            daemon=True,
        )
        try:
            process.start()
        finally:
            child.close()
        sock = socket.socket(fileno=os.dup(parent.fileno()))
        parent.close()
        reader, writer = await asyncio.open_connection(sock=sock)
        worker = _Worker(slot.index, process, writer, beacon, time.monotonic())
        slot.worker = worker
        worker.reader_task = asyncio.create_task(self._read_events(worker, reader))
        while slot.pending:
            writer.write(slot.pending.popleft())
        slot.pending_bytes = 0
        log.info("engine worker %d started (pid %d)", slot.index, process.pid)

    async def _read_events(self, worker: _Worker, reader: asyncio.StreamReader) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                payload = await wire.read_frame(reader, self._limits.max_event_bytes)
                event = msg.event_decoder.decode(payload)
                if isinstance(event, msg.EngineStats):
                    self.book.add(worker.slot, event, loop.time())
                elif (worker.slot, event.player) in self._stale:
                    continue
                else:
                    self.quarantine.received(event)
                    self._dispatch(event)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except (wire.FrameTooLarge, msgspec.DecodeError) as e:
            worker.cause = worker.cause or f"it sent a malformed event ({e})"
            worker.blame_anyone = False
        await self._lost(worker)

    def _dispatch(self, event: msg.Event) -> None:
        try:
            self._on_event(event)
        except Exception:  # a control-plane bug must not leave the worker unread
            log.exception("handling engine event %s failed", type(event).__name__)

    def _condemn(self, worker: _Worker, cause: str, culprit: int | None, anyone: bool) -> None:
        """Kill a worker that is alive but useless; its EOF then goes through :meth:`_lost`."""
        worker.cause, worker.culprit, worker.blame_anyone = cause, culprit, anyone
        log.error("engine worker %d: %s; killing it", worker.slot, cause)
        worker.process.kill()

    async def _lost(self, worker: _Worker) -> None:
        if not worker.alive or self._closing:
            return
        worker.alive = False
        now = time.monotonic()
        slot = self._slots[worker.slot]
        culprit = worker.culprit if worker.cause else worker.beacon.read().death_suspect()
        worker.writer.close()
        if worker.process.is_alive():  # a breach: the process itself may still run
            worker.process.kill()
        await asyncio.get_running_loop().run_in_executor(None, worker.process.join, 5)
        self.book.forget(worker.slot)
        cause = worker.cause or f"it died with exit code {worker.process.exitcode}"
        players = set(slot.players)
        for fingerprint in self.quarantine.blame(players, culprit, now, anyone=worker.blame_anyone):
            log.warning("quarantined after crashing the engine twice: %s", fingerprint[:120])
        log.error(
            "engine worker %d (pid %s): %s; %d players affected (blamed on: %s); restarting",
            worker.slot,
            worker.process.pid,
            cause,
            len(players),
            "nobody" if culprit is None else f"player {culprit}",
        )
        slot.restarts += 1
        self.restarts += 1
        slot.last_death = cause
        slot.young_deaths = slot.young_deaths + 1 if now - worker.spawned < self.young else 0
        # Told and restored now: the restore's commands wait for the replacement in pending.
        try:
            self._on_lost(worker.slot, players)
        except Exception:
            log.exception("restoring the players of engine worker %d failed", worker.slot)
        await self._respawn(slot)

    def backoff(self, young_deaths: int) -> float:
        """Seconds to wait before a respawn: none after a worker that ran a while or died
        young once, then 0.5, 1, 2... up to :attr:`backoff_max`."""
        if young_deaths <= 1:
            return 0.0
        return float(min(self.backoff_max, 0.5 * 2 ** (young_deaths - 2)))

    async def _respawn(self, slot: _Slot) -> None:
        """Spawn a replacement after the backoff; a spawn that fails is retried, backing off."""
        while not self._closing:
            delay = self.backoff(slot.young_deaths)
            if delay:
                log.warning("engine worker %d: respawning in %.1f s", slot.index, delay)
                await asyncio.sleep(delay)
            try:
                await self._spawn(slot)
                return
            except Exception as e:  # no process, no fd, no memory: try again later
                log.error("engine worker %d could not be spawned: %s", slot.index, e)
                slot.young_deaths += 1
                slot.last_death = f"spawn failed: {e}"

    async def _watch(self) -> None:
        """Every :data:`CHECK_EVERY` s: kill a worker that stalled or never started."""
        timeout = self._limits.watchdog_timeout
        while True:
            await asyncio.sleep(CHECK_EVERY)
            now = time.monotonic()
            for slot in self._slots:
                worker = slot.worker
                if worker is None or not worker.alive or worker.cause is not None:
                    continue
                vitals = worker.beacon.read()
                stall = verdict(vitals, now, timeout)
                if stall is not None:
                    self._condemn(worker, str(stall), stall.suspect(vitals, now), False)
                elif not vitals.started and now - worker.spawned > self.startup_timeout:
                    reason = f"it did not start within {self.startup_timeout:.0f} s"
                    self._condemn(worker, reason, None, False)

    # --- commands ---------------------------------------------------------------------------

    def send(self, command: msg.Command) -> None:
        """Deliver ``command`` to its player's worker (or queue it while that worker is being
        replaced); a command that cannot be delivered is answered with an error event."""
        now = time.monotonic()
        if isinstance(command, msg.Play):
            self._regroup(command)
        else:
            self.groups.saw(command)
        slot = self._slots[self.placer.slot_of(command.player)]
        refusal = self.quarantine.refuse(command, now)
        data = b""
        if refusal is None:
            data = wire.frame(msg.encoder.encode(command))
            refusal = self._deliver(slot, command, data)
        if refusal is not None:
            log.warning(
                "player %d: %s refused: %s",
                command.player,
                type(command).__name__,
                _message(refusal),
            )
            asyncio.get_running_loop().call_soon(self._dispatch, refusal)
            return
        if isinstance(command, msg.Disconnect):
            slot.players.discard(command.player)
        else:
            slot.players.add(command.player)
        self.quarantine.sent(command, now)

    def _deliver(self, slot: _Slot, command: msg.Command, data: bytes) -> msg.Event | None:
        """Write or queue ``data``; the refusal event instead when it cannot go."""
        limits = self._limits
        size = len(data)
        if size - 4 > limits.max_message_bytes:
            return msg.refusal(
                command,
                f"the command is {size - 4} bytes, over engine.max_message_bytes "
                f"({limits.max_message_bytes}); a track held in memory must be smaller",
            )
        worker = slot.worker
        if worker is not None and worker.alive and worker.cause is None:
            if worker.writer.transport.get_write_buffer_size() + size > limits.max_pending_bytes:
                return msg.refusal(command, f"engine worker {slot.index} is not keeping up")
            worker.writer.write(data)
            return None
        if (
            len(slot.pending) >= limits.max_pending_commands
            or slot.pending_bytes + size > limits.max_pending_bytes
        ):
            return msg.refusal(
                command,
                f"engine worker {slot.index} is restarting and its command queue is full "
                "(engine.max_pending_commands / engine.max_pending_bytes)",
            )
        slot.pending.append(data)
        slot.pending_bytes += size
        return None

    # --- placement ---------------------------------------------------------------------------

    def _loads(self) -> list[WorkerLoad]:
        up = [
            s.worker is not None and s.worker.alive and s.worker.cause is None
            for s in self._slots
        ]
        return self.placer.loads(self.book, up)

    def admit(self, key: int) -> None:
        """Place a new player (``engine/admission.py``); raises ``Unavailable`` at capacity."""
        slot = self.placer.admit(key, self._loads())
        log.debug("player %d placed on engine worker %d", key, slot)

    def release(self, key: int) -> None:
        self.placer.release(key)
        self.groups.forget(key)
        self._stale = {pair for pair in self._stale if pair[1] != key}

    def _regroup(self, play: msg.Play) -> None:
        """Before ``play`` goes out: a player's first play, of a live source that another
        worker already encodes for its players, moves the player there when that worker has
        room (``regroup``, docs/ARCHITECTURE.md "Admission and placement"), so the players of
        one live source share one encode node-wide, not only those that happened to land on
        the same worker."""
        key = play.player
        fresh, kept = self.groups.fresh(key), self.groups.replay(key)
        share = self.groups.played(play)
        if share is None:
            return
        current = self.placer.slot_of(key)
        if fresh:
            members = self.groups.members(share)
            target = regroup(current, members, self._loads(), self.placer.limits)
            if target != current:
                self._move(key, current, target, kept)
        self.groups.join(share, key, self.placer.slot_of(key))

    def _move(self, key: int, old: int, new: int, kept: list[msg.Command]) -> None:
        """Move a player that has played nothing yet: its old worker disconnects it (its late
        events are dropped), the new one gets its connection and options again. The new
        voice connection identifies with the same session, which takes it over from the old
        one (a voice server keeps one connection per session)."""
        source = self._slots[old]
        bye = msg.Disconnect(player=key)
        refusal = self._deliver(source, bye, wire.frame(msg.encoder.encode(bye)))
        if refusal is not None:  # its old worker keeps a connection that is replaced anyway
            log.warning("player %d: moving off engine worker %d: %s", key, old, _message(refusal))
        source.players.discard(key)
        self._stale.add((old, key))
        self._stale.discard((new, key))
        self.placer.move(key, new)
        self.moved += 1
        log.info("player %d moved to engine worker %d, which encodes its live source", key, new)
        for command in kept:
            self.send(command)

    # --- shutdown and reports ---------------------------------------------------------------

    async def close(self) -> None:
        self._closing = True
        if self._watch_task is not None:
            self._watch_task.cancel()
        workers = [s.worker for s in self._slots if s.worker is not None]
        for worker in workers:
            worker.writer.close()
            if worker.reader_task is not None:
                worker.reader_task.cancel()
        loop = asyncio.get_running_loop()
        for worker in workers:
            await loop.run_in_executor(None, worker.process.join, 5)
            if worker.process.is_alive():
                worker.process.kill()
                await loop.run_in_executor(None, worker.process.join, 5)

    def stats(self) -> dict[str, Any]:
        """``/status``: every slot's process, liveness (as the watchdog sees it), restarts
        and queue, the quarantine, and the frame counters."""
        now = time.monotonic()
        timeout = self._limits.watchdog_timeout
        processes = []
        for slot in self._slots:
            worker = slot.worker
            entry: dict[str, Any] = {
                "slot": slot.index,
                "pid": None if worker is None else worker.process.pid,
                "alive": False,
                "players": len(slot.players),
                "placed": self.placer.placed(slot.index),
                "restarts": slot.restarts,
                "last_death": slot.last_death,
                "pending": len(slot.pending),
            }
            if worker is not None and worker.alive:
                vitals = worker.beacon.read()
                entry["alive"] = worker.cause is None and verdict(vitals, now, timeout) is None
                entry["started"] = vitals.started
                if vitals.started:
                    entry.update(vitals.report(now))
            processes.append(entry)
        return {
            "workers": self._size,
            "restarts": self.restarts,
            "moved_to_share": self.moved,
            **self.quarantine.stats(),
            "processes": processes,
            **self.book.snapshot(),
            "admission": self.placer.status(self._loads()),
        }

    def pids(self) -> list[int]:
        """Process ids of the live workers (benchmarks sum their CPU time)."""
        return [
            s.worker.process.pid for s in self._slots if s.worker is not None and s.worker.alive
        ]


_KEPT = (msg.Connect, msg.SetVolume, msg.SetFilters, msg.SetCrossfade)
"""What a player that has played nothing yet has of its own on its worker: sent again when it
moves (the last of each kind, its connection first)."""
_STAYS = (msg.Connect, msg.Pause, msg.Resume, msg.Seek)
"""Commands after which a member still plays its shared encode."""


class _Groups:
    """The control process's view of the shared encodes: which players play which shareable
    live source on which slot (from the commands sent; an encode that ends by itself is not
    seen, which can only make a later move pointless, never wrong), and what a player that
    has played nothing yet would need again on another worker."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._by_key: dict[ShareKey, dict[int, set[int]]] = {}
        self._member: dict[int, tuple[ShareKey, int]] = {}
        self._options: dict[int, tuple[float, dict[str, Any]]] = {}
        self._kept: dict[int, dict[type[msg.Command], msg.Command]] = {}
        self._played: set[int] = set()

    def fresh(self, key: int) -> bool:
        """The player has played nothing yet (no track, layer, recording or channel)."""
        return key not in self._played

    def members(self, share: ShareKey) -> dict[int, int]:
        return {slot: len(keys) for slot, keys in self._by_key.get(share, {}).items() if keys}

    def saw(self, command: msg.Command) -> None:
        """Any command but a play: options noted, a diverging member leaves its group."""
        key = command.player
        volume, filters = self._options.get(key, (1.0, {}))
        if isinstance(command, msg.SetVolume):
            volume = command.volume
        elif isinstance(command, msg.SetFilters):
            filters = dict(command.filters)
        self._options[key] = (volume, filters)
        if isinstance(command, _KEPT):
            if key not in self._played:
                self._kept.setdefault(key, {})[type(command)] = command
        elif not isinstance(command, msg.Pause | msg.Resume | msg.Stop | msg.Disconnect):
            self._played_now(key)
        if isinstance(command, msg.Disconnect):
            self.forget(key)
            return
        member = self._member.get(key)
        if member is None or isinstance(command, _STAYS):
            return
        same = isinstance(command, msg.SetVolume | msg.SetFilters) and member[0] == (
            *member[0][:VOLUME],
            volume,
            filters_key(filters),
        )
        if not same:  # the engine gives it a pipeline of its own (decision 0018)
            self._leave(key)

    def played(self, play: msg.Play) -> ShareKey | None:
        """A play: the player leaves its group; the key of the encode it may join."""
        self._leave(play.player)
        volume, filters = self._options.get(play.player, (1.0, {}))
        if not self.enabled:
            share = None
        else:
            share = share_key(play.source, play.start_ms, play.end_ms, volume, filters)
        self._played_now(play.player)
        return share

    def join(self, share: ShareKey, key: int, slot: int) -> None:
        self._by_key.setdefault(share, {}).setdefault(slot, set()).add(key)
        self._member[key] = (share, slot)

    def replay(self, key: int) -> list[msg.Command]:
        kept = self._kept.get(key, {})
        return [kept[kind] for kind in _KEPT if kind in kept]

    def forget(self, key: int) -> None:
        self._leave(key)
        self._options.pop(key, None)
        self._kept.pop(key, None)
        self._played.discard(key)

    def _played_now(self, key: int) -> None:
        self._played.add(key)
        self._kept.pop(key, None)

    def _leave(self, key: int) -> None:
        member = self._member.pop(key, None)
        if member is None:
            return
        share, slot = member
        slots = self._by_key.get(share, {})
        slots.get(slot, set()).discard(key)
        if not slots.get(slot):
            slots.pop(slot, None)
        if not slots:
            self._by_key.pop(share, None)


def _message(event: msg.Event) -> str:
    return getattr(event, "message", None) or ""
