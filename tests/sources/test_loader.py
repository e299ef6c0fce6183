"""Finding sources (built-ins, plugins folder, entry points) and routing queries to them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from audionode.config import (
    HttpSourceConfig,
    LocalSourceConfig,
    MediaLimitsConfig,
    SourcesConfig,
    YtdlpSourceConfig,
)
from audionode.errors import BadRequest, NotFound, SourceError
from audionode.netpolicy import InputPolicy
from audionode.sources.api import BaseSource, LoadResult, Playable, Track
from audionode.sources.loader import SourceManager, load_sources
from tests.sources.conftest import MediaServer

REPO = Path(__file__).resolve().parents[2]

GOOD_PLUGIN = '''
from audionode.sources.api import BaseSource, LoadResult, Playable, Track

class Echo(BaseSource):
    name = "echo"
    def __init__(self, greeting):
        self.greeting = greeting
    def handles(self, query):
        return query.startswith("echo:")
    async def load(self, query):
        return LoadResult.of_track(Track(source="echo", id=query, title=self.greeting))
    async def open(self, track):
        return Playable.from_bytes(b"RIFF")

def sources(context):
    return Echo(context.options.get("greeting", "hi"))
'''


def write_plugins(root: Path) -> Path:
    d = root / "plugs"
    d.mkdir()
    (d / "echo.py").write_text(GOOD_PLUGIN)
    (d / "broken.py").write_text("import no_such_module_anywhere\n")
    (d / "nofactory.py").write_text("x = 1\n")
    (d / "wrongtype.py").write_text("def sources(context):\n    return [42]\n")
    (d / "clash.py").write_text("from audionode.sources.api import BaseSource\n"
                                "class H(BaseSource):\n    name = 'http'\n"
                                "def sources(context):\n    return [H()]\n")
    return d


def test_plugins_load_and_failures_are_reported_not_fatal(tmp_path: Path) -> None:
    d = write_plugins(tmp_path)
    config = SourcesConfig(
        plugins=["echo", "broken", "nofactory", "wrongtype", "clash", "missing", "../etc"],
        plugins_dir=str(d),
        plugin_options={"echo": {"greeting": "hello"}},
    )
    sources, failures = load_sources(config)
    assert [s.name for s in sources] == ["echo", "http", "ytdlp"]
    why = {f.plugin: f.message for f in failures}
    assert set(why) == {"broken", "nofactory", "wrongtype", "clash", "missing", "../etc"}
    assert "No module named 'no_such_module_anywhere'" in why["broken"]
    assert "has no callable `sources(context)`" in why["nofactory"]
    assert "42" in why["wrongtype"] and "not a Source" in why["wrongtype"]
    assert "'http' is already taken" in why["clash"]
    assert "no missing.py" in why["missing"]
    assert "invalid plugin name" in why["../etc"]


def test_relative_plugins_dir_and_the_shipped_tone_plugin() -> None:
    config = SourcesConfig(plugins=["tone"], local=LocalSourceConfig(enabled=True))
    sources, failures = load_sources(config, base_dir=REPO)
    assert not failures
    assert [s.name for s in sources] == ["local", "tone", "http", "ytdlp"]


def test_entry_points_are_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real (if tiny) installed distribution on sys.path declaring two entry points."""
    (tmp_path / "ep_echo.py").write_text(GOOD_PLUGIN)
    dist = tmp_path / "ep_echo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-echo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[audionode.sources]\necho = ep_echo:sources\nbad = ep_echo:nothing_here\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = SourcesConfig(
        http=HttpSourceConfig(enabled=False), ytdlp=YtdlpSourceConfig(enabled=False)
    )
    sources, failures = load_sources(config)
    assert [s.name for s in sources] == ["echo"]
    assert [f.plugin for f in failures] == ["bad"] and "nothing_here" in failures[0].message
    sys.modules.pop("ep_echo", None)


