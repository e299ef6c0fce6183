"""The native Ogg Opus demuxer (decision 0019) against PyAV: the same packets, positions and
sample counts, fed in chunks of any size; and TrackReader with it on and off handing out the
same packets, also where it hands over to PyAV (a bad page, a chained stream, a seek)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from audionode import native
from audionode.media.opus import packet_samples
from audionode.media.reader import Packet, TrackReader
from audionode.native import _packet
from audionode.sources.api import Playable
from tests.media.mediafiles import tone

MORE, NEED, END, ANOMALY = 0, 1, 2, 3


def write_opus(path: Path, seconds: float, *, channels: int = 2, frame_ms: str = "20") -> Path:
    layout = "stereo" if channels == 2 else "mono"
    pcm = tone([440, 1230], seconds)[:, :channels]
    with av.open(str(path), "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48000, layout=layout)
        stream.codec_context.options = {"frame_duration": frame_ms}
        for i in range(0, len(pcm), 960):
            chunk = np.ascontiguousarray(pcm[i : i + 960].T)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate, frame.pts = 48000, i
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ogg")
    return {
        "1s": write_opus(d / "1s.opus", 1.0),
        "odd-one-page": write_opus(d / "odd.opus", 0.517),
        "12s": write_opus(d / "12s.opus", 12.0),
        "mono": write_opus(d / "mono.opus", 3.3, channels=1),
        "60ms": write_opus(d / "60ms.opus", 3.3, frame_ms="60"),
    }


def pyav_packets(path: Path) -> list[tuple[bytes, int, int]]:
    with av.open(str(path)) as c:
        return [
            (bytes(p), max(0, p.pts or 0), packet_samples(bytes(p)))
            for p in c.demux(c.streams.audio[0])
            if p.size
        ]


def native_packets(
    data: bytes, chunk: int, *, skip_to: int = 0, end: int = -1, most: int = 50
) -> tuple[list[tuple[bytes, int, int]], int]:
    demux = _packet.OggOpus(Packet)
    out: list[Packet] = []
    offset = 0
    while True:
        got = demux.read(most, skip_to, end)
        assert len(got) <= most
        assert demux.samples == sum(p.samples for p in got)
        out += got
        state = demux.state
        if state == NEED:
            demux.feed(data[offset : offset + chunk])
            offset += chunk
        elif state in (END, ANOMALY):
            return [(p.data, p.pos, p.samples) for p in out], state


@pytest.mark.parametrize("name", ["1s", "odd-one-page", "12s", "mono", "60ms"])
@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 30])
def test_same_packets_and_positions_as_pyav(files: dict[str, Path], name: str, chunk: int) -> None:
    data = files[name].read_bytes()
    got, state = native_packets(data, chunk, most=7)
    assert state == END
    assert got == pyav_packets(files[name])


def test_skip_and_end_leave_out_what_the_reader_leaves_out(files: dict[str, Path]) -> None:
    every = pyav_packets(files["12s"])
    got, _ = native_packets(files["12s"].read_bytes(), 4096, skip_to=96000, end=240000)
    assert got == [p for p in every if p[1] + p[2] > 96000 and p[1] < 240000]


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda b: b[:30000] + bytes([b[30000] ^ 0xFF]) + b[30001:], "CRC"),
        (lambda b: b + b, "chained"),
        (lambda b: b[:20000] + b"junk" + b[20000:], "capture"),
    ],
)
def test_what_it_does_not_handle_it_hands_back(
    files: dict[str, Path], damage: object, why: str
) -> None:
    data = damage(files["12s"].read_bytes())  # type: ignore[operator]
    got, state = native_packets(data, 4096)
    assert state == ANOMALY, why
    assert got == pyav_packets(files["12s"])[: len(got)]


# -- TrackReader with the native demuxer and without (PyAV) ---------------------------------


def read_all(playable: Playable, *, seek_after: int | None = None, **kw: int) -> list[Packet]:
    woke = threading.Event()
    reader = TrackReader(playable, 1, wake=woke.set, ahead=0.5, **kw)  # type: ignore[arg-type]
    reader.start()
    out: list[Packet] = []
    deadline = time.monotonic() + 20
    try:
        while not reader.drained and time.monotonic() < deadline:
            packet = reader.take_packet()
            if packet is None:
                woke.wait(0.01)
                woke.clear()
                continue
            out.append(packet)
            if seek_after is not None and len(out) == 30:
                reader.seek(seek_after)
        assert reader.drained and reader.error is None, reader.error
    finally:
        reader.close(wait=2)
    return out


@pytest.fixture
def both_paths(python_path: None) -> Iterator[None]:
    yield


def on_and_off(playable: Playable, **kw: int) -> tuple[list[Packet], list[Packet]]:
    native.configure(True)
    with_native = read_all(playable, **kw)
    native.configure(False)
    without = read_all(playable, **kw)
    native.configure(True)
    return with_native, without


def test_reader_hands_out_the_same_packets_with_and_without_it(
    files: dict[str, Path], both_paths: None
) -> None:
    for name in ("12s", "odd-one-page", "60ms"):
        path = files[name]
        memory, memory_py = on_and_off(Playable.from_bytes(path.read_bytes()))
        assert memory == memory_py and len(memory) > 10, name
        local, local_py = on_and_off(Playable.from_url(str(path)))
        assert local == local_py == memory, name
    cut, cut_py = on_and_off(Playable.from_bytes(files["12s"].read_bytes()), end_ms=2500)
    assert cut == cut_py and cut[-1].pos < 2500 * 48 <= cut[-1].pos + 960
    sought, sought_py = on_and_off(Playable.from_bytes(files["12s"].read_bytes()), seek_after=7000)
    assert sought == sought_py and sought[30].pos <= 7000 * 48 < sought[30].pos + 960


def test_reader_goes_on_with_pyav_where_it_stops(files: dict[str, Path], both_paths: None) -> None:
    data = files["12s"].read_bytes()
    for damaged in (data[:30000] + bytes([data[30000] ^ 0xFF]) + data[30001:], data + data):
        got, reference = on_and_off(Playable.from_bytes(damaged))
        assert got == reference and len(got) > 300
