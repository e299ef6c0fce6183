"""Issue 11 item 9: with crossfade 0, tracks played back to back lose no frame and no sample.

The whole chain is real (a bot drives the node, which runs its engine in a worker process and
plays into the built-in voice server; a listening member decrypts and decodes). The tracks'
lengths are chosen so that both joins fall inside a 20 ms frame: a join padded with silence
would add a frame, a lost frame would remove one, and either would show in the decoded audio.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from audionode.voice.packetizer import SILENCE_FRAME
from tests.conftest import NodeFactory
from tests.e2e.chain import chain, decode

pytestmark = pytest.mark.timeout(40)

RATE = 48000
TRACKS = ((440, 1.01), (554, 0.98), (659, 1.01))
"""48480 + 47040 + 48480 samples = 144000 = exactly 150 frames; joins at 50.5 and 99.5."""
_AMPLITUDE = 0.5 * 32767  # the tone plugin's default level, as decoded (int16 scale)


def _tone_at(pcm: np.ndarray, start: int, n: int = 480) -> int:
    """Which of the three tones dominates ``pcm[start:start + n]`` (its index)."""
    window = pcm[start : start + n] * np.hanning(n)
    t = np.arange(n) / RATE
    power = [abs(np.sum(window * np.exp(-2j * np.pi * f * t))) for f, _ in TRACKS]
    return int(np.argmax(power))


def _envelope_min(pcm: np.ndarray, width: int = 240) -> float:
    """The lowest peak level over any 5 ms window: a silent or missing stretch shows here."""
    trimmed = np.abs(pcm[: len(pcm) // width * width]).reshape(-1, width)
    return float(trimmed.max(axis=1).min())


@pytest.mark.parametrize("workers", [0, 1])
async def test_back_to_back_tracks_send_every_frame_and_every_sample(
    node_factory: NodeFactory, workers: int
) -> None:
    async with chain(node_factory, engine={"workers": workers, "crossfade": 0}) as c:
        for freq, seconds in TRACKS:
            await c.load(f"tone:{freq}?seconds={seconds}")
        stops: list[str] = []
        while len(stops) < len(TRACKS):
            frame = await c.ws.recv(10)
            if frame["op"] == "SOURCE_STOP":
                stops.append(frame["d"]["reason"])
        assert stops == ["finished"] * 3
        # the five silence frames that close the transmission (docs/discord-voice.md §1.11)
        await c.listener.wait_for(
            lambda: (
                sum(o.payload == SILENCE_FRAME for _, o in c.listener.opened(c.bot_ssrc())) >= 5
            ),
            within=5,
        )
        await asyncio.sleep(0.1)
        ssrc = c.bot_ssrc()
        sequences = [o.header.sequence for _, o in c.listener.opened(ssrc)]
        assert np.all(np.diff(sequences) % 65536 == 1), "packets were lost on loopback"
        frames = [f for _, f in c.audio_frames(ssrc)]

    samples = sum(round(seconds * RATE) for _, seconds in TRACKS)
    audio, tail = frames[:-5], frames[-5:]
    assert tail == [SILENCE_FRAME] * 5
    # Every frame is audio: no silence frame at a join, and exactly the sum of the tracks.
    assert SILENCE_FRAME not in audio
    assert len(audio) * 960 == samples, (len(audio), samples / 960)

    pcm = decode(audio)
    # The encoder's look-ahead delays the decoded audio by a constant: find it at the start.
    delay = int(np.argmax(np.abs(pcm) > 0.25 * _AMPLITUDE))
    assert delay < 960, delay
    body = pcm[delay : samples - 960]  # the end of the last track is still in the encoder
    assert _envelope_min(body) > 0.6 * _AMPLITUDE, "a silent or missing stretch"
    # Each tone lasts exactly its track's length, to within one 10 ms analysis window.
    joins = np.cumsum([round(s * RATE) for _, s in TRACKS])[:-1]
    for i, join in enumerate(joins):
        assert _tone_at(pcm, delay + join - 960) == i
        assert _tone_at(pcm, delay + join + 480) == i + 1
