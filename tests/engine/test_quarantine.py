"""The quarantine ledger (sans-I/O): what each player has on its worker, strikes, refusals."""

from __future__ import annotations

from audionode.engine import messages as m
from audionode.engine.quarantine import (
    CAPACITY,
    MEMORY,
    REPLAY_WINDOW,
    Quarantine,
    filters_fingerprint,
    track_fingerprint,
)
from audionode.playable import Playable

BAD = Playable.from_url("https://example.com/bad.mp3")
GOOD = Playable.from_url("https://example.com/good.mp3")


def play(player: int, serial: int, source: Playable = BAD) -> m.Play:
    return m.Play(player=player, serial=serial, source=source)


def test_fingerprints_identify_a_track_across_replays_without_hashing_all_of_it() -> None:
    data = bytes(range(256)) * 4096
    assert track_fingerprint(Playable.from_bytes(data)) == track_fingerprint(
        Playable.from_bytes(bytes(data))
    )
    assert track_fingerprint(Playable.from_bytes(data)) != track_fingerprint(
        Playable.from_bytes(data + b"x")
    )
    assert track_fingerprint(BAD) != track_fingerprint(GOOD)
    assert filters_fingerprint({}) is None
    assert filters_fingerprint({"a": 1, "b": 2}) == filters_fingerprint({"b": 2, "a": 1})


def test_a_track_replayed_into_a_second_death_is_quarantined() -> None:
    q = Quarantine()
    q.sent(play(1, 1), now=0)
    assert q.blame({1}, None, now=100) == []  # first death: one strike
    q.sent(play(1, 2), now=101)  # the restore replays it
    assert q.blame({1}, None, now=105) == [track_fingerprint(BAD)]
    refused = q.refuse(play(1, 3), now=106)
    assert isinstance(refused, m.TrackEnded) and refused.serial == 3
    assert refused.reason == "error" and "quarantined" in (refused.message or "")
    assert q.refuse(play(1, 4, GOOD), now=106) is None
    assert q.stats() == {"quarantined": 1, "strikes": 0}


def test_a_death_long_after_the_replay_is_a_first_strike_again() -> None:
    q = Quarantine()
    q.sent(play(1, 1), now=0)
    q.blame({1}, None, now=10)
    q.sent(play(1, 2), now=11)
    # an operator's kill, minutes into the replayed track: not the track's doing
    assert q.blame({1}, None, now=11 + REPLAY_WINDOW + 1) == []
    assert q.refuse(play(1, 3), now=200) is None


def test_a_popular_track_sent_again_and_again_is_judged_by_its_replay_not_its_last_send() -> None:
    # The soak: a 20 s track on repeat in every guild is sent for a new play every 20 s, so
    # some send is always recent; two outside kills 285 s apart quarantined it everywhere.
    q = Quarantine()
    players = set(range(1, 151))
    for p in players:
        q.sent(play(p, 1), now=0)
    assert q.blame(players, None, now=30) == []  # first kill: one strike
    serial = 2
    for t in range(31, 315, 20):  # the restore's replay at 31, then new plays every 20 s
        for p in players:
            q.sent(play(p, serial), now=t)
        serial += 1
    assert q.blame(players, None, now=315) == []  # 284 s after the replay
    assert q.refuse(play(1, serial), now=316) is None
    # A track that really kills: replayed, and the worker dies again within seconds.
    for p in players:
        q.sent(play(p, serial), now=320)
    assert q.blame(players, None, now=323) == [track_fingerprint(BAD)]


def test_a_caught_culprit_spares_the_other_players_of_the_worker() -> None:
    q = Quarantine()
    q.sent(play(1, 1), now=0)
    q.sent(play(2, 1, GOOD), now=0)
    q.sent(m.SetFilters(player=1, filters={"rotation": {"rotationHz": 0.2}}), now=0)
    assert q.blame({1, 2}, 1, now=500) == []
    q.sent(play(1, 2), now=501)
    q.sent(play(2, 2, GOOD), now=501)
    q.sent(m.SetFilters(player=1, filters={"rotation": {"rotationHz": 0.2}}), now=501)
    # caught again (a stuck producer turn): quarantined whatever the time since the replay
    newly = q.blame({1, 2}, 1, now=501 + REPLAY_WINDOW * 2)
    assert sorted(newly) == sorted(
        [track_fingerprint(BAD), filters_fingerprint({"rotation": {"rotationHz": 0.2}})]
    )
    assert q.refuse(play(2, 3, GOOD), now=600) is None
    refused = q.refuse(m.SetFilters(player=1, filters={"rotation": {"rotationHz": 0.2}}), now=600)
    assert isinstance(refused, m.CommandFailed) and refused.command == "SetFilters"


