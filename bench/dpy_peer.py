"""The discord.py 2.7.1 side of ``bench/streams.py --peer discordpy``: the usual bot-side
alternative to a node, run in its own process so its CPU can be measured alone.

Each guild gets a real ``discord.VoiceClient`` (voice websocket, UDP, XChaCha transport, DAVE
through davey: all discord.py's own code; only the main-gateway side is stubbed, as in
``tests/voiceserver/dpy.py``) playing with discord.py's ``AudioPlayer`` (one thread per guild)
from ``discord.FFmpegOpusAudio`` (one ffmpeg process per guild): ``-c:a copy`` for the Ogg/Opus
passthrough file, libopus at 128 kbit/s for the MP3 (ffmpeg's libopus default complexity is 10).
Needs the ``ffmpeg`` binary on PATH (``apt-get install ffmpeg``).

    python -m bench.dpy_peer LVSP_URL TOKEN ENDPOINT PLAYERS FILE MODE GUILD0 CHANNEL0

prints ``READY <playing> <failed connects>`` once every guild is playing (a connect that
times out is tried once more) and then plays until terminated.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from pathlib import Path

import aiohttp
import discord

from audionode.voiceserver.lvsp_client import LvspClient
from tests.voiceserver.dpy import DpyHarness

BOT = 4242


def source(path: str, mode: str) -> discord.AudioSource:
    if mode == "passthrough":
        return discord.FFmpegOpusAudio(path, codec="copy")
    return discord.FFmpegOpusAudio(path, bitrate=128)


async def serve(argv: list[str]) -> None:
    lvsp_url, token, endpoint, players, path, mode, guild0, channel0 = argv
    n, g0, c0 = int(players), int(guild0), int(channel0)
    async with aiohttp.ClientSession() as http:
        lvsp = await LvspClient.open(http, lvsp_url, token)
        gate = asyncio.Semaphore(16)
        harnesses: list[DpyHarness] = []

        failures: list[str] = []

        async def one(i: int) -> None:
            # A handshake that times out is tried once more (a fresh VoiceClient): the
            # question is how many players discord.py holds, not whether one connect was slow.
            for attempt in (1, 2):
                async with gate:
                    h = DpyHarness(
                        lvsp,
                        http,
                        user_id=BOT,
                        guild_id=g0 + i,
                        channel_id=c0 + i,
                    )
                    try:
                        await h.connect(endpoint, within=60)
                    except (TimeoutError, discord.DiscordException, aiohttp.ClientError) as e:
                        failures.append(f"guild {g0 + i} attempt {attempt}: {e!r}")
                        with contextlib.suppress(Exception):
                            await h.disconnect()
                        continue
                    h.voice_client.play(source(path, mode))
                    harnesses.append(h)
                    return

        await asyncio.gather(*(one(i) for i in range(n)))
        for failure in failures:
            print(f"# connect failed: {failure}", file=sys.stderr, flush=True)
        print(f"READY {len(harnesses)} {len(failures)}", flush=True)
        await asyncio.Event().wait()


async def spawn_peer(
    lvsp_url: str,
    token: str,
    endpoint: str,
    players: int,
    path: Path,
    mode: str,
    guild0: int,
    channel0: int,
) -> tuple[asyncio.subprocess.Process, asyncio.Future[str]]:
    """Start the peer process; the future resolves to its ``READY`` line."""
    if shutil.which("ffmpeg") is None:
        raise SystemExit("--peer discordpy needs the ffmpeg binary (apt-get install ffmpeg)")
    args = [lvsp_url, token, endpoint, str(players), str(path), mode, str(guild0), str(channel0)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.dpy_peer", *args, stdout=asyncio.subprocess.PIPE
    )
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def watch() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            if line.startswith(b"READY") and not ready.done():
                ready.set_result(line.decode().strip())
        if not ready.done():
            ready.set_exception(RuntimeError("the discord.py peer exited before READY"))

    asyncio.get_running_loop().create_task(watch())
    return proc, ready


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1:]))
