"""End to end with the real built-in voice server (DAVE on): the node's VoiceConnection driven
by the real-time Sender through the native per-tick batch (decision 0017), and a listening
member that opens every packet (transport, then DAVE with its own davey session) back to the
exact opus the sender popped. The same test runs the pure-Python path and the native
packetizer without the batch, so all three stay interchangeable on the wire."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator

import pytest

from audionode import native
from audionode.native import _packet
from audionode.voice.crypto import AES_GCM_MODE, XCHACHA_MODE
from audionode.voice.packetizer import SILENCE_FRAME, NativePacketizer, Packetizer
from tests.transport import rig
from tests.transport.opus import OpusDecoder, sine_opus
from tests.transport.rig import until
from tests.transport.test_e2e import (
    assert_server_accepted_all,
    parse_dave_footer,
    play_and_hear,
)
from tests.transport.voiceserver_harness import Harness, voice_server

GUILD, CHANNEL, NODE, LISTENER = 601, 602, 604, 605
OPUS = sine_opus(2.0)[:100]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with voice_server() as h:
        yield h


@pytest.mark.parametrize("mode", [AES_GCM_MODE, XCHACHA_MODE])
@pytest.mark.parametrize("path", ["batch", "native-packetizer", "python"])
async def test_listener_decrypts_what_the_path_sent(
    harness: Harness, mode: str, path: str, python_path: None
) -> None:
    h = harness
    native.configure(path != "python")
    out = _packet.Batch() if path == "batch" else None
    async with contextlib.AsyncExitStack() as cleanup:
        listener = await rig.join_listener(h, LISTENER, CHANNEL, GUILD)
        cleanup.push_async_callback(listener.close)
        grant = await h.lvsp.grant(NODE, CHANNEL, GUILD)
        node = await rig.start_node(h, grant, mode, guild=GUILD, out=out)
        cleanup.push_async_callback(node.close)
        p = node.vc.session.packetizer
        assert type(p) is (Packetizer if path == "python" else NativePacketizer)
        await until(lambda: node.vc.dave.ready and listener.dave_ready)
        assert node.vc.dave.frame_encrypt is not None

        _, opened = await play_and_hear(node, listener, OPUS, GUILD)
        payloads = [o.payload for _, o in opened]
        audio = [x for x in payloads if x != SILENCE_FRAME]
        assert len(audio) == len(OPUS) and payloads[: len(OPUS)] == audio
        assert payloads[len(OPUS) :] == [SILENCE_FRAME] * 5
        nonces = [parse_dave_footer(x)[1] for x in audio]
        assert all(b > a for a, b in itertools.pairwise(nonces))
        decrypted = [listener.dave_decrypt(NODE, x) for x in audio]
        assert decrypted == OPUS
        decoder = OpusDecoder()
        for frame in decrypted:
            assert decoder.decode(frame) == 960
        # 50 packets/s on average (the strict pacing check is test_e2e's; this one runs
        # three times as often and must not flake on a loaded machine)
        times = [t for t, _ in opened[: len(OPUS)]]
        assert (len(times) - 1) / (times[-1] - times[0]) == pytest.approx(50.0, rel=0.05)
        # N4 from the only op 4: the transport nonce of every packet, in order
        n4 = [o.nonce for _, o in opened]
        assert n4 == list(range(n4[0], n4[0] + len(n4)))
        assert_server_accepted_all(h, CHANNEL)
        if isinstance(p, NativePacketizer):
            assert p.channel.send_errors == 0 and p.channel.dave_failures == 0
            # batch: every packet went through Batch.flush; else none did
            assert (p.channel.sent >= len(opened)) == (path == "batch")
