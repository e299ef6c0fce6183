"""Issue 15 item 4 end to end: a layer is heard over the music at the listener (DAVE on), at its
volume, and ends by itself or on DELETE, with its events on the bot's socket."""

from __future__ import annotations

import asyncio

from tests.conftest import NodeFactory
from tests.e2e.chain import Chain, EventLog, band_level, chain, decode, dominant

SILENCE = b"\xf8\xff\xfe"


async def test_a_layer_is_heard_over_the_music_at_its_volume(node_factory: NodeFactory) -> None:
    async with chain(node_factory) as c:
        log = EventLog(c.ws)
        try:
            await c.listener.wait_dave_ready()
            await c.load("tone:440?seconds=4")
            await log.wait("SOURCE_START")
            status, layer = await c.rest(
                "POST", "/layers", {"query": "tone:660?seconds=1.5", "volume": 0.5}
            )
            assert status == 200, layer
            assert layer == {
                "id": 1, "query": "tone:660?seconds=1.5", "volume": 0.5, "duck": None,
                "playing": False,
            }  # fmt: skip
            started = await log.wait("LAYER_STARTED")
            assert started["layer"]["id"] == 1 and started["layer"]["playing"] is True
            status, listed = await c.rest("GET", "/layers")
            assert [entry["id"] for entry in listed["layers"]] == [1]
            ended = await log.wait("LAYER_ENDED")
            assert ended["reason"] == "finished"
            await log.wait("SOURCE_STOP")
            assert (await c.rest("GET", "/layers"))[1] == {"layers": []}
        finally:
            await log.stop()
        frames = [f for _, f in c.audio_frames(c.bot_ssrc()) if f != SILENCE]
        pcm = decode(frames)
        levels = [
            (band_level(pcm[i : i + 9600], 440), band_level(pcm[i : i + 9600], 660))
            for i in range(0, len(pcm) - 9600, 9600)
        ]
        both = [(a, b) for a, b in levels if b > 0.2 * a]
        assert len(both) >= 5, levels  # ~1.5 s of the layer, in 200 ms windows
        ratios = sorted(b / a for a, b in both)
        median = ratios[len(ratios) // 2]
        assert 0.4 < median < 0.6, ratios  # the layer at half the music's level
        assert any(b < 0.02 * a for a, b in levels), "music alone before or after the layer"


async def test_a_layer_is_removed_and_bad_input_is_refused(node_factory: NodeFactory) -> None:
    async with chain(node_factory, layers={"max_per_player": 2}) as c:
        log = EventLog(c.ws)
        try:
            status, layer = await c.rest(
                "POST", "/layers", {"query": "tone:880?seconds=20", "duck": True}
            )
            assert status == 200 and layer["duck"] == 0.25
            await log.wait("LAYER_STARTED")
            second = await c.rest("POST", "/layers", {"query": "tone:990?seconds=20"})
            assert second[0] == 200
            third = await c.rest("POST", "/layers", {"query": "tone:990"})
            assert third[0] == 409 and third[1]["error"]["code"] == "TOO_MANY_LAYERS"
            bad = await c.rest("POST", "/layers", {"query": "tone:440", "volume": 9})
            assert bad[0] == 400 and "field `volume`" in bad[1]["error"]["message"]
            assert (await c.rest("DELETE", "/layers/77"))[0] == 404
            assert (await c.rest("DELETE", "/layers/x"))[0] == 400
            status, gone = await c.rest("DELETE", f"/layers/{layer['id']}")
            assert status == 200 and gone["id"] == layer["id"]
            ended = await log.wait("LAYER_ENDED", lambda d: d["layer"]["id"] == layer["id"])
            assert ended["reason"] == "stopped"
            await c.ws.send("addLayer", {"guild_id": str(c.guild), "query": "tone:300"})
            reply = await log.wait("addLayer")
            assert reply["id"] == 3 and reply["query"] == "tone:300"
        finally:
            await log.stop()


async def test_a_layer_plays_while_the_music_is_paused_which_then_stays_paused(
    node_factory: NodeFactory,
) -> None:
    async with chain(node_factory) as c:
        log = EventLog(c.ws)
        try:
            await c.listener.wait_dave_ready()
            await c.load("tone:440?seconds=10")
            await log.wait("SOURCE_START")
            await asyncio.sleep(0.3)
            assert (await c.rest("POST", "/pause"))[0] == 204
            await asyncio.sleep(0.3)
            paused_at = len(frames_of(c))
            assert (await c.rest("POST", "/layers", {"query": "tone:660?seconds=1"}))[0] == 200
            await log.wait("LAYER_ENDED")
            await asyncio.sleep(0.4)
            after_layer = frames_of(c)
            await asyncio.sleep(0.4)
            assert len(frames_of(c)) == len(after_layer), "paused again once the layer ended"
            assert (await c.rest("POST", "/resume"))[0] == 204
            await asyncio.sleep(0.5)
            resumed = frames_of(c)[len(after_layer) :]
        finally:
            await log.stop()
    layer = after_layer[paused_at:]
    assert 48 <= len(layer) <= 53, len(layer)  # one second of layer, alone
    assert abs(dominant(decode(layer)) - 660) < 5
    assert len(resumed) >= 15 and abs(dominant(decode(resumed)) - 440) < 5


def frames_of(c: Chain) -> list[bytes]:
    return [f for _, f in c.audio_frames(c.bot_ssrc()) if f != SILENCE]
