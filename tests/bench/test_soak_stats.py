"""``bench/soak_stats.py`` on packets built by hand: recovery, silences, SSRC changes, RSS."""

from __future__ import annotations

import numpy as np

from bench.soak_stats import (
    Packets,
    Piece,
    others_gaps,
    recovery,
    rss_slopes,
    silences,
    window_row,
)

T0 = 1_000_000.0


def stream(ssrc: int, start: float, stop: float) -> tuple[np.ndarray, np.ndarray]:
    """A packet every 20 ms from ``start`` to ``stop`` (seconds after T0)."""
    t = T0 + np.arange(start, stop, 0.02)
    return np.full(len(t), ssrc, np.uint32), t


def piece(*streams: tuple[np.ndarray, np.ndarray]) -> Piece:
    ssrcs = np.concatenate([s for s, _ in streams])
    stamps = np.concatenate([t for _, t in streams])
    order = np.argsort(stamps)  # the sink records in arrival order
    return Piece(T0, T0 + 20.0, ssrcs[order], stamps[order])


def test_a_guild_that_changes_ssrc_is_one_stream_and_its_silence_is_measured() -> None:
    # guild 1 plays as SSRC 11, is silent from 8 s to 9.5 s, then plays as SSRC 12;
    # guild 2 plays throughout; SSRC 99 belongs to nobody under test.
    packets = Packets([1, 2])
    packets.add(piece(stream(11, 0, 8), stream(12, 9.5, 20), stream(21, 0, 20), stream(99, 0, 20)))
    s, t = packets.streams({11: 1, 12: 1, 21: 2, 99: 7}, T0, T0 + 20)
    assert sorted(set(s.tolist())) == [0, 1]
    row = window_row(s, t, 2, 20.0)
    # guild 1: 400 + 525 packets in 20 s (1.5 s lost), guild 2: 1000
    assert (row["pps_min"], row["pps_mean"], row["silent_streams"]) == (46.25, 48.125, 0)
    assert row["gap_max_ms"] > 1400 and row["missed"] == 1

    sil = silences(s, t, np.array([0]), T0 + 7, T0 + 20)
    assert 1.49 < sil["silence_max_s"] < 1.53 and sil["still_silent_at_end"] == 0

    rec = recovery(s, t, np.array([0, 1]), T0 + 7, T0 + 20)
    assert rec["recovery_s"] == 3 and rec["recovered"] is True  # bins 7-9 s below rate
    assert rec["pps_lowest_second"] == 25.0  # second 8-9: only guild 2 sounds

    others = others_gaps(s, t, np.array([0]), T0 + 7, T0 + 20)
    assert others["streams"] == 1 and others["gap_max_ms"] < 21


def test_packets_of_a_dead_voice_server_do_not_count() -> None:
    packets = Packets([1])
    packets.add(piece(stream(11, 0, 20), stream(12, 12, 20)))
    s, t = packets.streams({11: 1, 12: 1}, T0, T0 + 20, dead={11: T0 + 10})
    sil = silences(s, t, np.array([0]), T0 + 10, T0 + 20)
    assert 1.99 < sil["silence_max_s"] < 2.03  # from 10 s (death) to 12 s (new SSRC)


def test_a_stream_that_never_comes_back_is_still_silent_and_not_recovered() -> None:
    packets = Packets([1, 2])
    packets.add(piece(stream(11, 0, 5), stream(21, 0, 20)))
    s, t = packets.streams({11: 1, 21: 2}, T0, T0 + 20)
    assert silences(s, t, np.array([0, 1]), T0 + 4, T0 + 20)["still_silent_at_end"] == 1
    rec = recovery(s, t, np.array([0, 1]), T0 + 4, T0 + 20)
    assert rec["recovered"] is False and rec["recovery_s"] == 16


def test_rss_slope_pools_workers_within_each_process() -> None:
    # worker A grows 1 MB per 10 s, is killed at 60 s; its replacement B starts small and
    # grows the same: a line through the sums would show shrinkage, the pooled slope 360 MB/h.
    samples = []
    for i in range(12):
        t = 10.0 * i
        worker = (
            {"pid": 1, "role": "worker0", "rss_mb": 100 + i}
            if t < 60
            else {"pid": 2, "role": "worker0", "rss_mb": 50 + (i - 6)}
        )
        control = {"pid": 9, "role": "control", "rss_mb": 80.0}
        samples.append({"t": t, "processes": [control, worker]})
    slopes = rss_slopes(samples, after=0.0)
    assert slopes["workers_mb_per_hour"] == 360.0
    assert slopes["control_mb_per_hour"] == 0.0
    assert slopes["total_mb_per_hour"] < 0
