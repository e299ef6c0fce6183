"""open_input: what an open container may hold in memory while a long track plays."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from audionode.media.container import INDEX_BYTES, MediaInput, open_input
from audionode.sources.api import Playable
from tests.media.mediafiles import tone

PACKETS = 12_000
"""Four minutes of 20 ms Opus packets: 288 KB of libav's default seek index per stream."""
CONTAINERS = 16


@pytest.fixture(scope="module")
def long_opus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four minutes of Ogg/Opus, made by muxing one encoded second over and over (cheap)."""
    path = tmp_path_factory.mktemp("container") / "long.opus"
    with av.open(str(path), "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48000, layout="stereo")
        pcm = tone([440.0], 1.0)
        second: list[av.Packet] = []
        for i in range(0, len(pcm), 960):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm[i : i + 960].T), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts = 48000, i
            second.extend(stream.encode(frame))
        second = second[:50]
        for n in range(PACKETS):
            p = second[n % len(second)]
            p.pts = p.dts = n * 960
            p.stream = stream
            out.mux(p)
    return path


def _rss() -> int:
    # malloc_trim first: what is left is held, not merely fragmented free space.
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _growth_while_demuxing(open_one: Callable[[], MediaInput | av.container.InputContainer]) -> int:
    """Bytes the process grew while CONTAINERS containers each demuxed the whole track."""
    opened = [open_one() for _ in range(CONTAINERS)]
    try:
        containers = [o.container if isinstance(o, MediaInput) else o for o in opened]
        iters = [c.demux(c.streams.audio[0]) for c in containers]
        for it in iters:  # past the header and the first pages
            for _ in range(100):
                next(it)
        before = _rss()
        for it in iters:
            for _ in it:
                pass
        return _rss() - before
    finally:
        for o in opened:
            o.close()


def test_the_seek_index_of_an_open_track_is_capped(long_opus: Path) -> None:
    """libav keeps a 24-byte seek-index entry per packet (1.2 KB/s per playing guild, up to
    1 MiB each); the node caps it at INDEX_BYTES per stream (docs/SECURITY.md)."""
    playable = Playable(url=str(long_opus))
    uncapped = _growth_while_demuxing(lambda: av.open(str(long_opus), "r"))
    capped = _growth_while_demuxing(lambda: open_input(playable, 5.0))
    per_packet = 24 * (PACKETS - 100) * CONTAINERS
    # The uncapped run shows what is at stake (else this test proves nothing) ...
    assert uncapped > per_packet // 2, (uncapped, per_packet)
    # ... and the capped one holds at most the cap (plus one index's realloc slack) each.
    assert capped < CONTAINERS * INDEX_BYTES * 1.5, (capped, uncapped)
    assert capped < uncapped // 2, (capped, uncapped)
