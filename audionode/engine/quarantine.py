"""Quarantine: a track or a filter set that killed an engine worker twice is not played again.

When a worker dies, the pool restores its players on the replacement, each from its current
track's last position. A track (or a filter set) that crashes or stalls the engine would
then crash it again and again, and every guild of that worker would stutter with it. So the
pool keeps a :class:`Quarantine`, a sans-I/O ledger of what each player has on its worker:

- every command it sends updates the player's seat (current track, preloaded track, filter
  set) and every event it receives from the worker moves the preloaded track to current or
  clears an ended one;
- when a worker dies, :meth:`Quarantine.blame` gives the suspects a strike: the player whose
  producer turn was stuck or running when it died (the watchdog knows), else every player of
  the worker. A suspect's tracks and filter set are struck, each fingerprint once per death
  however many players hold it (a popular song played in many guilds of the worker is one
  suspect, not many deaths);
- a second strike quarantines a thing only if it came from a later death, after the thing
  was sent again following its first strike (the restore's replay), and either the culprit
  was identified or the death came within :data:`REPLAY_WINDOW` seconds of that replay.
  What was merely present at both deaths without being sent again (the preloaded follow-up,
  which the restore does not preload again) keeps one strike;
- :meth:`Quarantine.refuse` answers a command naming a quarantined track or filter set with
  the error event the player gets instead (it moves on to its next track).

A track is known by its URL, or by the size and a hash of the ends of its in-memory data (a
generated track regenerated for the replay has the same bytes); a filter set by its JSON.
Entries are forgotten after :data:`MEMORY` seconds and at most :data:`CAPACITY` are kept.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from audionode.engine import messages as msg
from audionode.playable import Playable

MEMORY = 3600.0
"""Seconds a strike and a quarantine are remembered."""
REPLAY_WINDOW = 60.0
"""A worker death within this many seconds of a struck track being sent again is its second
strike; later deaths (an operator's kill, an unrelated crash) count as a first one again."""
CAPACITY = 1024
"""Strikes and quarantined entries kept at most (the oldest are forgotten first)."""
_SAMPLE = 1 << 16
QUARANTINED = "this {} crashed the engine twice and is quarantined"


def track_fingerprint(playable: Playable) -> str:
    """A track's identity across replays (never its bytes: hashing megabytes per play on the
    control loop would cost milliseconds)."""
    if playable.url is not None:
        return f"url:{playable.url}"
    data = playable.data or b""
    digest = hashlib.blake2b(data[:_SAMPLE] + data[-_SAMPLE:], digest_size=16).hexdigest()
    return f"data:{len(data)}:{digest}"


def filters_fingerprint(filters: dict[str, Any]) -> str | None:
    """A filter set's identity; None for no filters (which never crash anything)."""
    if not filters:
        return None
    return "filters:" + json.dumps(filters, sort_keys=True, separators=(",", ":"))


@dataclass(slots=True)
class _Sent:
    serial: int
    fingerprint: str
    since: float
    """When the command carrying it was sent (``time.monotonic()``)."""


@dataclass(slots=True)
class _Seat:
    current: _Sent | None = None
    next: _Sent | None = None
    filters: _Sent | None = None

    def suspects(self) -> list[_Sent]:
        return [s for s in (self.current, self.next, self.filters) if s is not None]


class _Bounded(OrderedDict[str, float]):
    """fingerprint -> time, oldest first, at most :data:`CAPACITY` entries."""

    def put(self, key: str, now: float) -> None:
        self.pop(key, None)
        self[key] = now
        while len(self) > CAPACITY:
            self.popitem(last=False)

    def fresh(self, key: str, now: float) -> bool:
        then = self.get(key)
        if then is None or now - then > MEMORY:
            self.pop(key, None)
            return False
        return True


class Quarantine:
    """What each player has on its worker, the strikes, and the quarantined fingerprints."""

    def __init__(self) -> None:
        self._seats: dict[int, _Seat] = {}
        self._strikes = _Bounded()
        self._banned = _Bounded()
        self._resent = _Bounded()
        """Struck fingerprint -> when it was first sent again after its strike (the restore's
        replay). Later sends do not move it: a popular track is sent for new plays every few
        seconds, and a death long after its replay is no sign against it."""

    # --- the ledger ---------------------------------------------------------------------------

    def sent(self, command: msg.Command, now: float) -> None:
        """Record a command that was delivered (or queued for the worker)."""
        if isinstance(command, msg.Disconnect):
            self._seats.pop(command.player, None)
            return
        seat = self._seats.setdefault(command.player, _Seat())
        if isinstance(command, msg.Play):
            seat.current = self._sending(command.serial, track_fingerprint(command.source), now)
        elif isinstance(command, msg.Preload):
            seat.next = self._sending(command.serial, track_fingerprint(command.source), now)
        elif isinstance(command, msg.CancelPreload):
            seat.next = None
        elif isinstance(command, msg.Skip):
            seat.current, seat.next = seat.next, None
        elif isinstance(command, msg.Stop):
            seat.current = seat.next = None
        elif isinstance(command, msg.SetFilters):
            fingerprint = filters_fingerprint(command.filters)
            seat.filters = None if fingerprint is None else self._sending(0, fingerprint, now)

    def _sending(self, serial: int, fingerprint: str, now: float) -> _Sent:
        if fingerprint not in self._resent and self._strikes.fresh(fingerprint, now):
            self._resent.put(fingerprint, now)
        return _Sent(serial, fingerprint, now)

    def received(self, event: msg.Event) -> None:
        """Record an event from the worker (the preloaded track started, a track ended)."""
        seat = self._seats.get(event.player)
        if seat is None:
            return
        if isinstance(event, msg.TrackStarted):
            if seat.next is not None and seat.next.serial == event.serial:
                seat.current, seat.next = seat.next, None
        elif isinstance(event, msg.TrackEnded):
            if seat.current is not None and seat.current.serial == event.serial:
                seat.current = None
            if seat.next is not None and seat.next.serial == event.serial:
                seat.next = None

    # --- deaths and refusals --------------------------------------------------------------------

    def blame(
        self, players: Iterable[int], culprit: int | None, now: float, *, anyone: bool = True
    ) -> list[str]:
        """A worker serving ``players`` died; ``culprit`` is the player the watchdog caught
        (a stuck or long producer turn), if any; without one, every player is a suspect
        unless ``anyone`` is False (a death no track can have caused, e.g. a stalled event
        loop). Strikes the suspects, forgets every seat of the worker (its replacement starts
        empty) and returns the fingerprints quarantined now."""
        seats = {key: self._seats.pop(key, None) for key in players}
        certain = culprit is not None and culprit in seats
        everyone = list(seats) if anyone else []
        suspects = [culprit] if culprit is not None and certain else everyone
        # One strike per fingerprint and death, with its latest send: several players holding
        # the same track are one suspect (striking it per player would quarantine a popular
        # song at a single death).
        latest: dict[str, float] = {}
        for key in suspects:
            seat = seats[key]
            for sent in seat.suspects() if seat is not None else ():
                latest[sent.fingerprint] = max(sent.since, latest.get(sent.fingerprint, sent.since))
        return [key for key, since in latest.items() if self._strike(key, since, now, certain)]

    def _strike(self, key: str, since: float, now: float, certain: bool) -> bool:
        """Strike ``key`` (last sent at ``since``) for a death at ``now``; True when this
        quarantines it."""
        first = self._strikes.get(key) if self._strikes.fresh(key, now) else None
        # A second strike counts only for a thing sent again after its first one (replayed
        # into this death), not for one that merely sat on the worker through both; and,
        # with no culprit caught, only for a death soon after that first re-send (the
        # replay), however often the thing was sent since (the soak: a 20 s track on repeat
        # in 300 guilds was quarantined by two outside kills 285 s apart).
        resent = self._resent.get(key) if first is not None else None
        replayed = first is not None and resent is not None and since >= first
        if replayed and resent is not None and (certain or now - resent <= REPLAY_WINDOW):
            self._banned.put(key, now)
            self._strikes.pop(key, None)
            self._resent.pop(key, None)
            return True
        if first is None or replayed:  # a thing never re-sent keeps its first strike's time
            self._strikes.put(key, now)
            self._resent.pop(key, None)
        return False

    def refuse(self, command: msg.Command, now: float) -> msg.Event | None:
        """The error event answering ``command`` if it names something quarantined."""
        if isinstance(command, msg.Play | msg.Preload):
            if self._banned.fresh(track_fingerprint(command.source), now):
                return msg.refusal(command, QUARANTINED.format("track"))
        elif isinstance(command, msg.SetFilters):
            fingerprint = filters_fingerprint(command.filters)
            if fingerprint is not None and self._banned.fresh(fingerprint, now):
                return msg.refusal(command, QUARANTINED.format("filter set"))
        return None

    def stats(self) -> dict[str, int]:
        return {"quarantined": len(self._banned), "strikes": len(self._strikes)}
