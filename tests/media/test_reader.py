"""TrackReader: how far it reads ahead, what it hands out, and how it stops."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from audionode.media.codec import Pcm, frame_pcm
from audionode.media.reader import TrackReader
from audionode.sources.api import Playable
from tests.media.mediafiles import tone


def wait_for(cond: threading.Event, check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:  # type: ignore[operator]
        cond.wait(0.01)
        cond.clear()
    assert check(), "timed out"  # type: ignore[operator]


@pytest.mark.parametrize(("name", "packets"), [("long440.opus", True), ("halves.wav", False)])
def test_reads_ahead_only_as_far_as_asked(media_dir: Path, name: str, packets: bool) -> None:
    woke = threading.Event()
    reader = TrackReader(
        Playable.from_bytes((media_dir / name).read_bytes()), 1, wake=woke.set, ahead=0.5
    )
    reader.start()
    try:
        wait_for(woke, lambda: reader.buffered() >= 24000)
        time.sleep(0.1)  # give it time to overshoot, if it would
        assert reader.info is not None and reader.info.packets is packets
        assert 24000 <= reader.buffered() < 24000 + 4096 and not reader.eof
        taken = 0
        # Half the window or less left is what makes a resting reader read again; it may
        # already have refilled (and rested) while the first 24000 samples were taken.
        while taken < 24000 or reader.buffered() > 12000:
            got = reader.take_packet() if packets else reader.take_pcm(960)
            if got is None:
                woke.wait(0.05)
                continue
            taken += got.samples if not isinstance(got, tuple) else len(got[1])
        wait_for(woke, lambda: reader.buffered() >= 24000)  # it refills
    finally:
        reader.close(wait=2)
    assert not reader.reading


def test_seek_in_packet_mode_drops_earlier_packets(media_dir: Path) -> None:
    woke = threading.Event()
    data = (media_dir / "long440.opus").read_bytes()
    reader = TrackReader(Playable.from_bytes(data), 1, wake=woke.set, start_ms=2000)
    reader.start()
    try:
        wait_for(woke, lambda: reader.peek_packet() is not None)
        first = reader.take_packet()
        assert first is not None and 1960 * 48 <= first.pos <= 2000 * 48
        reader.seek(500)
        wait_for(woke, lambda: reader.peek_packet() is not None)
        after = reader.take_packet()
        assert after is not None and 460 * 48 <= after.pos <= 500 * 48
    finally:
        reader.close(wait=2)


def test_a_stream_without_audio_is_an_error() -> None:
    import io

    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height = 32, 32
        frame = av.VideoFrame(32, 32, "yuv420p")
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    woke = threading.Event()
    reader = TrackReader(Playable.from_bytes(buf.getvalue(), format="matroska"), 1, wake=woke.set)
    reader.start()
    wait_for(woke, lambda: reader.error is not None)
    assert reader.error == f"<{len(buf.getvalue())} bytes> has no audio stream"
    reader.close(wait=2)


def _wav(rate: int, layout: str, samples: int = 4800) -> bytes:
    """A tiny PCM WAV made by PyAV at any rate and layout (libav writes what it is told)."""
    import io

    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout=layout)
        channels = av.AudioLayout(layout).nb_channels
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, samples * channels), np.int16), format="s16", layout=layout
        )
        frame.sample_rate, frame.pts = rate, 0
        for packet in stream.encode(frame):
            out.mux(packet)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("rate", "layout", "message"),
    [
        (1, "mono", "the media's sample rate (1 Hz) is outside 8000-384000 Hz (sources.media)"),
        (4000, "stereo", "the media's sample rate (4000 Hz) is outside 8000-384000 Hz"),
        (768000, "stereo", "the media's sample rate (768000 Hz) is outside 8000-384000 Hz"),
        (48000, "hexadecagonal", "the media has 16 channels, more than 8 (sources.media."),
    ],
)
def test_absurd_sample_rates_and_channel_counts_are_refused(
    rate: int, layout: str, message: str
) -> None:
    """The issue's attack: a tiny file whose rate makes the resampler produce gigabytes
    (9.6 kB at 1 Hz is 4800 s of audio: 1.8 GB of float stereo at 48 kHz)."""
    import psutil

    data = _wav(rate, layout)
    assert len(data) < 160_000
    before = psutil.Process().memory_info().rss
    woke = threading.Event()
    reader = TrackReader(Playable.from_bytes(data), 1, wake=woke.set)
    reader.start()
    try:
        wait_for(woke, lambda: reader.error is not None)
        assert reader.error is not None and reader.error.startswith(message)
        assert reader.info is None and reader.buffered() == 0
    finally:
        reader.close(wait=2)
    assert psutil.Process().memory_info().rss - before < 32 << 20


def test_the_bounds_are_the_playables_policy(media_dir: Path) -> None:
    """The node's configured bounds travel with the Playable (sources.media)."""
    import msgspec

    from audionode.netpolicy import InputPolicy

    strict = InputPolicy(min_sample_rate=48001)
    playable = msgspec.structs.replace(
        Playable.from_bytes((media_dir / "halves.wav").read_bytes()), policy=strict
    )
    woke = threading.Event()
    reader = TrackReader(playable, 1, wake=woke.set)
    reader.start()
    try:
        wait_for(woke, lambda: reader.error is not None)
        assert reader.error == (
            "the media's sample rate (48000 Hz) is outside 48001-384000 Hz (sources.media)"
        )
    finally:
        reader.close(wait=2)


