"""The voice gateway + forwarding unit with two test members (voice-core codecs + davey)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Protocol

import aiohttp
import pytest

from audionode.config import VoiceServerConfig
from audionode.voice.crypto import AES_GCM_MODE, XCHACHA_MODE
from audionode.voice.packetizer import SILENCE_FRAME
from audionode.voiceserver.app import VoiceServer
from audionode.voiceserver.lvsp_client import LvspClient

from .audio import FRAME, decode_opus, dominant_frequency, snr_db, tone_opus
from .conftest import TOKEN
from .member import VoiceMember

GUILD = 4242
CHANNEL = 0x0123_4567_89AB


async def voice_state(c: LvspClient, user_id: int, channel_id: int = CHANNEL) -> dict[str, str]:
    reply = await c.request(
        7, {"user_id": str(user_id), "channel_id": str(channel_id), "guild_id": str(GUILD)}
    )
    info: dict[str, str] = reply["d"]["info"]
    return info


def member(
    server: VoiceServer, info: dict[str, str], mode: str | None = None, **kw: int
) -> VoiceMember:
    return VoiceMember(
        f"ws://127.0.0.1:{server.port}",
        info["guild_id"],
        int(info["user_id"]),
        int(info["channel_id"]),
        info["session_id"],
        info["token"],
        mode=mode,
        **kw,
    )


class Sender(Protocol):
    @property
    def ssrc(self) -> int: ...
    @property
    def user_id(self) -> int: ...


def check_stream(
    listener: VoiceMember,
    sender: Sender,
    frames: list[bytes],
    freq: float,
    *,
    speaking_slack: float = 0.0,
) -> None:
    """Transport- and DAVE-decrypt, decode, FFT, and the RTP invariants (docs/discord-voice.md)."""
    opened = listener.opened(sender.ssrc)
    assert len(opened) == len(frames) + 5, "every frame and 5 silence frames arrive"
    seqs = [o.header.sequence for o in opened]
    tss = [o.header.timestamp for o in opened]
    assert all(o.header.payload_type == 0x78 for o in opened)
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
    assert all((b - a) % 2**32 == FRAME for a, b in itertools.pairwise(tss))
    nonces = [o.nonce for o in opened]
    assert nonces == list(range(nonces[0], nonces[0] + len(nonces)))  # the server's counter
    dave_frames = [o.payload for o in opened if o.payload != SILENCE_FRAME]
    assert len(dave_frames) == len(frames)
    assert all(f.endswith(b"\xfa\xfa") for f in dave_frames), "DAVE-encrypted end to end"
    media = listener.media_frames(sender.ssrc)
    assert media[: len(frames)] == frames and media[len(frames) :] == [SILENCE_FRAME] * 5
    pcm, samples = decode_opus(media[: len(frames)])
    assert samples == FRAME * len(frames)
    assert abs(dominant_frequency(pcm[4800:]) - freq) < 2
    assert snr_db(pcm[4800:], freq) > 20
    # pacing survives forwarding: ~50 packets/s, no stalls (loose bounds for a loaded CI box)
    # (audio only: discord.py 2.7.1 sends its 5 trailing silence frames in one burst)
    ssrc = sender.ssrc.to_bytes(4, "big")
    arrivals = [p.at for p in listener.packets if p.data[8:12] == ssrc][: len(frames)]
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # (one discord.py run in ~40 missed the tighter 47.5..52.5 pkt/s, 100 ms bounds)
    assert 45 < rate < 55 and max(gaps) < 0.15, (rate, max(gaps))
    speaking = [
        (at, m["d"])
        for at, m in listener.json_seen
        if m["op"] == 5 and m["d"]["user_id"] == str(sender.user_id) and m["d"]["speaking"] == 1
    ]
    first = next(p.at for p in listener.packets if p.data[8:12] == sender.ssrc.to_bytes(4, "big"))
    assert speaking and speaking[0][0] < first + speaking_slack, "op 5 before the first packet"


@pytest.mark.parametrize("modes", [(AES_GCM_MODE, AES_GCM_MODE), (XCHACHA_MODE, AES_GCM_MODE)])
async def test_two_members_exchange_dave_audio(
    server: VoiceServer, control: LvspClient, http: aiohttp.ClientSession, modes: tuple[str, str]
) -> None:
    a = member(server, await voice_state(control, 1001), modes[0])
    b = member(server, await voice_state(control, 1002), modes[1])
    await a.connect(http)
    assert a.ready["modes"] == [AES_GCM_MODE, XCHACHA_MODE]
    assert a.ops(11)[0]["d"] == {"user_ids": []}
    # Ready and op 11 are numbered; op 25 follows op 4 (clients drop an op 25 before op 4)
    assert a.ops(2)[0]["seq"] == 1 and a.ops(11)[0]["seq"] == 2
    await a.wait_for(lambda: any(op == 25 for _, _, op in a.binary_seen))
    seq25 = next(seq for _, seq, op in a.binary_seen if op == 25)
    assert seq25 == a.ops(4)[0]["seq"] + 1
    await b.connect(http)
    assert b.ops(11)[0]["d"] == {"user_ids": ["1001"]}
    await a.wait_op(11, 2)
    assert a.ops(11)[1]["d"] == {"user_ids": ["1002"]}
    await a.wait_dave_ready()
    await b.wait_dave_ready()
    assert a.dave is not None and b.dave is not None
    assert a.dave.voice_privacy_code == b.dave.voice_privacy_code
    assert a.ssrc != b.ssrc

    tone = tone_opus(440, 1.0)
    await a.play(tone)
    await b.wait_for(lambda: len(b.opened(a.ssrc)) >= len(tone) + 5)
    check_stream(b, a, tone, 440)
    # and the other way
    tone2 = tone_opus(660, 0.6)
    await b.play(tone2)
    await a.wait_for(lambda: len(a.opened(b.ssrc)) >= len(tone2) + 5)
    check_stream(a, b, tone2, 660)
    assert a.plain_frames_sent == 0 and b.plain_frames_sent == 0

    url = f"http://127.0.0.1:{server.port}/stats"
    async with http.get(url, headers={"Authorization": TOKEN}) as resp:
        stats = (await resp.json())["channels"][str(CHANNEL)]
    assert stats["members"] == 2 and stats["decrypt_failures"] == 0
    assert stats["rtp_before_speaking"] == 0
    assert stats["packets_in"] == stats["packets_out"] == len(tone) + len(tone2) + 10
    await a.close()
    await b.wait_op(13)
    assert b.ops(13)[0]["d"] == {"user_id": "1001"}
    await b.close()
    await asyncio.sleep(0.05)
    assert server.gateway.member_count(CHANNEL) == 0


# --- close codes ---------------------------------------------------------------------------


async def raw_socket(
    server: VoiceServer, http: aiohttp.ClientSession, query: str = "?v=8"
) -> aiohttp.ClientWebSocketResponse:
    return await http.ws_connect(f"ws://127.0.0.1:{server.port}/{query}")


async def close_of(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str]:
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return ws.close_code, msg.extra or ""


@pytest.mark.parametrize("query", ["", "?v=4", "?v=9"])
async def test_versions_other_than_8_are_4020(
    server: VoiceServer, http: aiohttp.ClientSession, query: str
) -> None:
    ws = await raw_socket(server, http, query)
    code, reason = await close_of(ws)
    assert code == 4020 and "use ?v=8" in reason


async def test_hello_heartbeat_ack_and_pre_identify_errors(
    server: VoiceServer, http: aiohttp.ClientSession
) -> None:
    ws = await raw_socket(server, http)
    hello = await ws.receive_json(timeout=5)
    assert hello == {"op": 8, "d": {"heartbeat_interval": 13750, "v": 8}}
    await ws.send_json({"op": 3, "d": {"t": 1234, "seq_ack": -1}})
    assert await ws.receive_json(timeout=5) == {"op": 6, "d": {"t": 1234}}
    await ws.send_json({"op": 5, "d": {"speaking": 1, "delay": 0, "ssrc": 1}})
    assert (await close_of(ws))[0] == 4003
    ws = await raw_socket(server, http)
    await ws.send_str("{not json")
    assert (await close_of(ws))[0] == 4002


async def test_identify_checks(
    server: VoiceServer, control: LvspClient, http: aiohttp.ClientSession
) -> None:
    info = await voice_state(control, 2001)

    async def identify(**change: object) -> tuple[int | None, str]:
        ws = await raw_socket(server, http)
        d = {
            "server_id": info["guild_id"],
            "user_id": info["user_id"],
            "session_id": info["session_id"],
            "token": info["token"],
            "max_dave_protocol_version": 1,
            **change,
        }
        await ws.send_json({"op": 0, "d": d})
        return await close_of(ws)

    for bad in (
        {"token": "0" * 16},
        {"session_id": "x"},
        {"user_id": "2002"},
        {"server_id": "1"},
    ):
        assert await identify(**bad) == (4004, "Authentication failed")
    for name, value in (("server_id", "abc"), ("user_id", "²"), ("server_id", "9" * 5000)):
        assert await identify(**{name: value}) == (
            4004,
            f"Authentication failed: `{name}` is not a snowflake (1-20 ASCII digits)",
        )
    assert await identify(max_dave_protocol_version=0) == (4017, "E2EE/DAVE protocol required")
    assert (await identify(token=None))[0] == 4020  # wrong type: names the field
    # dave_required can be switched off per channel over LVSP
    await control.request(6, {"type": 0, "info": {"id": str(CHANNEL), "dave_required": False}})
    m = member(server, info, max_dave=0)
    await m.connect(http)
    assert m.ops(4)[0]["d"]["dave_protocol_version"] == 0 and not m.binary_seen
    await m.close()


async def test_mode_not_offered_speaking_ssrc_and_double_select(
    server: VoiceServer, control: LvspClient, http: aiohttp.ClientSession
) -> None:
    m = member(server, await voice_state(control, 2101), "xsalsa20_poly1305")
    with pytest.raises(AssertionError, match="closed with 4016"):
        await m.connect(http)
    await m.close()
    m = member(server, await voice_state(control, 2102))
    await m.connect(http)
    await m.send(5, {"speaking": 1, "delay": 0, "ssrc": m.ssrc + 1})
    assert await m.wait_closed() == 4020
    await m.close()
    m = member(server, await voice_state(control, 2103))
    await m.connect(http)
    await m.send(
        1, {"protocol": "udp", "data": {"address": "127.0.0.1", "port": 1, "mode": AES_GCM_MODE}}
    )
    assert await m.wait_closed() == 4020
    await m.close()


# --- membership, resume, LVSP-driven changes -------------------------------------------------


async def joined(
    server: VoiceServer,
    control: LvspClient,
    http: aiohttp.ClientSession,
    *users: int,
    mode: str | None = None,
) -> list[VoiceMember]:
    members = []
    for uid in users:
        m = member(server, await voice_state(control, uid), mode)
        await m.connect(http)
        members.append(m)
    if len(members) > 1:  # a lone member never has an established group (§2.2)
        for m in members:
            await m.wait_dave_ready()
    return members


async def test_resume_replays_missed_messages_and_media_continues(
    server: VoiceServer, control: LvspClient, http: aiohttp.ClientSession
) -> None:
    a, b = await joined(server, control, http, 3001, 3002)
    await a.play(tone_opus(440, 0.2))
    await b.wait_for(lambda: len(b.packets) >= 15)
    seq_before, nonce_before = a.packetizer.sequence, a.packetizer.nonce  # type: ignore[union-attr]
    acked = a.seq_ack
    await a.drop_websocket()
    # while A is away: C joins (op 11, op 27 proposals, op 29 commit go to A's buffer)
    c = member(server, await voice_state(control, 3003))
    await c.connect(http)
    await b.wait_for(lambda: len(b.ops(11)) >= 2)
    await a.resume(http)
    await a.wait_op(9)
    resumed_at = next(i for i, (_, m) in enumerate(a.json_seen) if m["op"] == 9)
    replayed = [m for _, m in a.json_seen[resumed_at + 1 :]]
    assert any(m["op"] == 11 and m["d"] == {"user_ids": ["3003"]} for m in replayed)
    assert all(m["seq"] > acked for m in replayed if "seq" in m)
    for m in (a, b, c):
        await m.wait_dave_ready(within=10)
    assert a.dave.voice_privacy_code == c.dave.voice_privacy_code  # type: ignore[union-attr]
    assert len(a.dave.get_user_ids()) == 3  # type: ignore[union-attr]
    # UDP, SSRC, key and counters were kept
    tone = tone_opus(880, 0.4)
    await a.play(tone)
    assert a.packetizer.sequence == (seq_before + len(tone) + 5) % 65536  # type: ignore[union-attr]
    assert a.packetizer.nonce == nonce_before + len(tone) + 5  # type: ignore[union-attr]
    await c.wait_for(lambda: len(c.opened(a.ssrc)) >= len(tone) + 5)
    check_stream(c, a, tone, 880)
    for m in (a, b, c):
        await m.close()


async def test_resume_with_wrong_credentials_or_unknown_seq_is_4006(
    server: VoiceServer, control: LvspClient, http: aiohttp.ClientSession
) -> None:
    [a] = await joined(server, control, http, 3101)
    for change in ({"token": "0" * 16}, {"session_id": "nope"}, {"seq_ack": 60000}):
        ws = await raw_socket(server, http)
        d = {
            "server_id": a.server_id,
            "session_id": a.session_id,
            "token": a.token,
            "seq_ack": a.seq_ack,
            **change,
        }
        await ws.send_json({"op": 7, "d": d})
        assert (await close_of(ws)) == (4006, "Session no longer valid")
    await a.close()
    await asyncio.sleep(0.05)  # a clean close (1000) ends the session at once
    ws = await raw_socket(server, http)
    await ws.send_json(
        {
            "op": 7,
            "d": {
                "server_id": a.server_id,
                "session_id": a.session_id,
                "token": a.token,
                "seq_ack": a.seq_ack,
            },
        }
    )
    assert (await close_of(ws))[0] == 4006


async def test_lvsp_removal_move_and_channel_delete_disconnect_with_4014(
    server: VoiceServer, control: LvspClient, http: aiohttp.ClientSession
) -> None:
    a, b, c = await joined(server, control, http, 3201, 3202, 3203)
    await control.request(
        6, {"type": 1, "info": {"user_id": "3201", "channel_id": None, "guild_id": str(GUILD)}}
    )
    assert await a.wait_closed() == 4014
    await b.wait_op(13)
    assert b.ops(13)[0]["d"] == {"user_id": "3201"}
    # the Remove proposal re-forms the group without A
    await b.wait_for(lambda: b.dave is not None and len(b.dave.get_user_ids()) == 2)
    await c.wait_for(lambda: c.dave is not None and len(c.dave.get_user_ids()) == 2)
    moved = await voice_state(control, 3202, CHANNEL + 1)
    assert moved["token"] != b.token
    assert await b.wait_closed() == 4014
    await control.request(6, {"type": 0, "info": {"id": str(CHANNEL), "deleted": True}})
    assert await c.wait_closed() == 4014
    await asyncio.sleep(0.05)
    assert server.gateway.member_count(CHANNEL) == 0
    for m in (a, b, c):
        await m.close()


async def test_server_mute_and_deaf_stop_forwarding(
    server: VoiceServer, control: LvspClient, http: aiohttp.ClientSession
) -> None:
    a, b = await joined(server, control, http, 3301, 3302)
    await control.request(
        6,
        {
            "type": 1,
            "info": {
                "user_id": "3301",
                "channel_id": str(CHANNEL),
                "guild_id": str(GUILD),
                "mute": True,
            },
        },
    )
    await a.play(tone_opus(440, 0.1))
    await asyncio.sleep(0.1)
    assert not b.opened(a.ssrc)
    assert server.stats()["channels"][str(CHANNEL)]["dropped"] == 10
    await control.request(
        6,
        {
            "type": 1,
            "info": {
                "user_id": "3301",
                "channel_id": str(CHANNEL),
                "guild_id": str(GUILD),
                "mute": False,
            },
        },
    )
    await control.request(
        6,
        {
            "type": 1,
            "info": {
                "user_id": "3302",
                "channel_id": str(CHANNEL),
                "guild_id": str(GUILD),
                "deaf": True,
            },
        },
    )
    await a.play(tone_opus(440, 0.1))
    await asyncio.sleep(0.1)
    assert not b.opened(a.ssrc)
    assert server.stats()["channels"][str(CHANNEL)]["packets_out"] == 0
    await a.close()
    await b.close()


async def test_member_without_dave_downgrades_a_channel_that_allows_it(
    server: VoiceServer, control: LvspClient, http: aiohttp.ClientSession
) -> None:
    await control.request(6, {"type": 0, "info": {"id": str(CHANNEL), "dave_required": False}})
    a, b = await joined(server, control, http, 3401, 3402)
    c = member(server, await voice_state(control, 3403), max_dave=0)
    await c.connect(http)
    for m in (a, b):
        await m.wait_op(21)
        assert m.ops(21)[0]["d"]["protocol_version"] == 0
        await m.wait_op(22)
        assert m.dave_version == 0
    tone = tone_opus(440, 0.3)
    await a.play(tone)
    await c.wait_for(lambda: len(c.opened(a.ssrc)) >= len(tone) + 5)
    frames = [o.payload for o in c.opened(a.ssrc)]
    assert frames[: len(tone)] == tone  # plain opus after the downgrade executed
    for m in (a, b, c):
        await m.close()


@pytest.mark.parametrize(
    "server_config", [VoiceServerConfig(port=0, lvsp_token=TOKEN, heartbeat_interval=0.2)]
)
async def test_silence_is_4009_session_timeout(
    server: VoiceServer, control: LvspClient, http: aiohttp.ClientSession
) -> None:
    m = member(server, await voice_state(control, 3501))
    await m.connect(http)
    assert m.ops(8)[0]["d"]["heartbeat_interval"] == 200
    assert await m.wait_closed() == 4009
    await asyncio.sleep(0.05)
    assert server.gateway.member_count(CHANNEL) == 0
    await m.close()


async def test_identify_again_replaces_the_old_session(
    server: VoiceServer, control: LvspClient, http: aiohttp.ClientSession
) -> None:
    info = await voice_state(control, 3601)
    [b] = await joined(server, control, http, 3602)
    first = member(server, info)
    await first.connect(http)
    second = member(server, info)
    await second.connect(http)
    assert await first.wait_closed() == 4006
    await b.wait_op(13)
    await b.wait_op(11, 3)  # first joined, left (op 13), second joined
    assert [m["d"] for m in b.ops(11)[1:]] == [{"user_ids": ["3601"]}] * 2
    assert second.ssrc != first.ssrc and server.gateway.member_count(CHANNEL) == 2


async def test_an_internal_error_closes_4015_and_the_client_can_resume(
    server: VoiceServer,
    control: LvspClient,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [a] = await joined(server, control, http, 3701)
    room = server.gateway.room(CHANNEL)
    assert room is not None

    def broken(*_: object) -> None:
        raise RuntimeError("injected bug")

    monkeypatch.setattr(room, "handle", broken)
    await a.send(5, {"speaking": 1, "delay": 0, "ssrc": a.ssrc})
    assert await a.wait_closed() == 4015
    monkeypatch.undo()
    await a.resume(http)
    await a.wait_op(9)
    assert server.gateway.member_count(CHANNEL) == 1
