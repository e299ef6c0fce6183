"""The example bot (examples/bot.py) builds: its commands are registered, its pool is set up in
``setup_hook``, its helpers parse what users type."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from audionode.client import Node

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bot.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_bot", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["example_bot"] = module
    spec.loader.exec_module(module)
    return module


async def test_the_example_bot_builds_with_its_commands() -> None:
    example = load()
    bot = example.MusicBot([Node(url="http://127.0.0.1:1", password="x")])
    async with bot:
        await bot.add_cog(example.Music(bot))
        names = {c.name for c in bot.commands} - {"help"}
        assert names == {"join", "play", "skip", "pause", "resume", "stop", "seek", "volume",
                         "nightcore", "normal", "now", "queue", "leave"}  # fmt: skip
        assert bot.intents.message_content and bot.command_prefix == "!"
    assert example.parse_time("1:30") == 90.0 and example.parse_time("1:02:03") == 3723.0
    assert example.clock(75.9) == "1:15" and example.clock(None) == "live"
