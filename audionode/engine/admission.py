"""Where a new player goes, and whether the node takes it at all (issue 17).

Each engine reports its measured cost every few seconds (:class:`~audionode.engine.messages.
EngineStats`: the CPU its process used, the mean time of a sender tick out of the 20 ms
budget, the frame slots its clock skipped). :func:`decide` is the whole policy, a pure
function of those figures and ``engine.admission``: a new player goes to the worker with the
most headroom; when none has room for one more, the player is refused rather than placed,
so the streams already playing keep their 50 packets/s (docs/ARCHITECTURE.md, "Admission and
placement"). :func:`regroup` moves a player that starts a live play to the worker already
encoding it for others, when that worker has room (decision 0018). :class:`Placer` keeps which
worker each player lives on and turns the stats reports into :class:`WorkerLoad`.

Nothing here runs per frame or imports media: this module lives in the control process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

from audionode.config import AdmissionConfig
from audionode.engine.messages import EngineStats
from audionode.errors import Unavailable

MIN_FRAMES: Final = 10_000
"""Frames a worker must have sent in the stats window before its skipped slots are judged
(fewer say more about one stall of the machine than about the worker's load)."""
TICK_SHARE_FROM: Final = 50
"""Measured streams from which one stream's mean share of the tick is its own cost (at 1
stream the tick is mostly fixed cost: 0.05 ms; from 50 on about 0.01 ms a stream)."""


@dataclass(frozen=True, slots=True)
class WorkerLoad:
    """What is known of one worker when a player asks for a place."""

    slot: int
    up: bool = True
    """The worker is alive (False: being replaced; its commands wait for the new one)."""
    placed: int = 0
    """Players placed on it now (some may not be in a report yet)."""
    measured: int = 0
    """Players in its latest report (those :attr:`cpu` and :attr:`tick_ms` were measured with)."""
    cpu: float = 0.0
    """Cores its process used over its latest report interval."""
    tick_ms: float = 0.0
    """Mean sender tick over that interval."""
    sent: int = 0
    """Frames sent over the stats window (about a minute)."""
    deficit: int = 0
    """Frame slots skipped by its clock over the same window."""


@dataclass(frozen=True, slots=True)
class Admit:
    slot: int
    load: float
    """The projected load (1.0 = at a limit) of the chosen worker with the new player."""


@dataclass(frozen=True, slots=True)
class Refuse:
    reason: str
    """Why, worker by worker (for the error message and the log)."""


Decision = Admit | Refuse


def projected(w: WorkerLoad, limits: AdmissionConfig) -> tuple[float, float]:
    """``(cores, tick_ms)`` of the worker with one more player: its latest report plus, for
    each player it holds beyond those it measured (and the new one),
    :attr:`~AdmissionConfig.stream_cost` cores and one measured stream's mean share of the
    tick. The process's fixed cost is not extrapolated per player, so the tick is charged
    for the players not in a report yet only once :data:`TICK_SHARE_FROM` streams were
    measured (below that the mean share is mostly the tick's fixed cost); before, the new
    player alone is charged.

    Why the unreported players too: in a burst of joins (2,000 asked of one worker within
    20 s) the worker's tick went 19 % past :attr:`~AdmissionConfig.max_tick_ms` when only the
    new player was charged (docs/PERFORMANCE.md, "Overload"). Players that turn out idle cost
    the sender nothing and lower the mean share from the next report on."""
    extra = max(0, w.placed + 1 - w.measured)
    per_tick = w.tick_ms / w.measured if w.measured > 0 else 0.0
    charged = extra if w.measured >= TICK_SHARE_FROM else 1
    return w.cpu + limits.stream_cost * extra, w.tick_ms + per_tick * charged


def assess(w: WorkerLoad, limits: AdmissionConfig) -> tuple[float, str | None]:
    """The worker's projected load with one more player (1.0 = at a limit) and, when it has no
    room, which limit says so."""
    cores, tick = projected(w, limits)
    load = max(cores / limits.max_cpu, tick / limits.max_tick_ms)
    cap = limits.max_players_per_worker
    if cap:
        load = max(load, (w.placed + 1) / cap)
        if w.placed >= cap:
            return load, f"{w.placed} players (engine.admission.max_players_per_worker {cap})"
    if cores > limits.max_cpu:
        return load, f"{cores:.2f} cores with one more (engine.admission.max_cpu {limits.max_cpu})"
    if tick > limits.max_tick_ms:
        return load, (
            f"{tick:.1f} ms ticks with one more (engine.admission.max_tick_ms "
            f"{limits.max_tick_ms:g})"
        )
    slots = w.sent + w.deficit
    if w.sent >= MIN_FRAMES and w.deficit / slots > limits.max_missed:
        return load, (
            f"{100 * w.deficit / slots:.1f} % of its frame slots missed in the last minute "
            f"(engine.admission.max_missed {limits.max_missed:g})"
        )
    return load, None


def decide(workers: Iterable[WorkerLoad], limits: AdmissionConfig) -> Decision:
    """Place one new player: the live worker with the lowest projected load that has room;
    a worker being replaced only when no live one has room (its commands wait for the
    replacement). With every worker at a limit: :class:`Refuse`, unless admission is off,
    then the least loaded anyway."""
    best: tuple[tuple[bool, float, int, int], Admit] | None = None
    fallback: tuple[tuple[float, int, int], Admit] | None = None
    reasons: list[str] = []
    for w in workers:
        load, full = assess(w, limits)
        if fallback is None or (load, w.placed, w.slot) < fallback[0]:
            fallback = ((load, w.placed, w.slot), Admit(w.slot, load))
        if full is not None:
            reasons.append(f"worker {w.slot}: {full}")
            continue
        rank = (not w.up, load, w.placed, w.slot)
        if best is None or rank < best[0]:
            best = (rank, Admit(w.slot, load))
    if best is not None:
        return best[1]
    if fallback is not None and not limits.enabled:
        return fallback[1]
    return Refuse("; ".join(reasons) or "no engine worker")


def room(workers: Iterable[WorkerLoad], limits: AdmissionConfig, most: int = 10_000) -> int | None:
    """How many more players would be admitted now, one after another: each worker takes
    players until :func:`assess` finds it at a limit (new players charged
    :attr:`~AdmissionConfig.stream_cost` until measured), and :func:`decide` refuses only when
    every worker is there, so the node's room is the sum. At most ``most`` per worker; None
    when admission is off (nobody is refused)."""
    if not limits.enabled:
        return None
    total = 0
    for w in workers:
        n = 0
        while n < most and assess(replace(w, placed=w.placed + n), limits)[1] is None:
            n += 1
        total += n
    return total


def regroup(
    current: int, members: Mapping[int, int], loads: Iterable[WorkerLoad], limits: AdmissionConfig
) -> int:
    """The slot for a player placed on ``current`` that starts a shareable live play, given
    ``members``: how many players already play that shared encode on each slot (decision
    0018). The slot with the most members that is live and has room for one more (by
    :func:`assess`) is chosen; the current slot wins ties and is kept when no slot with more
    members has room, and so is the player's least-loaded placement when nobody shares it."""
    here = members.get(current, 0)
    by_slot = {w.slot: w for w in loads}
    for slot in sorted(members, key=lambda s: (-members[s], s != current, s)):
        if members[slot] <= here:
            break
        w = by_slot.get(slot)
        if w is not None and w.up and assess(w, limits)[1] is None:
            return slot
    return current


class Placer:
    """The players of each engine slot, placed by :func:`decide` and kept there for life.

    ``place(key, loads)`` for a new player (raises nothing: returns the decision);
    ``slot_of(key)`` for every command (a player never admitted, e.g. one restored from the
    state file, is placed at its first command without refusal); ``release(key)`` when the
    player is gone. Loads come from :meth:`loads`, built from each slot's latest stats.
    """

    def __init__(self, slots: int, limits: AdmissionConfig, *, cpu: bool = True) -> None:
        self.limits = limits
        self.slots = slots
        self.cpu = cpu
        """Judge the engines' CPU. False for the in-process engine (``engine.workers = 0``):
        its process's CPU is the control plane's too, which admission cannot tell apart, so
        only the tick time, the missed slots and the cap apply there."""
        self._slot: dict[int, int] = {}
        self._placed = [0] * slots
        self.refused = 0
        """New players refused since the start."""
        self.last_refusal: str | None = None

    def __contains__(self, key: int) -> bool:
        return key in self._slot

    def placed(self, slot: int) -> int:
        return self._placed[slot]

    def loads(self, stats: StatsView, up: Iterable[bool]) -> list[WorkerLoad]:
        out = []
        for slot, alive in enumerate(up):
            latest = stats.latest(slot)
            sent, deficit = stats.window_frames(slot)
            out.append(
                WorkerLoad(
                    slot=slot,
                    up=alive,
                    placed=self._placed[slot],
                    measured=0 if latest is None else len(latest.players),
                    cpu=0.0 if latest is None or not self.cpu else latest.cpu,
                    tick_ms=0.0 if latest is None else latest.tick_mean_ms,
                    sent=sent,
                    deficit=deficit,
                )
            )
        return out

    def place(self, key: int, loads: list[WorkerLoad]) -> Decision:
        """Admit ``key`` (recording its slot) or refuse it (counted)."""
        if key in self._slot:
            return Admit(self._slot[key], 0.0)
        decision = decide(loads, self.limits)
        if isinstance(decision, Admit):
            self._assign(key, decision.slot)
        else:
            self.refused += 1
            self.last_refusal = decision.reason
        return decision

    def slot_of(self, key: int) -> int:
        """The player's slot. A player never admitted (one restored from the state file, or
        commands sent straight to a pool) is placed at its first command on ``key % N``,
        never refused: restored players all arrive before any worker has measured a load, and
        a fixed rule keeps their placement reproducible."""
        slot = self._slot.get(key)
        if slot is None:
            slot = key % self.slots
            self._assign(key, slot)
        return slot

    def move(self, key: int, slot: int) -> None:
        """Place an admitted player on ``slot`` instead (:func:`regroup`)."""
        self.release(key)
        self._assign(key, slot)

    def _assign(self, key: int, slot: int) -> None:
        self._slot[key] = slot
        self._placed[slot] += 1

    def admit(self, key: int, loads: list[WorkerLoad]) -> int:
        """:meth:`place`, raising the refusal the fronts answer with (503
        ``NODE_AT_CAPACITY`` with ``Retry-After``) instead of returning it."""
        decision = self.place(key, loads)
        if isinstance(decision, Refuse):
            raise Unavailable(
                f"the node is at capacity: {decision.reason}; try again later or another node",
                code="NODE_AT_CAPACITY",
                retry_after=self.limits.retry_after,
            )
        return decision.slot

    def release(self, key: int) -> None:
        slot = self._slot.pop(key, None)
        if slot is not None:
            self._placed[slot] -= 1

    def status(self, loads: list[WorkerLoad]) -> dict[str, Any]:
        """The ``admission`` object of ``/status``: whether a new player would be refused now,
        how many could be placed (:func:`room`), each worker's projected load, refusals so
        far."""
        decision = decide(loads, self.limits)
        workers = []
        for w in loads:
            load, full = assess(w, self.limits)
            workers.append(
                {"slot": w.slot, "placed": w.placed, "load": round(load, 3), "full": full}
            )
        return {
            "enabled": self.limits.enabled,
            "at_capacity": isinstance(decision, Refuse),
            "placeable": room(loads, self.limits),
            "refused": self.refused,
            "last_refusal": self.last_refusal,
            "workers": workers,
        }


class StatsView(Protocol):
    """What :class:`Placer` reads of a :class:`~audionode.engine.stats.StatsBook`."""

    def latest(self, slot: int) -> EngineStats | None: ...

    def window_frames(self, slot: int) -> tuple[int, int]: ...
