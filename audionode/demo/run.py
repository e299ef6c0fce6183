"""``audionode demo``: the whole chain on loopback, in one process, checking itself.

1. the built-in voice server (random LVSP token, ephemeral ports) and a node (in-process engine,
   the ``tone`` plugin, a random password, an ephemeral port);
2. "Discord" (the package's LVSP client) hands out voice states for a listener and a bot;
3. the :class:`~audionode.demo.listener.Listener` joins the channel;
4. the :class:`~audionode.demo.bot.Bot` identifies on the node, passes its voice credentials on,
   sets a crossfade and queues three tones over REST;
5. once the last track stopped, what the listener decoded is analysed and compared with the
   queue (:func:`~audionode.demo.analysis.evaluate`).

:func:`run_demo` is the coroutine (tests call it); :func:`main` runs it for the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TextIO

import aiohttp

from audionode.config import Config, VoiceServerConfig, load_config
from audionode.demo import report
from audionode.demo.analysis import Check, Window, evaluate, timeline
from audionode.demo.bot import Bot, BotEvent, DemoError
from audionode.demo.listener import Listener, Stream
from audionode.errors import AudionodeError
from audionode.server import start_node
from audionode.voiceserver.app import VoiceServer
from audionode.voiceserver.lvsp_client import LvspClient

GUILD: Final = 100
CHANNEL: Final = 200
BOT: Final = 4242
LISTENER: Final = 5353
DEADLINE_S: Final = 25.0
"""The whole demo, start-up to report, or it fails."""


@dataclass(frozen=True)
class Plan:
    """What the bot queues: one ``tone:`` track per frequency, with a crossfade between them."""

    tones: tuple[float, ...] = (440.0, 554.0, 659.0)
    seconds: float = 2.0
    crossfade: float = 0.5

    @property
    def queries(self) -> list[str]:
        return [f"tone:{f:g}?seconds={self.seconds:g}" for f in self.tones]

    @property
    def expected_seconds(self) -> float:
        """Queued length minus the overlaps: each crossfade plays two tracks at once."""
        return len(self.tones) * self.seconds - (len(self.tones) - 1) * self.crossfade

    def describe(self) -> str:
        n, s, x = len(self.tones), self.seconds, self.crossfade
        return f"{n} x {s:g} s - {n - 1} x {x:g} s crossfade = {self.expected_seconds:.2f} s"


@dataclass
class DemoResult:
    """What the demo measured. ``ok`` when it ran to the end and every check passed."""

    checks: list[Check] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    decoded_seconds: float = 0.0
    packets: int = 0
    errors: int = 0
    """Packets from the bot that could not be decrypted or decoded."""
    events: list[BotEvent] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


def find_plugins_dir() -> Path:
    """The folder holding ``tone.py``: ``./plugins``, else the one beside the package (a source
    checkout or an editable install). :class:`DemoError` when neither has it."""
    beside = Path(__file__).resolve().parents[2] / "plugins"
    for folder in (Path.cwd() / "plugins", beside):
        if (folder / "tone.py").is_file():
            return folder
    raise DemoError(f"the tone plugin (plugins/tone.py) is in neither ./plugins nor {beside}")


async def run_demo(
    plan: Plan = Plan(), *, expect: Sequence[float] | None = None, out: TextIO = sys.stdout
) -> DemoResult:
    """Run the demo and print its report to ``out``. ``expect`` replaces the tones the check
    expects (to see the self-check fail); by default they are ``plan.tones``. Never raises for
    a failing chain: the failure is in the result (``error``, ``checks``) and the report."""
    t0 = time.monotonic()
    result = DemoResult()

    def say(*lines: str) -> None:
        for line in lines:
            print(line, file=out, flush=True)

    say(
        f"audionode demo: a bot plays {_count(len(plan.tones), 'tone')} through the node into "
        "the built-in voice server;",
        "a second member of the voice channel listens, decrypts and decodes.",
        "",
    )
    try:
        async with asyncio.timeout(DEADLINE_S):
            await _play(plan, t0, result, say)
    except (AudionodeError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        result.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if result.error is None:
        wanted = list(expect) if expect is not None else list(plan.tones)
        result.checks = evaluate(
            result.windows, result.decoded_seconds, wanted, plan.expected_seconds, result.errors
        )
        result.checks.append(_events_check(result.events, len(plan.tones)))
        say(*report.checks(result.checks), "")
    if result.ok:
        verdict = "PASS  the listener heard what was queued"
    else:
        verdict = f"FAIL  {result.error or 'see the checks above'}"
    say(f"{verdict} ({time.monotonic() - t0:.1f} s)")
    return result


async def _play(plan: Plan, t0: float, result: DemoResult, say: Callable[..., None]) -> None:
    async with contextlib.AsyncExitStack() as stack:
        server, node_url, password = await _start(stack)
        say(
            f"  voice server  ws://127.0.0.1:{server.port}  (UDP {server.udp_port}, "
            "random LVSP token)",
            f"  node          {node_url}  (engine in-process, random password)",
            f"  channel       guild {GUILD}, channel {CHANNEL}: bot {BOT}, listener {LISTENER}",
            f"  queue         {'  '.join(plan.queries)}  (crossfade {plan.crossfade:g} s)",
            "",
        )
        http = await stack.enter_async_context(aiohttp.ClientSession())
        listener, bot = await _join(stack, http, server, node_url, password)
        try:
            await _queue(bot, plan)
            await _trailing_silence(listener)
        finally:  # what arrived is worth seeing, above all when something did not
            stream = next((s for s in listener.streams.values() if s.user_id == BOT), None)
            _collect(result, bot.events, stream)
            say(*report.events(bot.events, t0), "")
            if stream is not None:
                say(
                    *report.listener(
                        LISTENER, listener.mode, listener.dave, stream, plan.describe()
                    ),
                    "",
                )
                say(*report.heard(result.windows), "")
        if stream is None:
            raise DemoError("the listener received nothing from the bot")


async def _start(stack: contextlib.AsyncExitStack) -> tuple[VoiceServer, str, str]:
    """The voice server and the node on ephemeral loopback ports; stopped when ``stack`` ends.
    Returns (voice server, node URL, node password)."""
    token = secrets.token_hex(16)
    server = VoiceServer(VoiceServerConfig(host="127.0.0.1", port=0, udp_port=0, lvsp_token=token))
    await server.start()
    stack.push_async_callback(server.stop)
    password = secrets.token_urlsafe(16)
    node = await stack.enter_async_context(start_node(_node_config(password)))
    return server, node.url, password


def _node_config(password: str) -> Config:
    return load_config(
        None,
        env={},
        overrides={
            "password": password,
            "host": "127.0.0.1",
            "port": 0,
            "log_level": "WARNING",
            "engine": {"workers": 0},
            "sources": {
                "plugins": ["tone"],
                "plugins_dir": str(find_plugins_dir()),
                "http": {"enabled": False},
                "ytdlp": {"enabled": False},
                "default_search": "",
            },
        },
    )


async def _join(
    stack: contextlib.AsyncExitStack,
    http: aiohttp.ClientSession,
    server: VoiceServer,
    node_url: str,
    password: str,
) -> tuple[Listener, Bot]:
    """Voice states from "Discord"; the listener joins, then the bot (through the node)."""
    lvsp = await LvspClient.open(http, server.lvsp_url, server.cfg.lvsp_token)
    stack.push_async_callback(lvsp.close)
    grant = await lvsp.grant(LISTENER, CHANNEL, GUILD)
    # A loopback voice server speaks plain ws://, so the grant's endpoint says ws:// (§1.2).
    endpoint = grant.endpoint
    listener = Listener(endpoint, GUILD, LISTENER, CHANNEL, grant.session_id, grant.token)
    stack.push_async_callback(listener.close)
    await listener.connect(http)
    bot = Bot(http, node_url, password, BOT)
    stack.push_async_callback(bot.close)
    await bot.connect()
    await bot.join(GUILD, CHANNEL, await lvsp.grant(BOT, CHANNEL, GUILD), endpoint)
    return listener, bot


async def _queue(bot: Bot, plan: Plan) -> None:
    """Crossfade on, the tones queued, then wait until the last one has stopped."""
    await bot.rest("POST", "/options", {"crossfade": plan.crossfade})
    tags = []
    for query in plan.queries:
        tags.append((await bot.rest("POST", "/loadSource", {"query": query}))["source"]["tag"])
    last = tags[-1]
    await bot.wait(
        "SOURCE_STOP", lambda d: d["source"]["tag"] == last, within=plan.expected_seconds + 5
    )


async def _trailing_silence(listener: Listener) -> None:
    """Wait up to 1 s for the five silence frames that end a transmission (§1.11)."""
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if any(s.user_id == BOT and s.silence_frames >= 5 for s in listener.streams.values()):
            return
        await asyncio.sleep(0.02)


def _collect(result: DemoResult, events: Iterable[BotEvent], stream: Stream | None) -> None:
    result.events = list(events)
    if stream is not None:
        result.windows = timeline(stream.pcm())
        result.decoded_seconds = stream.audio_seconds
        result.packets = stream.packets
        result.errors = len(stream.errors)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _events_check(events: Sequence[BotEvent], n: int) -> Check:
    """The bot's side of the story: n starts, then n stops with reason ``finished``."""
    starts = [e for e in events if e.op == "SOURCE_START"]
    reasons = [e.d.get("reason") for e in events if e.op == "SOURCE_STOP"]
    ok = len(starts) == n and reasons == ["finished"] * n
    stops = ", ".join(str(r) for r in reasons) or "none"
    return Check("bot events", ok, f"{len(starts)} SOURCE_START; SOURCE_STOP reasons: {stops}")


def main(expect: Sequence[float] | None = None) -> int:
    """The CLI entry: run the demo, return its exit code (0 pass, 1 fail)."""
    from audionode.logs import configure_logging
    from audionode.runtime import run

    configure_logging("WARNING")
    results: list[DemoResult] = []

    async def demo() -> None:
        results.append(await run_demo(expect=expect))

    run(demo())
    return results[0].exit_code
