"""The plugin API types: validation and that they survive the wire (JSON, msgpack)."""

from __future__ import annotations

import msgspec
import pytest

from audionode.sources.api import BaseSource, LoadResult, Playable, Source, Track


def test_playable_needs_exactly_one_of_url_and_data() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Playable()
    with pytest.raises(ValueError, match="exactly one"):
        Playable(url="http://a/b", data=b"x")
    assert Playable.from_bytes(b"RIFF", format="wav").describe() == "<4 bytes>"
    assert Playable.from_url("http://a/b.mp3", headers={"A": "b"}).describe() == "http://a/b.mp3"


def test_types_round_trip_through_json_and_msgpack() -> None:
    track = Track(source="tone", id="tone:440", title="Tone", duration_ms=1000,
                  data={"page": "x", "n": [1, 2]})
    result = LoadResult.of_playlist("list", [track], selected=0)
    for codec in (msgspec.json, msgspec.msgpack):
        assert codec.decode(codec.encode(result), type=LoadResult) == result
        playable = Playable.from_bytes(b"\x00\x01", format="wav")
        assert codec.decode(codec.encode(playable), type=Playable) == playable


def test_load_result_constructors() -> None:
    track = Track(source="s", id="1", title="t")
    assert LoadResult.of_track(track).type == "track"
    assert LoadResult.of_search([]).type == "empty"
    assert LoadResult.of_search([track]).tracks == [track]
    assert LoadResult.of_error("nope").error == "nope"
    assert not track.is_seekable
    assert Track(source="s", id="1", title="t", duration_ms=5).is_seekable


async def test_base_source_defaults_satisfy_the_protocol() -> None:
    source = BaseSource()
    assert isinstance(source, Source)
    assert not source.handles("x") and await source.load("x") is None
    await source.close()