class Fixed(BaseSource):
    def __init__(self, name: str, prefix: str, result: LoadResult | Exception | None) -> None:
        self.name = name
        self.prefix = prefix
        self.result = result
        self.asked: list[str] = []

    def handles(self, query: str) -> bool:
        return query.startswith(self.prefix)

    async def load(self, query: str) -> LoadResult | None:
        self.asked.append(query)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    async def open(self, track: Track) -> Playable:
        raise RuntimeError("disk on fire")


async def test_routing_fallthrough_errors_and_default_search() -> None:
    found = LoadResult.of_track(Track(source="b", id="1", title="t"))
    a = Fixed("a", "x:", None)  # declines
    b = Fixed("b", "x:", found)
    s = Fixed("s", "ytsearch:", LoadResult.of_empty())
    boom = Fixed("boom", "boom:", RuntimeError("kaput"))
    manager = SourceManager([a, b, s, boom], default_search="ytsearch")
    assert await manager.load("x:thing") == found
    assert a.asked == ["x:thing"] and b.asked == ["x:thing"]
    assert (await manager.load("never gonna give")).type == "empty"
    assert s.asked == ["ytsearch:never gonna give"]
    unknown = await manager.load("nosuch:thing")
    assert unknown.type == "error" and "no source can load 'nosuch:thing'" in (unknown.error or "")
    crashed = await manager.load("boom:1")
    assert crashed.error == "boom failed: kaput"
    with pytest.raises(BadRequest, match="empty"):
        await manager.load("   ")
    with pytest.raises(SourceError, match="b could not open the track: disk on fire"):
        await manager.open(found.tracks[0])
    with pytest.raises(NotFound, match="no source named 'zzz'"):
        await manager.open(Track(source="zzz", id="1", title="t"))


async def test_blocked_and_unreachable_urls_through_the_manager(server: MediaServer) -> None:
    manager = SourceManager.from_config(SourcesConfig(ytdlp=YtdlpSourceConfig(enabled=False)))
    blocked = await manager.load(server.url("/media/a440.mp3"))
    assert blocked.type == "error"
    assert (blocked.error or "").startswith("refusing to fetch from 127.0.0.1: not a public")
    opened = SourceManager.from_config(
        SourcesConfig(
            http=HttpSourceConfig(allow_private=True), ytdlp=YtdlpSourceConfig(enabled=False)
        )
    )
    gone = await opened.load("http://127.0.0.1:9/a.mp3")
    assert gone.type == "error" and gone.error == "could not connect to 127.0.0.1"
    ok = await opened.load(server.url("/media/a440.mp3"))
    assert ok.type == "track"
    await manager.close()
    await opened.close()


class Made(BaseSource):
    """A plugin-like source whose Playables claim whatever policy they like."""

    name = "made"

    def handles(self, query: str) -> bool:
        return query.startswith("made:")

    async def open(self, track: Track) -> Playable:
        wide = InputPolicy(allow_private=True, max_channels=64)
        return Playable.from_bytes(b"RIFF", policy=wide)


async def test_every_playable_leaves_with_the_nodes_policy() -> None:
    config = SourcesConfig(
        http=HttpSourceConfig(allow_networks=["10.0.0.0/8"]),
        media=MediaLimitsConfig(max_channels=4),
        ytdlp=YtdlpSourceConfig(enabled=False),
    )
    manager = SourceManager.from_config(config)
    try:
        manager.sources.append(Made())
        playable = await manager.open(Track(source="made", id="1", title="t"))
        assert playable.policy == InputPolicy(allow_networks=("10.0.0.0/8",), max_channels=4)
    finally:
        await manager.close()


def test_the_control_process_never_loads_av() -> None:
    """The layering rule: sources/ (and the filter validation) run without PyAV; probing
    happens in the probe processes."""
    code = (
        "import sys\n"
        "import audionode.sources.loader, audionode.sources.http, audionode.sources.local\n"
        "import audionode.sources.ytdlp, audionode.sources.guardproxy\n"
        "import audionode.protocol.filters\n"
        "print(sorted(m for m in sys.modules if m == 'av' or m.startswith('audionode.media')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
