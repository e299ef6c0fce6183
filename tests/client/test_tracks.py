"""Tracks read from the node's track objects, the playhead's extrapolation, and where a moved
player's current track starts again."""

from __future__ import annotations

import pytest

from audionode.client import ProtocolError, Snapshot, Track
from audionode.client.tracks import Playhead, current_from_wire

SOURCE = {"_type": "AudioSource", "id": "abc", "title": "Song", "webpage_url": "https://x/abc",
          "uploader": "Band", "duration": 180.0, "is_live": False, "thumbnail": None,
          "source": "ytdlp", "encoded": "token-1", "tag": "t1", "context": {"by": "u1"},
          "start_position": 0.0, "seekable": True, "position": 12.0, "as_of": 1000.0}  # fmt: skip


def test_a_track_object_is_read() -> None:
    t = Track.from_wire(SOURCE, "n1")
    assert (t.uri, t.author, t.duration, t.tag, t.context) == (
        "https://x/abc",
        "Band",
        180.0,
        "t1",
        {"by": "u1"},
    )
    assert t.seekable and t.node == "n1" and t.encoded == "token-1"
    # the same entry described again carries a fresh signature: still the same track
    assert t == Track.from_wire({**SOURCE, "encoded": "token-2"}, "n2")
    assert t != Track.from_wire({**SOURCE, "tag": "t2"})
    assert Track.from_wire({"id": "tone:440", "title": "Tone"}).uri == "tone:440"


def test_a_malformed_track_object_names_the_field() -> None:
    with pytest.raises(
        ProtocolError, match=r"Expected `float \| null`, got `str` - at `\$.duration`"
    ):
        Track.from_wire({**SOURCE, "duration": "long"})
    with pytest.raises(ProtocolError, match="`position` and `as_of` are required"):
        current_from_wire({**SOURCE, "position": None}, "n1", False)


def test_the_playhead_moves_on_in_real_time_unless_paused() -> None:
    track, head = current_from_wire(SOURCE, "n1", False)
    assert head.at(1002.5, track.duration) == 14.5
    assert head.at(999.0) == 12.0  # never before the report
    assert head.at(1500.0, track.duration) == 180.0
    assert Playhead(12.0, 1000.0, paused=True).at(1010.0) == 12.0


def _snap(current: Track | None, position: float) -> Snapshot:
    return Snapshot(current=current, position=position, paused=False, queue=())


def test_where_a_moved_track_starts() -> None:
    song = Track.from_wire(SOURCE)
    assert _snap(song, 42.12345).start_at() == 42.123
    assert _snap(song, 179.9).start_at() is None  # it had ended
    assert _snap(None, 0.0).start_at() is None
    live = Track.from_wire({**SOURCE, "is_live": True, "duration": None})
    assert _snap(live, 99.0).start_at() == 0.0
