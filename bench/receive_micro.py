"""Per-packet cost of the receive path (issue 15 item 2), without sockets: N members' real opus
tones sealed as the voice server forwards them (AES-GCM rtpsize), then

1. the loop's share: ``VoiceClient.receive_datagram`` (classify, transport open, SSRC → user,
   DAVE pass-through of plain frames) and ``ReceivePath.feed``;
2. the receive thread's share: ``ReceivePath.step`` (jitter buffer, libopus decode).

    python -m bench.receive_micro [--streams 100] [--seconds 2] [--undecoded]

``--undecoded``: the players' audio is not wanted (no recording, no VDP channel), so the thread
keeps jitter buffers and speaking state but decodes nothing (``ReceivePath.wants``).

DAVE decryption itself is not included (it needs a group per member; davey's decrypt is of the
same order as its encrypt, see docs/PERFORMANCE.md). Prints microseconds per received packet.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for the tests' helpers

from audionode.engine.receive import ReceivePath
from audionode.voice.client import Credentials, VoiceClient
from audionode.voice.crypto import AES_GCM_MODE, cipher_for
from audionode.voice.events import SpeakingChanged
from audionode.voice.opcodes import Speaking
from audionode.voice.packetizer import Packetizer
from tests.voiceserver.audio import tone_opus


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--streams", type=int, default=100)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--undecoded", action="store_true", help="no consumer: nothing decoded")
    a = p.parse_args()
    key = os.urandom(32)
    session = VoiceClient(Credentials(1, 2, 3, "s", "t"), receive=True)
    session.cipher = cipher_for(AES_GCM_MODE, key)
    tone = tone_opus(440, a.seconds)
    senders = [Packetizer(1000 + i, cipher_for(AES_GCM_MODE, key)) for i in range(a.streams)]
    for i, s in enumerate(senders):
        session.handle(Speaking(1, s.ssrc, user_id=str(500 + i)), 0.0)
    session.take()
    ticks = [[s.packet(frame) for s in senders] for frame in tone]
    rp = ReceivePath(lambda player, user, pcm: None)
    if a.undecoded:
        rp.wants = lambda player: False
    loop_cpu = thread_cpu = 0.0
    for datagrams in ticks:
        began = time.process_time()
        for d in datagrams:
            session.receive_datagram(d, 0.0)
        for event in session.take():
            if not isinstance(event, SpeakingChanged):
                rp.feed(1, event)  # type: ignore[arg-type]
        mid = time.process_time()
        rp.step()
        thread_cpu += time.process_time() - mid
        loop_cpu += mid - began
    n = a.streams * len(tone)
    print(
        f"{a.streams} streams x {len(tone)} packets: loop {loop_cpu / n * 1e6:.1f} us, "
        f"receive thread {thread_cpu / n * 1e6:.1f} us per received packet "
        f"({thread_cpu / len(tone) * 1e3:.2f} ms of decoding per 20 ms tick)"
    )


if __name__ == "__main__":
    main()