def test_a_death_no_track_can_cause_strikes_nobody() -> None:
    q = Quarantine()
    for now in (0, 5):
        q.sent(play(1, now), now=now)
        assert q.blame({1}, None, now=now + 1, anyone=False) == []
    assert q.stats() == {"quarantined": 0, "strikes": 0}


def test_the_ledger_follows_the_preloaded_track_and_forgets_ended_ones() -> None:
    q = Quarantine()
    q.sent(play(1, 1, GOOD), now=0)
    q.sent(m.Preload(player=1, serial=2, source=BAD), now=1)
    q.received(m.TrackEnded(player=1, serial=1, reason="finished"))
    q.received(m.TrackStarted(player=1, serial=2))  # the preloaded one is current now
    q.blame({1}, None, now=2)
    q.sent(play(1, 3, BAD), now=3)
    q.sent(m.Stop(player=1), now=4)  # stopped before the death: not a suspect
    assert q.blame({1}, None, now=5) == []
    q.sent(play(1, 4, BAD), now=6)
    assert q.blame({1}, None, now=7) == [track_fingerprint(BAD)]


def test_entries_are_bounded_and_expire() -> None:
    q = Quarantine()
    for i in range(CAPACITY + 10):
        q.sent(play(1, i, Playable.from_url(f"https://example.com/{i}")), now=0)
        q.blame({1}, None, now=0)
    assert q.stats()["strikes"] == CAPACITY
    q.sent(play(1, 1), now=0)
    q.blame({1}, None, now=0)
    q.sent(play(1, 2), now=1)
    q.blame({1}, None, now=1)
    assert q.refuse(play(1, 3), now=2) is not None
    assert q.refuse(play(1, 3), now=2 + MEMORY) is None  # forgotten after an hour


def test_one_death_strikes_a_track_once_however_many_players_hold_it() -> None:
    # A popular song in two guilds of the worker, and queued twice in one (current and
    # preloaded follow-up): one death is one strike, never a quarantine.
    q = Quarantine()
    q.sent(play(1, 1), now=0)
    q.sent(play(3, 1), now=1)
    q.sent(m.Preload(player=3, serial=2, source=BAD), now=2)
    assert q.blame({1, 3}, None, now=10) == []
    assert q.refuse(play(1, 2), now=11) is None
    assert q.stats() == {"quarantined": 0, "strikes": 1}
    q.sent(play(1, 2), now=11)  # the restore replays it, and it kills the worker again
    assert q.blame({1, 3}, None, now=20) == [track_fingerprint(BAD)]


def test_a_track_struck_elsewhere_is_not_quarantined_by_an_unrelated_death() -> None:
    # Guild 2 (worker 0) has played it since before its strike on worker 1 (player 1's
    # death): an unrelated death of worker 0 is no replay of it.
    q = Quarantine()
    q.sent(play(2, 1), now=0)
    q.sent(play(1, 1), now=5)
    assert q.blame({1}, None, now=10) == []
    assert q.blame({2}, None, now=30) == []
    assert q.refuse(play(2, 2), now=31) is None
    # ... but that death is its second strike's reference now: a replay dying again counts
    q.sent(play(2, 2), now=31)
    assert q.blame({2}, None, now=35) == [track_fingerprint(BAD)]


def test_the_preloaded_follow_up_of_a_crashing_track_is_not_quarantined() -> None:
    q = Quarantine()
    q.sent(play(1, 1), now=0)
    q.sent(m.Preload(player=1, serial=2, source=GOOD), now=1)
    assert q.blame({1}, 1, now=2) == []  # caught: the player's turn; both struck once
    q.sent(play(1, 3), now=3)  # the restore replays the current only
    assert q.blame({1}, 1, now=4) == [track_fingerprint(BAD)]
    assert q.refuse(play(1, 4, GOOD), now=5) is None  # the player moves on to it
