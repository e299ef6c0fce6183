"""Voice faults mid-track (issue 11 items 7 and 8): the node's voice stack (VoiceConnection +
Sender) plays a numbered track into the built-in voice server, a listener (the independent test
client) hears it, and a fault is injected from the test side: a websocket proxy in front of the
gateway closes or drops the node's socket with a chosen code, loses heartbeat ACKs or corrupts a
DAVE commit; LVSP moves the node; real members join, leave or force a downgrade.

Every test checks the policy of docs/discord-voice.md §1.6-§1.7 and §2.2, that no audio frame
reached the listener without DAVE while DAVE was in force (issue 11 item 7), and measures what
the listener heard: the audible gap (the longest stretch without audio between two frames it
heard) and the frames of the track it never heard. The numbers are printed (``pytest -s``).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from audionode.transport.voice_conn import Closed, Connected, Resumed
from audionode.voice.crypto import AES_GCM_MODE
from tests.transport import rig
from tests.transport.faultproxy import FaultProxy, op_of
from tests.transport.rig import Hearing, Node, Source, hearing, numbered_frames, until
from tests.transport.voiceserver_harness import Harness, voice_server
from tests.voiceserver.member import VoiceMember

GUILD, CHANNEL, OTHER_CHANNEL = 601, 602, 603
NODE, LISTENER, LISTENER2, THIRD = 604, 605, 606, 607
TRACK = 150
"""Frames of the track (3 s): the fault comes after about 0.8 s of it."""
FAULT_AFTER = 40


@dataclass
class Rig:
    h: Harness
    proxy: FaultProxy
    node: Node
    listener: VoiceMember
    source: Source | None = None
    t_play: float = 0.0

    async def play(self) -> None:
        """Start the numbered track and wait until the fault point."""
        self.t_play = time.monotonic()
        self.source = Source(numbered_frames(TRACK), track=1)
        self.node.sender.play(GUILD, self.source)
        await until(lambda: self.source is not None and self.source.i >= FAULT_AFTER)

    async def played_out(self, within: float = 15.0) -> None:
        """The whole track went out, then the trailing silence had time to arrive."""
        await until(lambda: self.source is not None and self.source.done, within)
        await until(lambda: self.node.sender.stats(GUILD) is not None, 1)
        stats = self.node.sender.stats(GUILD)
        assert stats is not None
        silence = stats.silence

        def tail_sent() -> bool:
            now = self.node.sender.stats(GUILD)
            return now is not None and now.silence >= silence + 5

        await until(tail_sent)
        t = time.monotonic()
        await until(lambda: time.monotonic() > t + 0.1)  # the last packets' way to the listener

    def heard(self, who: VoiceMember | None = None, **kw: Any) -> Hearing:
        listener = who or self.listener
        return hearing(listener, self.node.ssrcs(), NODE, after=self.t_play, **kw)


def report(name: str, got: Hearing) -> None:
    print(f"\nFAULT {name}: {got.summary(TRACK)}")


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with voice_server(heartbeat_interval=0.3) as h:
        yield h


@pytest.fixture
async def r(harness: Harness) -> AsyncIterator[Rig]:
    h = harness
    proxy = FaultProxy(h.endpoint, h.http)
    await proxy.start()
    listener = await rig.join_listener(h, LISTENER, CHANNEL, GUILD, heartbeat=True)
    grant = await h.lvsp.grant(NODE, CHANNEL, GUILD)
    node = await rig.start_node(h, grant, AES_GCM_MODE, endpoint=proxy.endpoint, guild=GUILD)
    await until(lambda: node.vc.dave.ready and listener.dave_ready)
    rg = Rig(h, proxy, node, listener)
    yield rg
    await node.close()
    await listener.close()
    await proxy.stop()


async def allow_without_dave(h: Harness, channel: int) -> None:
    """LVSP INFO(CHANNEL) ``dave_required: false`` (lvsp.md §5); the server applies it before
    the next request on the same socket (the join that follows), so its answer is not awaited."""
    info = {"id": str(channel), "dave_required": False}
    await h.lvsp.ws.send_str(json.dumps({"op": 6, "d": {"type": 0, "info": info}}))


def closed(node: Node) -> list[tuple[int, bool, bool]]:
    return [(e.code, e.by_remote, e.will_reconnect) for e in node.events if isinstance(e, Closed)]


def rtp_continuous(node: Node) -> None:
    """seq +1, timestamp +960, nonce +1 on every packet the node sent (§1.6: a resume keeps
    the counters)."""
    counters = [
        (int.from_bytes(d[2:4], "big"), int.from_bytes(d[4:8], "big"), int.from_bytes(d[-4:]))
        for d in node.sent
        if len(d) > 8
    ]
    for (s0, t0, n0), (s1, t1, n1) in itertools.pairwise(counters):
        assert ((s1 - s0) % 2**16, (t1 - t0) % 2**32, n1 - n0) == (1, 960, 1)


# --- resumable faults: the socket goes, UDP, key and DAVE group stay (§1.6) ----------------------


async def heard_through_a_resume(r: Rig, name: str) -> None:
    """The track plays out; the listener heard all of it, in order, without a gap, and the RTP
    counters ran on (the packets kept flowing while the websocket was replaced)."""
    await r.played_out()
    got = r.heard()
    report(name, got)
    assert got.leaks == [] and got.undecryptable == 0
    assert got.indexes == list(range(TRACK)), "in order, each once"
    assert got.gap_ms < 150, "audio flows on during the resume"
    rtp_continuous(r.node)


async def test_4015_resumes_with_seq_ack_and_the_stream_runs_on(r: Rig) -> None:
    epoch = r.node.vc.dave.epoch
    await r.play()
    await r.proxy.close_live(4015, "Voice server crashed")
    await until(lambda: bool(r.node.at(Resumed)))
    assert closed(r.node) == [(4015, True, True)]
    [(_, resume)] = r.proxy.client_ops(7)
    assert resume["d"]["seq_ack"] == r.proxy.last_seq(0) > 0, "the last seq seen, JSON or binary"
    await heard_through_a_resume(r, "4015 resume")
    assert r.node.ssrcs() == {r.node.vc.ssrc} and r.node.vc.dave.epoch == epoch


async def test_a_socket_lost_without_close_frame_resumes(r: Rig) -> None:
    await r.play()
    await r.proxy.abort_live()
    await until(lambda: bool(r.node.at(Resumed)))
    assert closed(r.node) == [(1006, True, True)]
    await heard_through_a_resume(r, "1006 lost socket")


async def test_missed_heartbeat_acks_drop_the_socket_and_resume(r: Rig) -> None:
    await r.play()
    r.proxy.drop = lambda frame: op_of(frame) == 6
    await until(lambda: bool(r.node.at(Closed)), within=5)
    r.proxy.drop = lambda frame: False
    [event] = [e for e in r.node.events if isinstance(e, Closed)]
    assert (event.code, event.by_remote, event.will_reconnect) == (1006, False, True)
    assert event.reason == "no heartbeat ACK for 2 beats"
    await until(lambda: bool(r.node.at(Resumed)))
    beats = [m["d"]["seq_ack"] for s, m in r.proxy.client_ops(3) if s.link == 0]
    assert beats and beats[-1] == r.proxy.last_seq(0), "every heartbeat acks the last seq"
    await heard_through_a_resume(r, "missed heartbeat ACKs")


# --- a new session mid-track: the DAVE group is re-established (issue 11 item 7) -----------------


async def test_a_fresh_reconnect_mid_track_holds_audio_until_the_group_is_back(r: Rig) -> None:
    """4016 (a "bug" code): reconnect afresh with the same credentials into the same channel,
    where the listener already has a group. Nothing plain may reach it meanwhile."""
    first = r.node.vc.ssrc
    await r.play()
    await r.proxy.close_live(4016, "Unknown encryption mode")
    await until(lambda: len(r.node.at(Connected)) == 2)
    assert closed(r.node) == [(4016, True, True)] and r.node.vc.ssrc != first
    await r.played_out()
    got = r.heard()
    report("fresh reconnect (4016)", got)
    assert got.leaks == [], "plain audio reached an E2EE channel"
    assert got.skipped(TRACK) == [] and got.undecryptable == 0
    assert r.node.vc.session.frames_withheld == 0, "the sender held; seal() had nothing to stop"


async def test_4006_is_final_then_new_credentials_rejoin_without_leaking(r: Rig) -> None:
    await r.play()
    await r.proxy.close_live(4006, "Session no longer valid")
    await until(lambda: bool(closed(r.node)))
    assert closed(r.node) == [(4006, True, False)] and not r.node.vc.ready
    t_closed = time.monotonic()
    # the bot's answer: a new VOICE_SERVER_UPDATE (here the same voice state's credentials)
    grant = await r.h.lvsp.grant(NODE, CHANNEL, GUILD)
    await r.node.vc.reconnect(grant.token, r.proxy.endpoint, CHANNEL, grant.session_id)
    await r.played_out()
    got = r.heard()
    report("4006, then new credentials", got)
    assert got.leaks == [] and got.skipped(TRACK) == [] and got.undecryptable == 0
    quiet = [t for t, _ in got.heard if t > t_closed]
    assert quiet, "audio came back after the rejoin"


@pytest.mark.parametrize("code", [4014, 4021, 4009])
async def test_final_codes_stop_sending_until_told_otherwise(r: Rig, code: int) -> None:
    await r.play()
    await r.proxy.close_live(code, "bye")
    await until(lambda: bool(closed(r.node)))
    t_closed = time.monotonic()
    await until(lambda: time.monotonic() > t_closed + 0.4)
    assert closed(r.node) == [(code, True, False)]
    assert len(r.proxy.links) == 1, "no new socket with the old credentials"
    late = [p for p in r.listener.packets if p.at > t_closed + 0.1]
    assert late == [], "nothing is sent once the session is over"
    assert r.heard().leaks == []


async def test_a_channel_move_mid_track_joins_the_new_group_without_leaking(r: Rig) -> None:
    h = r.h
    other = await rig.join_listener(h, LISTENER2, OTHER_CHANNEL, GUILD, heartbeat=True)
    try:
        await r.play()
        moved = await h.lvsp.grant(NODE, OTHER_CHANNEL, GUILD)  # the server closes us with 4014
        await until(lambda: bool(closed(r.node)))
        t_moved = time.monotonic()
        assert closed(r.node) == [(4014, True, False)]
        await r.node.vc.reconnect(moved.token, r.proxy.endpoint, OTHER_CHANNEL, moved.session_id)
        await r.played_out()
        old, new = r.heard(), r.heard(other)
        report("channel move (old channel)", old)
        report("channel move (new channel)", new)
        assert old.leaks == [] and new.leaks == [] and new.undecryptable == 0
        assert [t for t, _ in old.heard if t > t_moved + 0.1] == [], "the old channel hears no more"
        assert sorted(old.indexes + new.indexes) == list(range(TRACK)), "no frame lost, none twice"
        first_new = new.heard[0][0]
        ms = 1000 * (first_new - t_moved)
        print(f"FAULT channel move: first audio in the new channel {ms:.0f} ms after the 4014")
        assert other.dave is not None and r.listener.dave is not None
        assert other.dave.voice_privacy_code != r.listener.dave.voice_privacy_code
    finally:
        await other.close()


# --- DAVE transitions mid-track (§2.2) -----------------------------------------------------------


async def test_members_joining_and_leaving_mid_track(r: Rig) -> None:
    await r.play()
    third = await rig.join_listener(r.h, THIRD, CHANNEL, GUILD, heartbeat=True)
    await until(lambda: third.dave_ready and r.node.vc.dave.epoch == 2)
    await until(lambda: r.source is not None and r.source.i >= FAULT_AFTER + 25)
    await third.close()  # op 13 + a Remove proposal: epoch 3
    await until(lambda: r.node.vc.dave.epoch == 3)
    await r.played_out()
    got = r.heard()
    report("member joins then leaves (epochs 1 -> 2 -> 3)", got)
    assert got.leaks == [] and got.skipped(TRACK) == []
    assert got.undecryptable <= 3, "a frame or two may race the listener's own commit"


async def test_a_downgrade_mid_track_goes_plain_only_once_executed(r: Rig) -> None:
    await allow_without_dave(r.h, CHANNEL)
    await r.play()
    plain = await rig.join_listener(r.h, THIRD, CHANNEL, GUILD, heartbeat=True, max_dave=0)
    try:
        await until(lambda: r.node.vc.dave.protocol_version == 0)
        await until(lambda: bool(r.listener.ops(22)) and r.listener.dave_version == 0)
        executed = max(t for t, m in r.listener.ops_at(22))
        await r.played_out()
        got = r.heard(plain_allowed_after=executed)
        report("downgrade to DAVE v0", got)
        assert got.leaks == [], "plain audio before the downgrade executed"
        assert got.skipped(TRACK) == [] and got.undecryptable == 0
        assert r.node.vc.session.frames_withheld == 0
    finally:
        await plain.close()


async def test_an_invalid_commit_mid_track_recovers_without_leaking(r: Rig) -> None:
    def corrupt(frame: bytes | str) -> bytes | str:
        if isinstance(frame, bytes) and op_of(frame) == 29:
            return frame[:5] + bytes(b ^ 0x5A for b in frame[5:])
        return frame

    await r.play()
    r.proxy.mutate = corrupt
    third = await rig.join_listener(r.h, THIRD, CHANNEL, GUILD, heartbeat=True)
    try:
        await until(lambda: bool(r.proxy.client_ops(31)))
        r.proxy.mutate = lambda frame: frame
        await until(lambda: r.node.vc.dave.ready and third.dave_ready, 10)
        await r.played_out()
        got = r.heard()
        report("invalid commit (op 31, re-added)", got)
        assert got.leaks == [] and got.skipped(TRACK) == []
        kps = [s for s in r.proxy.from_client if isinstance(s.frame, bytes) and s.frame[0] == 26]
        assert len(kps) == 2, "a new key package after op 31"
    finally:
        await third.close()


async def test_a_member_joining_a_bot_playing_alone_hears_no_plain_audio(harness: Harness) -> None:
    """Alone, the node sends plain opus (no group can exist, §2.2); the moment op 11 announces
    a member it holds the track until the new group can encrypt it."""
    h = harness
    grant = await h.lvsp.grant(NODE, CHANNEL, GUILD)
    node = await rig.start_node(h, grant, AES_GCM_MODE, guild=GUILD)
    try:
        source = Source(numbered_frames(TRACK), track=1)
        t_play = time.monotonic()
        node.sender.play(GUILD, source)
        await until(lambda: source.i >= FAULT_AFTER)
        assert not node.vc.dave.ready and node.vc.session.audio_ready
        listener = await rig.join_listener(h, LISTENER, CHANNEL, GUILD, heartbeat=True)
        try:
            await until(lambda: source.done, 15)
            await until(lambda: time.monotonic() > t_play + TRACK * 0.02 + 1.0)
            got = hearing(listener, node.ssrcs(), NODE, after=t_play)
            report("member joins a bot playing alone", got)
            assert got.leaks == [] and got.undecryptable == 0
            heard = got.indexes
            assert heard == list(range(heard[0], TRACK)), "from the join on: everything, in order"
        finally:
            await listener.close()
    finally:
        await node.close()
