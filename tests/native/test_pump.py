"""The native tick over the passthrough lanes (decision 0020): a Sender with a ``Pump`` puts
the same datagrams on the wire, byte for byte, as a Sender without one, through pauses, DAVE
holds and a gapless track change, while the Pump serves the steady state; a pipeline command
hands the stream back to the Python path at once and the Pump takes it again afterwards; and,
end to end, the built-in voice server and a listening member open every packet the Pump sent
(DAVE on) back to the file's opus packets.

Two real pipelines play the same in-memory Ogg Opus file in lockstep (each tick waits until
both have their next frame, so neither side ever misses a slot for timing reasons); the sinks
are real NativePacketizers on real loopback UDP sockets, with a deterministic DAVE stand-in
(davey's own frames are in the end-to-end test below)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import av
import numpy as np
import pytest

from audionode.config import EngineConfig
from audionode.media.frames import FrameBuffer
from audionode.media.pipeline import Pipeline
from audionode.native import _packet
from audionode.sources.api import Playable
from audionode.transport.sender import Sender
from audionode.voice.crypto import AES_GCM_MODE, XCHACHA_MODE, cipher_for
from audionode.voice.events import Connected
from audionode.voice.packetizer import SILENCE_FRAME, NativePacketizer
from tests.media.mediafiles import demuxed_packets, tone, write_media
from tests.native.test_packet import DirectDave
from tests.transport import rig
from tests.transport.faultproxy import FaultProxy
from tests.transport.rig import hearing, until
from tests.transport.test_e2e import assert_rtp_stream, assert_server_accepted_all
from tests.transport.voiceserver_harness import Harness, voice_server

KEY = 7


@pytest.fixture(scope="module")
def track_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s of 440 Hz, Ogg/Opus."""
    path = tmp_path_factory.mktemp("pump") / "a.opus"
    write_media(path, tone([440], 6.0), "opus")
    return path


