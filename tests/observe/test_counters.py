"""The engine's counters in ``/metrics`` against known traffic, through the whole real chain:
a bot drives the real node, whose voice client plays into the real built-in voice server,
where an independent listening member counts the packets it actually received.

Tolerances, stated once: the engines report their counters every ``Engine.stats_interval``
seconds (2 s; 0.2 s in the in-process test below), so a scrape during playback lags the
wire by at most one report's worth of frames, plus the few datagrams in flight on loopback.
Once the stream is idle the counters equal what was received, exactly: ``frames_sent`` the
audio packets, ``frames_silence`` the ``F8 FF FE`` packets (a datagram lost on loopback under
load could only make the counters exceed what was received, by that loss).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal

import pytest

from audionode.engine.engine import Engine
from audionode.voice.packetizer import SILENCE_FRAME
from tests.conftest import NodeFactory
from tests.e2e.chain import Chain, chain, events_until
from tests.observe.scrape import Samples, counters, scrape, value

LOSS = 2
"""Datagrams loopback UDP may drop under load (never observed idle; allowed for)."""


def received(c: Chain, ssrc: int) -> tuple[int, int]:
    """(audio packets, silence packets) the listener received from the bot."""
    payloads = [o.payload for _, o in c.listener.opened(ssrc)]
    silence = sum(1 for p in payloads if p == SILENCE_FRAME)
    return len(payloads) - silence, silence


async def test_frames_sent_equal_the_packets_the_listener_received(
    node_factory: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    interval = 0.2
    monkeypatch.setattr(Engine, "stats_interval", interval)  # the in-process engine only
    in_flight = int(interval / 0.020) + 15  # one report of frames, plus a loaded loop's slack
    async with chain(node_factory) as c:
        await c.load("tone:440?seconds=3")
        await events_until(c.ws, "SOURCE_START")
        await c.listener.wait_for(lambda: len(c.listener.packets) >= 50, within=10)
        ssrc = c.bot_ssrc()
        # Mid-playback: the counter sits between what had arrived just before the scrape
        # (minus the frames of one report interval) and what arrived just after it.
        before = received(c, ssrc)[0]
        mid = value(
            await scrape(c.node.http, c.node.url), "audionode_frames_sent_total", worker="0"
        )
        after = received(c, ssrc)[0]
        assert before - in_flight <= mid <= after + LOSS, (before, mid, after)
        assert mid > 0
        await events_until(c.ws, "SOURCE_STOP")
        # Idle: wait for the trailing silence to arrive and a report that saw all of it.
        samples: Samples = {}
        for _ in range(100):
            await asyncio.sleep(interval)
            audio, silence = received(c, ssrc)
            samples = await scrape(c.node.http, c.node.url)
            sent = value(samples, "audionode_frames_sent_total", worker="0")
            quiet = value(samples, "audionode_frames_silence_total", worker="0")
            if sent == audio and quiet == silence and silence >= 5:
                break
        audio, silence = received(c, ssrc)
        sent = value(samples, "audionode_frames_sent_total", worker="0")
        quiet = value(samples, "audionode_frames_silence_total", worker="0")
        print(f"listener: {audio} audio + {silence} silence; counters: {sent} + {quiet}")
        assert audio <= sent <= audio + LOSS, (audio, sent)
        assert silence <= quiet <= silence + LOSS, (silence, quiet)
        assert 145 <= audio <= 155  # 3 s of 20 ms frames: the tone really played
        assert value(samples, "audionode_frames_deficit_total", worker="0") >= 0
        ticks = value(samples, "audionode_sender_ticks_total", worker="0")
        assert ticks >= audio  # one tick per frame at least
        # Every tick is in both histograms.
        assert value(samples, "audionode_sender_tick_seconds_count", worker="0") == ticks
        assert value(samples, "audionode_sender_lateness_seconds_count", worker="0") == ticks
        assert (
            value(samples, "audionode_sender_lateness_seconds_bucket", worker="0", le="+Inf")
            == ticks
        )
        # The voice connection, its mode and DAVE state, and the player's state.
        conns = {
            dict(ls)["dave"]: v
            for (n, ls), v in samples.items()
            if n == "audionode_voice_connections"
        }
        assert conns == {"active": 1}, conns
        assert value(samples, "audionode_players", state="stopped") == 1
        # The tone source's load and open were timed.
        assert (
            value(samples, "audionode_source_extraction_seconds_count", source="tone", op="load")
            == 1
        )
        assert (
            value(samples, "audionode_source_extraction_seconds_count", source="tone", op="open")
            == 1
        )
        assert (
            value(samples, "audionode_source_extraction_failures_total", source="tone", op="load")
            == 0
        )


def _no_counter_decreased(old: Samples, new: Samples) -> None:
    for key, v in counters(old).items():
        if key in new:
            assert new[key] >= v, f"{key} went from {v} to {new[key]}"


async def test_counters_never_decrease_across_a_worker_kill(node_factory: NodeFactory) -> None:
    async with chain(node_factory, engine={"workers": 1}) as c:
        await c.load("tone:440?seconds=60")
        await events_until(c.ws, "SOURCE_START")
        sent = "audionode_frames_sent_total"
        history = [await scrape(c.node.http, c.node.url)]
        async with asyncio.timeout(30):
            while value(history[-1], sent, worker="0") < 100:
                await asyncio.sleep(0.5)
                history.append(await scrape(c.node.http, c.node.url))
        before_kill = value(history[-1], sent, worker="0")
        engine = c.node.node.service.engine
        assert engine is not None
        (pid,) = engine.pids()  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)
        # The replacement starts from 0; the exported counters go on from where they were.
        async with asyncio.timeout(60):
            while True:
                await asyncio.sleep(0.5)
                history.append(await scrape(c.node.http, c.node.url))
                now = history[-1]
                if (
                    value(now, "audionode_worker_restarts_total", worker="0") == 1
                    and value(now, sent, worker="0") > before_kill + 100
                ):
                    break
        for old, new in itertools.pairwise(history):
            _no_counter_decreased(old, new)
        last = history[-1]
        assert value(last, "audionode_worker_up", worker="0") == 1
        assert value(last, "audionode_process_cpu_seconds_total", process="worker-0") > 0
        assert value(last, "audionode_process_resident_memory_bytes", process="worker-0") > 0
        print(
            f"{len(history)} scrapes; frames sent {before_kill:.0f} before the kill, "
            f"{value(last, sent, worker='0'):.0f} after the respawn"
        )
