"""probe(): what sources learn about media before queueing it."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from audionode.errors import SourceError
from audionode.media.probe import probe
from audionode.sources.api import Playable
from tests.media.mediafiles import FORMATS, tone


def test_tags_and_duration(tmp_path: Path) -> None:
    path = tmp_path / "tagged.mp3"
    with av.open(str(path), "w", format="mp3") as out:
        out.metadata["title"] = "Sine Song"
        out.metadata["artist"] = "The Oscillators"
        stream = out.add_stream("libmp3lame", rate=48000, layout="stereo")
        pcm = tone([440], 0.5)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm.T), format="fltp",
                                           layout="stereo")
        frame.sample_rate = 48000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    info = probe(Playable.from_url(str(path)))
    assert (info.title, info.artist, info.codec) == ("Sine Song", "The Oscillators", "mp3float")
    assert info.duration_ms is not None and abs(info.duration_ms - 500) < 60
    assert not info.is_live


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_every_format_has_a_duration(media_dir: Path, kind: str) -> None:
    info = probe(Playable.from_bytes((media_dir / f"a440.{kind}").read_bytes()))
    assert info.duration_ms is not None and abs(info.duration_ms - 1000) < 60


def test_local_paths_cannot_use_other_protocols(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot read the media"):
        probe(Playable.from_url("concat:/etc/hostname|/etc/hostname"))


def test_the_probe_applies_the_engines_bounds_and_whitelist(tmp_path: Path) -> None:
    """What the probe accepts the engine can play: same containers, same rate bounds."""
    from audionode.errors import Forbidden
    from audionode.media.probe import probe_plain
    from tests.media.test_reader import _wav

    with pytest.raises(SourceError, match=r"^the media's sample rate \(4000 Hz\) is outside"):
        probe(Playable.from_bytes(_wav(4000, "stereo")))
    playlist = (b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nhttp://169.254.169.254/x\n"
                b"#EXT-X-ENDLIST\n")
    with pytest.raises(SourceError, match=r"container \(hls\) is not one the node plays"):
        probe(Playable.from_bytes(playlist, format="hls"))  # named: libav would try it
    with pytest.raises(SourceError, match="Invalid data"):
        probe(Playable.from_bytes(playlist))  # unnamed: libav takes HLS only from .m3u8
    with pytest.raises(Forbidden, match=r"^refusing to fetch from 169\.254\.169\.254"):
        probe(Playable.from_url("http://169.254.169.254/latest/meta-data"))
    assert probe_plain(Playable.from_bytes(_wav(48000, "stereo")))["duration_ms"] == 100
