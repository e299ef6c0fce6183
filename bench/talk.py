"""Members that speak to the node in ``bench/streams.py --talk`` (issue 15: the receive path's
cost beside the send path's).

In ``bench/streams.py`` the voice server's UDP forwarding is bypassed (the counting sink takes
the node's packets), so nothing would ever reach the node's sockets. With ``--talk`` the second
member of each channel (``--dave``'s member) announces itself speaking (op 5, relayed to the
node like any member's) and the bench sends the node, from this process, what the forwarding
unit would: the member's opus tone, DAVE-encrypted with the member's own key and sealed with
the node connection's transport key, one packet per channel per 20 ms. The packets are made
before the window (so making them costs the measured run nothing) and sent on an absolute
20 ms clock by the sink's own socket (``bench/sink.py``): the node's voice sockets are
connected to the sink's address and take datagrams from nowhere else.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for the tests' helpers

from audionode.voice.packetizer import Packetizer
from audionode.voiceserver.app import VoiceServer
from tests.transport.listener import Listener
from tests.voiceserver.audio import tone_opus


async def talk_streams(
    vs: VoiceServer, members: list[Listener], bot: int, seconds: float
) -> list[tuple[tuple[str, int], list[bytes]]]:
    """Per channel: (the node connection's address, the member's packets for ``seconds``)."""
    frames = tone_opus(440, seconds)
    streams = []
    for member in members:
        assert member.dave is not None and member.dave.ready, "--talk needs --dave"
        await member.send(5, {"speaking": 1, "delay": 0, "ssrc": member.ssrc})
        node = next(
            m
            for m in vs.forwarder._by_ssrc.values()  # the bench runs the server
            if m.user_id == bot and m.channel_id == member.channel_id
        )
        target = node.addr or node.claim
        assert target is not None and node.cipher is not None
        packetizer = Packetizer(member.ssrc, encryptor=member.dave)
        packetizer.set_cipher(node.cipher)
        streams.append((target, [packetizer.packet(f) for f in frames]))
    return streams
