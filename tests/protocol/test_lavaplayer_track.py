"""The Lavaplayer track codec against lavalink.py's own decoder and encoder."""

from __future__ import annotations

import base64
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lavalink.utils import decode_track, encode_track

from audionode.protocol import lavaplayer_track as lp

# Lavalink's documentation example: a version-2 track from its youtube source.
DOCS_EXAMPLE = (
    "QAAAjQIAJVJpY2sgQXN0bGV5IC0gTmV2ZXIgR29ubmEgR2l2ZSBZb3UgVXAADlJpY2tBc3RsZXlWRVZPAAAAAAADPCAAC2"
    "RRdzR3OVdnWGNRAAEAK2h0dHBzOi8vd3d3LnlvdXR1YmUuY29tL3dhdGNoP3Y9ZFF3NHc5V2dYY1EAB3lvdXR1YmUAAA"
    "AAAAAAAA=="
)

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
# lavalink.py reads title and author as Java's modified UTF-8 and the other texts as plain
# UTF-8, which differ for U+0000 and for characters beyond U+FFFF: those go in title/author
# only (a Lavalink node's tracks have the same limit with lavalink.py; docs/LAVALINK.md).
plain = st.text(st.characters(min_codepoint=1, max_codepoint=0xFFFF, exclude_categories=("Cs",)))
tracks = st.builds(
    lp.LavaplayerTrack,
    title=text,
    author=text,
    length=st.one_of(st.integers(0, 2**40), st.just(lp.UNKNOWN_LENGTH)),
    identifier=plain,
    is_stream=st.booleans(),
    uri=st.none() | plain.filter(bool),
    artwork_url=st.none() | plain.filter(bool),
    isrc=st.none() | plain.filter(bool),
    source_name=st.sampled_from(["tone", "http", "local", "ytdlp"]),
    position=st.integers(0, 2**40),
)


def _details(t: lp.LavaplayerTrack) -> lp.LavaplayerTrack:
    hint = lp.probe_details() if t.source_name in lp.PROBE_SOURCES else b""
    return lp.LavaplayerTrack(**{**_fields(t), "details": hint})


def _fields(t: lp.LavaplayerTrack) -> dict[str, object]:
    return {f: getattr(t, f) for f in t.__struct_fields__}


@settings(max_examples=200, deadline=None)
@given(tracks)
def test_lavalink_py_decodes_what_we_encode(track: lp.LavaplayerTrack) -> None:
    track = _details(track)
    theirs = decode_track(lp.encode(track))
    info = theirs.raw["info"]
    assert (info["title"], info["author"], info["identifier"]) == (
        track.title,
        track.author,
        track.identifier,
    )
    assert info["length"] == track.length and info["isStream"] == track.is_stream
    assert info["uri"] == track.uri and info["sourceName"] == track.source_name
    assert (info["artworkUrl"], info["isrc"]) == (track.artwork_url, track.isrc)
    assert theirs.extra["position"] == track.position
    assert theirs.extra["encoder_version"] == 3


@settings(max_examples=200, deadline=None)
@given(tracks)
def test_we_decode_what_lavalink_py_encodes(track: lp.LavaplayerTrack) -> None:
    fields = {
        "title": track.title,
        "author": track.author,
        "length": track.length,
        "identifier": track.identifier,
        "isStream": track.is_stream,
        "uri": track.uri,
        "sourceName": track.source_name,
        "position": track.position,
        "artworkUrl": track.artwork_url,
        "isrc": track.isrc,
    }
    version, encoded = encode_track(fields)
    ours = lp.decode(encoded)
    assert version == ours.version == 3
    assert ours == lp.LavaplayerTrack(**{**_fields(track), "details": b""})
    if all(_plain(x) for x in (track.title, track.author)):  # lavalink.py writes plain UTF-8
        assert lp.encode(ours) == encoded, "byte for byte"


def _plain(text: str) -> bool:
    return "\x00" not in text and all(ord(ch) <= 0xFFFF for ch in text)


def test_java_modified_utf8_is_written_and_read() -> None:
    track = lp.LavaplayerTrack(
        title="a\x00b\U0001f600", author="", length=1, identifier="i", is_stream=False,
        source_name="tone",
    )  # fmt: skip
    raw = base64.b64decode(lp.encode(track))
    # NUL as C0 80; U+1F600 as its two surrogates, three bytes each (Java's writeUTF)
    assert b"\x00\x0aa\xc0\x80b\xed\xa0\xbd\xed\xb8\x80" in raw
    assert lp.decode(lp.encode(track)).title == "a\x00b\U0001f600"
    assert decode_track(lp.encode(track)).title == "a\x00b\U0001f600"


def test_the_lavalink_docs_example_and_older_versions() -> None:
    t = lp.decode(DOCS_EXAMPLE)
    assert t.version == 2 and t.source_name == "youtube" and t.length == 212000
    assert t.title == "Rick Astley - Never Gonna Give You Up" and t.identifier == "dQw4w9WgXcQ"
    assert t.uri == "https://www.youtube.com/watch?v=dQw4w9WgXcQ" and t.artwork_url is None
    # the same track unversioned (version 1: no uri) and re-encoded as version 3
    body = base64.b64decode(DOCS_EXAMPLE)[5:]
    v1 = body.replace(b"\x01\x00+https://www.youtube.com/watch?v=dQw4w9WgXcQ", b"")
    one = lp.decode(base64.b64encode(struct.pack(">I", len(v1)) + v1).decode())
    assert one.version == 1 and one.uri is None and one.source_name == "youtube"
    again = lp.decode(lp.encode(t))
    assert again.version == 3 and again.title == t.title and again.uri == t.uri


def test_source_details_are_kept_opaque() -> None:
    track = lp.LavaplayerTrack(
        title="t", author="a", length=5, identifier="u", is_stream=False, uri="http://x/a.mp3",
        source_name="http", details=lp.probe_details("mp3"), position=9,
    )  # fmt: skip
    assert decode_track(lp.encode(track)).extra["source_specific"] == {"probe_info": "mp3"}
    assert lp.decode(lp.encode(track)) == track


def test_text_longer_than_a_java_utf_is_clipped_at_a_character() -> None:
    track = lp.LavaplayerTrack(
        title="é" * 40000, author="", length=1, identifier="i", is_stream=False, source_name="t"
    )
    title = lp.decode(lp.encode(track)).title
    assert title == "é" * (0xFFFF // 2)


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("not base64!", "not base64"),
        (base64.b64encode(b"\x40\x00\x00\x10\x03").decode(), "announces 16 bytes, 1 follow"),
        (base64.b64encode(b"\x40\x00\x00\x01\x07").decode(), "version 7"),
        (base64.b64encode(b"\x40\x00\x00\x04\x03\x00\x09a").decode(), "truncated in `title`"),
        (DOCS_EXAMPLE[:-16] + "AAAAAA==", "announces 141 bytes, 135 follow"),
        (base64.b64encode(b"\x40\x00\x00\x04\x03\x00\x00\x00").decode(), "in `author`"),
        (base64.b64encode(b"\x40\x00\x00\x04\x03\x00\x01\xff").decode(), "`title` is not UTF-8"),
    ],
)
def test_malformed_tracks_are_refused_naming_the_field(given: str, why: str) -> None:
    with pytest.raises(lp.TrackDecodeError) as err:
        lp.decode(given, "track.encoded")
    assert err.value.message.startswith("field `track.encoded`: ") and why in err.value.message
    assert err.value.status == 400
