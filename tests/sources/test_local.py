"""The local source: roots only, no escape through .. or symlinks."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from audionode.config import LocalSourceConfig
from audionode.errors import BadRequest, Forbidden, NotFound
from audionode.sources.local import LocalSource


@pytest.fixture
async def local(tree: Path) -> AsyncIterator[LocalSource]:
    source = LocalSource(LocalSourceConfig(enabled=True, roots=[str(tree / "music")]))
    yield source
    await source.close()


@pytest.fixture
def tree(tmp_path: Path, files: dict[str, bytes]) -> Path:
    music = tmp_path / "music"
    (music / "album").mkdir(parents=True)
    (music / "album" / "song.wav").write_bytes(files["b660.wav"])
    (tmp_path / "secret.wav").write_bytes(files["b660.wav"])
    os.symlink(tmp_path / "secret.wav", music / "escape.wav")
    os.symlink(music / "album" / "song.wav", music / "inside.wav")
    return tmp_path


async def test_files_under_a_root_play(tree: Path, local: LocalSource) -> None:
    for query in ("local:album/song.wav", f"file://{tree}/music/album/song.wav",
                  str(tree / "music" / "album" / "song.wav"), "local:inside.wav"):
        assert local.handles(query)
        result = await local.load(query)
        assert result is not None and result.type == "track", query
        track = result.tracks[0]
        assert track.title == "song" and track.duration_ms == 500
        playable = await local.open(track)
        assert playable.url == str((tree / "music" / "album" / "song.wav").resolve())


@pytest.mark.parametrize(
    "query", ["local:../secret.wav", "local:album/../../secret.wav", "local:escape.wav"]
)
async def test_no_escape_from_the_roots(tree: Path, local: LocalSource, query: str) -> None:
    with pytest.raises(Forbidden, match="outside the folders"):
        await local.load(query)


async def test_absolute_paths_outside_are_refused(tree: Path, local: LocalSource) -> None:
    with pytest.raises(Forbidden):
        await local.load(str(tree / "secret.wav"))
    with pytest.raises(Forbidden):
        await local.load("/etc/passwd")


async def test_missing_and_malformed(tree: Path, local: LocalSource) -> None:
    with pytest.raises(NotFound, match="no such file"):
        await local.load("local:album/nothing.wav")
    with pytest.raises(BadRequest, match="not a file"):
        await local.load("local:album")
    with pytest.raises(BadRequest):
        await local.load("local:bad\x00name")
    with pytest.raises(BadRequest, match="another host"):
        await local.load("file://evil.example/etc/passwd")


async def test_a_corrupt_file_is_a_clear_error(tree: Path, local: LocalSource) -> None:
    from audionode.errors import SourceError

    (tree / "music" / "broken.mp3").write_bytes(b"\x00garbage" * 200)
    with pytest.raises(SourceError, match="cannot read the media: Invalid data"):
        await local.load("local:broken.mp3")


async def test_no_roots_means_nothing_plays(tree: Path) -> None:
    source = LocalSource(LocalSourceConfig(enabled=True, roots=[]))
    with pytest.raises(Forbidden, match="no local folders"):
        await source.load(str(tree / "music" / "album" / "song.wav"))