def _read_blocks(reader: TrackReader, woke: threading.Event) -> list[tuple[int, str, Pcm]]:
    """Everything the reader hands out, as (position, how, samples): whole libav frames
    where it offers them (``take_frame``), else arrays (``take_pcm``)."""
    out: list[tuple[int, str, Pcm]] = []
    deadline = time.monotonic() + 10
    while not reader.drained and time.monotonic() < deadline:
        whole = reader.take_frame()
        if whole is not None:
            out.append((whole[0], "frame", frame_pcm(whole[1]).copy()))
            continue
        got = reader.take_pcm(48000)
        if got is None:
            woke.wait(0.05)
            woke.clear()
            continue
        out.append((got[0], "pcm", got[1].copy()))
    assert reader.drained and reader.error is None
    return out


@pytest.mark.parametrize(("start_ms", "end_ms"), [(0, None), (1010, None), (0, 1517), (333, 1517)])
def test_pcm_comes_as_whole_20ms_frames_and_every_sample_once(
    media_dir: Path, start_ms: int, end_ms: int | None
) -> None:
    """The resampler cuts the blocks (issue 17): every block but a cut first or last one is
    one whole 960-sample libav frame handed on as it is, and the blocks join up to exactly
    the samples asked for, each once."""
    source = np.concatenate([tone([440], 1.0), tone([880], 1.0)])  # halves.wav
    woke = threading.Event()
    reader = TrackReader(
        Playable.from_bytes((media_dir / "halves.wav").read_bytes()),
        1,
        wake=woke.set,
        start_ms=start_ms,
        end_ms=end_ms,
    )
    reader.start()
    try:
        wait_for(woke, lambda: reader.eof)  # all of it (within the read-ahead): no race below
        blocks = _read_blocks(reader, woke)
    finally:
        reader.close(wait=2)
    first, last = start_ms * 48, (end_ms or 2000) * 48
    assert blocks[0][0] == first
    for (pos, _, pcm), (nxt, _, _) in itertools.pairwise(blocks):
        assert nxt == pos + len(pcm)  # no gap, no overlap
    assert blocks[-1][0] + len(blocks[-1][2]) == last
    assert all(how == "frame" and len(pcm) == 960 for _, how, pcm in blocks[1:-1])
    assert np.abs(np.concatenate([b[2] for b in blocks]) - source[first:last]).max() < 1e-3


def test_pcm_blocks_are_read_only_views() -> None:
    """Blocks are views of libav's buffers, which libav may share: nobody may write them."""
    frame = av.AudioFrame(format="flt", layout="stereo", samples=960)
    pcm = frame_pcm(frame)
    assert pcm.shape == (960, 2) and not pcm.flags.writeable
    with pytest.raises(ValueError):
        pcm[0, 0] = 1.0