@pytest.fixture(scope="module")
def track_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of 660 Hz, Ogg/Opus."""
    path = tmp_path_factory.mktemp("pump") / "b.opus"
    write_media(path, tone([660], 3.0), "opus")
    return path


def playable(path: Path) -> Playable:
    return Playable.from_bytes(path.read_bytes())


class Sink:
    """The connection side as the sender sees it (``VoiceConnection``'s sending half): a real
    NativePacketizer and a connected loopback UDP socket; ``pump_channel`` binds the channel
    to the socket and marks it live as VoiceClient/VoiceConnection do."""

    def __init__(self, key: bytes, mode: str, to: tuple[str, int]) -> None:
        cipher = cipher_for(mode, key)
        self.p = NativePacketizer(1234, cipher, sequence=65500, timestamp=2**32 - 9600)
        dave = DirectDave()
        dave.frame_encrypt = dave.encrypt_opus
        self.p.set_encryptor(dave)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(to)
        self.ready = True
        self.audio_ready = True
        self.speaking: list[bool] = []

    def send_frame(self, opus: bytes) -> None:
        self.sock.send(self.p.packet(opus))

    def queue_frame(self, opus: bytes, out: _packet.Batch) -> None:
        out.add(self.p.channel, opus, self.sock.fileno())

    def set_speaking(self, on: bool) -> None:
        self.speaking.append(on)

    def send_keepalive(self) -> None:
        pass

    def pump_channel(self) -> _packet.Channel | None:
        if not self.audio_ready:
            return None
        channel = self.p.channel
        channel.fd = self.sock.fileno()
        channel.live = True
        return channel

    def hold(self, held: bool) -> None:
        """A DAVE transition: audio may not leave (VoiceClient clears ``live`` at once)."""
        self.audio_ready = not held
        if held:
            self.p.channel.live = False


class Side:
    """One sender (with or without a Pump), its pipeline, sink and receiver."""

    def __init__(self, pump: bool, mode: str, key: bytes) -> None:
        self.rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.rx.bind(("127.0.0.1", 0))
        self.rx.setblocking(False)
        self.sink = Sink(key, mode, self.rx.getsockname())
        self.starts: list[tuple[int, int]] = []
        self.pump = _packet.Pump() if pump else None
        self.sender: Sender[int] = Sender(
            lambda _k, track, pos: self.starts.append((track, pos)),
            out=_packet.Batch(),
            pump=self.pump,
        )
        self.pipeline = Pipeline(EngineConfig(), on_event=lambda _e: None)
        self.pipeline.start()
        self.sender.attach(KEY, self.sink)
        self.got: list[bytes] = []

    @property
    def buffer(self) -> FrameBuffer:
        return self.pipeline.buffer

    def drain(self) -> None:
        while True:
            try:
                self.got.append(self.rx.recv(2048))
            except BlockingIOError:
                return

    def close(self) -> None:
        self.pipeline.close()
        self.sink.sock.close()
        self.rx.close()


@pytest.fixture
def sides() -> Iterator[Callable[[str], tuple[Side, Side]]]:
    made: list[Side] = []

    def make(mode: str) -> tuple[Side, Side]:
        key = os.urandom(32)
        pair = (Side(True, mode, key), Side(False, mode, key))
        made.extend(pair)
        return pair

    yield make
    for side in made:
        side.close()


def lockstep(
    sides: Sequence[Side], ticks: int, script: dict[int, Callable[[Side], None]] | None = None
) -> None:
    """``ticks`` sender ticks on every side; ``script[i]`` runs on each before tick ``i``.
    Each tick first waits until every buffer has its next frame (while one plays), so no side
    ever misses a slot for timing reasons."""
    now = 1000.0
    played = False  # idle before the first frame is a play not started yet, after it the end
    for i in range(ticks):
        if script and i in script:
            for side in sides:
                script[i](side)
            time.sleep(0.02)  # the pipelines' turns for the command
        deadline = time.monotonic() + 5
        while not all(side.buffer.ready() for side in sides):
            ended = played and all(side.pipeline.idle for side in sides)
            if ended or time.monotonic() > deadline:
                break
            time.sleep(0.0005)
        else:
            played = True
        for side in sides:
            side.sender.step(now)
        now += 0.020
        for side in sides:
            side.drain()
    time.sleep(0.01)
    for side in sides:
        side.drain()


@pytest.mark.parametrize("mode", [AES_GCM_MODE, XCHACHA_MODE])
def test_same_datagrams_with_and_without_the_pump(
    sides: Callable[[str], tuple[Side, Side]], track_a: Path, track_b: Path, mode: str
) -> None:
    a, b = sides(mode)
    for side in (a, b):
        side.pipeline.play(playable(track_a), 1)
        side.pipeline.queue_next(playable(track_b), 2)
        side.sender.play(KEY, side.buffer)

    def pause(side: Side) -> None:
        side.sender.pause(KEY)

    def resume(side: Side) -> None:
        side.sender.resume(KEY)

    def hold(side: Side) -> None:
        side.sink.hold(True)

    def release(side: Side) -> None:
        side.sink.hold(False)

    script = {60: pause, 75: resume, 150: hold, 170: release}
    lockstep((a, b), 520, script)

    assert a.got == b.got, "the Pump changed what went on the wire"
    channel_a, channel_b = a.sink.p.channel, b.sink.p.channel
    # the Pump served the steady state: most of the audio, none on the side without one
    audio = sum(1 for d in b.got if len(d) > 12 + 3 + 16 + 4)
    assert audio > 400
    assert channel_a.pumped > 0.8 * audio, (channel_a.pumped, audio)
    assert channel_b.pumped == 0 and a.pump is not None and a.pump.errors == 0
    # the same track starts reported (the gapless change to track 2 included)
    assert [t for t, _ in a.starts] == [t for t, _ in b.starts] == [1, 2]
    assert a.starts == b.starts
    # the sender's counters include what the Pump sent
    stats_a, stats_b = a.sender.stats(KEY), b.sender.stats(KEY)
    assert stats_a is not None and stats_b is not None
    assert (stats_a.sent, stats_a.silence, stats_a.nulled) == (
        stats_b.sent,
        stats_b.silence,
        stats_b.nulled,
    )
    assert a.sink.speaking == b.sink.speaking


def test_a_pipeline_command_hands_the_stream_back_and_the_pump_takes_it_again(
    sides: Callable[[str], tuple[Side, Side]], track_a: Path
) -> None:
    a, _ = sides(AES_GCM_MODE)
    a.pipeline.play(playable(track_a), 1)
    a.sender.play(KEY, a.buffer)
    pumped: list[int] = []
    channel = a.sink.p.channel

    def note(_side: Side) -> None:
        pumped.append(channel.pumped)

    def quieter(side: Side) -> None:
        note(side)
        side.pipeline.set_volume(0.5)

    def louder(side: Side) -> None:
        note(side)
        side.pipeline.set_volume(1.0)

    script = {40: quieter, 100: louder, 160: note}
    lockstep((a,), 200, script)
    assert pumped[0] > 20, "the Pump did not take the steady stream"
    # while the volume differs, frames are made (not passthrough): the Pump hands back
    assert pumped[1] - pumped[0] <= 2, pumped
    assert pumped[2] - pumped[1] > 40, "the Pump did not take the stream again"
    stats = a.sender.stats(KEY)
    # every tick sent a frame but the first (speaking on goes out a tick before the audio)
    assert stats is not None and stats.nulled == 0 and stats.sent == 199
    assert a.pump is not None and a.pump.errors == 0


def test_a_closed_socket_or_a_dead_channel_is_never_served(
    sides: Callable[[str], tuple[Side, Side]], track_a: Path
) -> None:
    a, _ = sides(AES_GCM_MODE)
    a.pipeline.play(playable(track_a), 1)
    a.sender.play(KEY, a.buffer)
    channel = a.sink.p.channel
    lockstep((a,), 30, {})
    served = channel.pumped
    assert served > 10
    channel.fd = -1  # VoiceConnection._close_udp unbinds it before closing the socket
    a.sink.audio_ready = False  # and the session is no longer ready to send audio
    a.sink.ready = False
    lockstep((a,), 10, {})
    assert channel.pumped == served
    assert a.pump is not None and a.pump.armed() == 0


GUILD, CHANNEL, NODE, LISTENER = 701, 702, 704, 705


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with voice_server() as h:
        yield h


@pytest.mark.parametrize("mode", [AES_GCM_MODE, XCHACHA_MODE])
async def test_the_listener_opens_every_packet_the_pump_sent(
    harness: Harness, track_b: Path, mode: str
) -> None:
    """The real VoiceConnection (DAVE on, davey's encryptor called by the Pump) and a member
    of the built-in voice server that opens every packet: the audio is the file's opus
    packets in order, one RTP stream, and the Pump sent most of it."""
    h = harness
    pipeline = Pipeline(EngineConfig(), on_event=lambda _e: None)
    pipeline.start()
    async with contextlib.AsyncExitStack() as cleanup:
        cleanup.callback(pipeline.close)
        listener = await rig.join_listener(h, LISTENER, CHANNEL, GUILD)
        cleanup.push_async_callback(listener.close)
        grant = await h.lvsp.grant(NODE, CHANNEL, GUILD)
        pump = _packet.Pump()
        node = await rig.start_node(h, grant, mode, guild=GUILD, out=_packet.Batch(), pump=pump)
        cleanup.push_async_callback(node.close)
        await until(lambda: node.vc.dave.ready and listener.dave_ready)
        p = node.vc.session.packetizer
        assert isinstance(p, NativePacketizer)

        t_play = time.monotonic()
        pipeline.play(playable(track_b), 1)
        node.sender.play(GUILD, pipeline.buffer)
        await rig.until_silent(listener, t_play, within=15)
        ssrc = node.vc.ssrc
        assert ssrc is not None
        opened = [(t, o) for t, o in listener.opened_at(ssrc) if t > t_play]
        assert_rtp_stream(opened, ssrc)
        audio = [o.payload for _, o in opened if o.payload != SILENCE_FRAME]
        decrypted = [listener.dave_decrypt(NODE, x) for x in audio]
        assert decrypted == demuxed_packets(track_b)
        assert_server_accepted_all(h, CHANNEL)
        assert p.channel.pumped > 0.8 * len(audio), (p.channel.pumped, len(audio))
        assert p.channel.send_errors == 0 and p.channel.dave_failures == 0
        assert pump.errors == 0
        assert node.vc.session.frames_sent >= len(opened)
        await node.vc.close()
        assert p.channel.fd == -1, "the channel still names the closed socket's descriptor"


def numbered_ogg(path: Path, frames: list[bytes]) -> Path:
    """An Ogg Opus file whose packets are ``frames`` (numbered, see ``rig.numbered_frames``):
    libopus's header and timing, our payloads."""
    pcm = tone([440], len(frames) * 0.02)
    made: list[av.Packet] = []
    with av.open(str(path), "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48000, layout="stereo")
        for i in range(0, len(pcm), 960):
            chunk = np.ascontiguousarray(pcm[i : i + 960].T)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, i
            made.extend(stream.encode(frame))
        made.extend(stream.encode(None))
        for packet, payload in zip(made, frames, strict=False):
            ours = av.Packet(payload)
            ours.pts, ours.dts, ours.duration = packet.pts, packet.dts, packet.duration
            ours.time_base, ours.stream = packet.time_base, stream
            out.mux(ours)
    return path


@pytest.mark.parametrize("fault", ["4015 resume", "4016 fresh reconnect"])
async def test_a_voice_fault_mid_track_while_the_pump_serves(
    harness: Harness, tmp_path: Path, fault: str
) -> None:
    """The gateway socket goes while the Pump serves a lane: on a resume (UDP, key and group
    kept) every frame is heard once, in order, and the counters run on; on a fresh reconnect
    (a new socket, packetizer and channel) nothing plain reaches the DAVE channel, no frame is
    lost, the old channel is never served again and the new one is."""
    h = harness
    total = 250
    path = numbered_ogg(tmp_path / "numbered.opus", rig.numbered_frames(total))
    pipeline = Pipeline(EngineConfig(), on_event=lambda _e: None)
    pipeline.start()
    async with contextlib.AsyncExitStack() as cleanup:
        cleanup.callback(pipeline.close)
        proxy = FaultProxy(h.endpoint, h.http)
        await proxy.start()
        cleanup.push_async_callback(proxy.stop)
        listener = await rig.join_listener(h, LISTENER, CHANNEL, GUILD, heartbeat=True)
        cleanup.push_async_callback(listener.close)
        grant = await h.lvsp.grant(NODE, CHANNEL, GUILD)
        node = await rig.start_node(
            h,
            grant,
            AES_GCM_MODE,
            endpoint=proxy.endpoint,
            guild=GUILD,
            out=_packet.Batch(),
            pump=_packet.Pump(),
        )
        cleanup.push_async_callback(node.close)
        await until(lambda: node.vc.dave.ready and listener.dave_ready)
        first = node.vc.session.packetizer
        assert isinstance(first, NativePacketizer)

        t_play = time.monotonic()
        pipeline.play(playable(path), 1)
        node.sender.play(GUILD, pipeline.buffer)
        await until(lambda: first.channel.pumped >= 60)
        code = 4015 if fault.startswith("4015") else 4016
        await proxy.close_live(code, fault)
        if code == 4016:
            await until(lambda: len(node.at(Connected)) == 2)
        await rig.until_silent(listener, t_play, within=20)
        await asyncio.sleep(0.1)  # the last packets' way to the listener
        got = hearing(listener, node.ssrcs(), NODE, after=t_play)
        assert got.leaks == [], "plain audio reached an E2EE channel"
        assert got.skipped(total) == [] and got.undecryptable == 0
        now = node.vc.session.packetizer
        assert isinstance(now, NativePacketizer)
        if code == 4015:
            assert now is first and got.indexes == list(range(total)), "in order, each once"
            assert got.gap_ms < 150, "audio flows on during the resume"
        else:
            assert now is not first and not first.channel.live and first.channel.fd == -1
            assert now.channel.pumped > 0, "the Pump serves the new connection"
        assert first.channel.send_errors == 0 and now.channel.send_errors == 0
