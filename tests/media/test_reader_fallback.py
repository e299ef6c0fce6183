"""Where the C extension cannot be built, the track reader keeps its packets in the
pure-Python ``_ReaderFields`` (decision 0022): a node without a compiler still plays. The
extension's import is blocked in a child interpreter, which then reads a real Ogg Opus file
through the passthrough lane and through ``take_packet`` and must hand out the file's packets,
in order, each exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.media.mediafiles import demuxed_packets, tone, write_media

CHILD = r"""
import json, sys, time

class _Block:
    def find_spec(self, name, path, target=None):
        if name == "audionode.native._packet":
            raise ImportError("blocked: the no-extension path")
        return None

sys.meta_path.insert(0, _Block())

from audionode import native
from audionode.media.lane import Lane, _LaneFields
from audionode.media.reader import TrackReader, _ReaderFields
from audionode.sources.api import Playable

assert not native.built()
assert issubclass(TrackReader, _ReaderFields) and issubclass(Lane, _LaneFields)
data = open(sys.argv[1], "rb").read()
reader = TrackReader(Playable.from_bytes(data), 1, wake=lambda: None, ahead=1.0)
reader.start()
turns = []
lane = Lane(reader, lambda: turns.append(1), 0, margin=0)
got = []
deadline = time.monotonic() + 20


def poll(take, data_of, more, what):
    # take with take() while more(), keeping each item's bytes (hex)
    while more():
        assert time.monotonic() < deadline, what + " starved"
        item = take()
        if item is None:
            time.sleep(0.005)
        else:
            got.append(data_of(item).hex())


# the first 100 packets by the lane, the rest by take_packet
poll(lane.pop, lambda f: f.opus, lambda: len(got) < 100, "the lane")
lane.close()
poll(reader.take_packet, lambda p: p.data, lambda: not reader.drained, "the reader")
reader.close()
print(json.dumps(got))
"""


def test_without_the_extension_the_reader_hands_out_every_packet_once(tmp_path: Path) -> None:
    path = tmp_path / "a.opus"
    write_media(path, tone([440, 880], 4.0), "opus")  # 200 packets: the window refills
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = [bytes.fromhex(h) for h in json.loads(out.stdout)]
    assert got == demuxed_packets(path)
