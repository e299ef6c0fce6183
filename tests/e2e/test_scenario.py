"""Issue 6: a scripted bot queues three tones with a crossfade, changes volume, pauses, seeks and
skips; the listening member's decoded audio must show each of those, in order."""

from __future__ import annotations

import asyncio

import numpy as np

from audionode.voice.packetizer import SILENCE_FRAME
from tests.conftest import NodeFactory
from tests.e2e.chain import EventLog, band_level, chain, decode

WINDOW = 5  # frames per analysis window: 100 ms


def windows(frames: list[tuple[float, bytes]]) -> list[tuple[float, np.ndarray]]:
    """Decode the stream (silence included, so sample counts line up) into 100 ms windows."""
    pcm = decode([f for _, f in frames])
    out = []
    for i in range(0, len(frames) - WINDOW + 1, WINDOW):
        out.append((frames[i][0], pcm[i * 960 : (i + WINDOW) * 960]))
    return out


async def test_the_listener_hears_the_queue_and_every_control(node_factory: NodeFactory) -> None:
    async with chain(node_factory) as c:
        loop = asyncio.get_running_loop()
        log = EventLog(c.ws)
        assert (await c.rest("POST", "/options", {"crossfade": 1.0}))[0] == 200
        a = await c.load("tone:440?seconds=4")
        b = await c.load("tone:660?seconds=3")
        d = await c.load("tone:880?seconds=2")
        await log.wait("SOURCE_START", lambda e: e["source"]["tag"] == a["tag"])
        await asyncio.sleep(0.8)
        t_volume = loop.time()
        assert (await c.rest("POST", "/options", {"volume": 0.25}))[0] == 200
        await asyncio.sleep(0.6)
        t_pause = loop.time()
        assert (await c.rest("POST", "/pause"))[0] == 204
        await asyncio.sleep(0.8)
        t_resume = loop.time()
        assert (await c.rest("POST", "/resume"))[0] == 204
        await asyncio.sleep(0.3)
        assert (await c.rest("POST", "/seek", {"offset": 3.0}))[0] == 204
        await log.wait("SOURCE_START", lambda e: e["source"]["tag"] == b["tag"])
        await asyncio.sleep(1.4)  # past the crossfade
        assert (await c.rest("POST", "/skip"))[0] == 204
        await log.wait("SOURCE_STOP", lambda e: e["source"]["tag"] == d["tag"], within=10)
        await c.listener.wait_for(lambda: c.listener.packets[-1].data is not None, within=1)
        await asyncio.sleep(0.3)  # the trailing silence frames
        await log.stop()

        # --- events: in order, with reasons --------------------------------------------------
        trail = [
            (f["op"], f["d"]["source"]["tag"], f["d"].get("reason"))
            for f in log.ops("SOURCE_START", "SOURCE_STOP")
        ]
        starts = [tag for op, tag, _ in trail if op == "SOURCE_START"]
        assert starts == [a["tag"], b["tag"], d["tag"]]
        stops = {tag: reason for op, tag, reason in trail if op == "SOURCE_STOP"}
        assert stops == {a["tag"]: "finished", b["tag"]: "skipped", d["tag"]: "finished"}
        assert trail.index(("SOURCE_START", b["tag"], None)) < trail.index(
            ("SOURCE_STOP", a["tag"], "finished")
        ), "crossfade: next starts before previous stops"
        assert log.ops("PLAYER_UPDATE"), "position updates while playing"
        mirror: list[dict[str, object]] = []
        for q in log.ops("QUEUE_EVENT"):
            getattr(mirror, q["d"]["name"])(*q["d"]["args"])
        assert [q["d"]["name"] for q in log.ops("QUEUE_EVENT")] == [
            "extend",
            "pop",
            "extend",
            "extend",
            "pop",
            "pop",
        ]
        assert mirror == (await c.rest("GET", "/queue"))[1]["entries"] == []

        # --- audio: tones in order, crossfade overlap, volume, pause, seek ---------------------
        frames = c.audio_frames(c.bot_ssrc())
        wins = windows(frames)
        levels = [(at, {f: band_level(pcm, f) for f in (440, 660, 880)}) for at, pcm in wins]
        peak = {f: max(lv[f] for _, lv in levels) for f in (440, 660, 880)}
        present = [(at, {f for f in lv if lv[f] > 0.1 * peak[f]}) for at, lv in levels]
        order: list[int] = []
        for _, fs in present:
            for f in sorted(fs, key=lambda f: (440, 660, 880).index(f)):
                if not order or (order[-1] != f and f not in order):
                    order.append(f)
        assert order == [440, 660, 880]
        overlap = sum(1 for _, fs in present if {440, 660} <= fs) * 0.1
        assert 0.6 <= overlap <= 1.4, f"crossfade overlap {overlap:.1f} s, expected about 1 s"
        before = [lv[440] for at, lv in levels if t_volume - 0.6 < at < t_volume - 0.1]
        after = [lv[440] for at, lv in levels if t_volume + 0.25 < at < t_pause - 0.05]
        ratio = float(np.median(after) / np.median(before))
        assert 0.15 < ratio < 0.4, f"volume 1.0 -> 0.25 changed the level by {ratio:.2f}"
        heard_440 = sum(1 for _, fs in present if 440 in fs) * 0.1
        assert 2.2 <= heard_440 <= 3.3, f"440 Hz heard for {heard_440:.1f} s; the seek cut ~1.3 s"

        gaps = [(frames[i][0], frames[i + 1][0] - frames[i][0]) for i in range(len(frames) - 1)]
        pause_gap = [
            (i, g) for i, (at, g) in enumerate(gaps) if t_pause <= at <= t_resume + 0.1 and g > 0.5
        ]
        assert len(pause_gap) == 1, pause_gap
        i = pause_gap[0][0]
        assert [f for _, f in frames[i - 4 : i + 1]] == [SILENCE_FRAME] * 5, (
            "5 silence frames, then quiet"
        )
        assert [f for _, f in frames[-5:]] == [SILENCE_FRAME] * 5, "5 silence frames at the end"
