"""Opcodes, payload structs and the close-code policy (docs/discord-voice.md §1.3, §1.7)."""

from __future__ import annotations

import json

import msgspec
import pytest

from audionode.voice.opcodes import (
    BINARY_OPS,
    CLOSE_REASONS,
    PAYLOAD_TYPES,
    CloseAction,
    CloseCode,
    Heartbeat,
    Hello,
    Identify,
    Op,
    Ready,
    SelectProtocol,
    SelectProtocolData,
    SessionDescription,
    Speaking,
    close_action,
    is_bug,
)


def test_opcode_numbers_match_the_spec_table() -> None:
    assert Op.IDENTIFY == 0 and Op.HELLO == 8 and Op.RESUMED == 9
    assert Op.CLIENTS_CONNECT == 11 and Op.CLIENT_DISCONNECT == 13
    assert [int(o) for o in BINARY_OPS] == sorted(range(25, 31))
    assert Op.DAVE_MLS_INVALID_COMMIT_WELCOME == 31 and Op.NO_ROUTE == 32
    assert 10 not in {int(o) for o in Op}


@pytest.mark.parametrize(
    ("code", "action"),
    [
        (1000, CloseAction.DONE),
        (1006, CloseAction.RESUME),
        (None, CloseAction.RESUME),
        (4015, CloseAction.RESUME),
        (4013, CloseAction.RESUME),
        (4014, CloseAction.DISCONNECT),
        (4022, CloseAction.DISCONNECT),
        (4006, CloseAction.DISCONNECT),
        (4009, CloseAction.DISCONNECT),
        (4011, CloseAction.DISCONNECT),
        (4004, CloseAction.DISCONNECT),
        (4021, CloseAction.STOP),
        (4001, CloseAction.RECONNECT),
        (4002, CloseAction.RECONNECT),
        (4003, CloseAction.RECONNECT),
        (4005, CloseAction.RECONNECT),
        (4012, CloseAction.RECONNECT),
        (4016, CloseAction.RECONNECT),
        (4017, CloseAction.RECONNECT),
        (4020, CloseAction.RECONNECT),
        (4999, CloseAction.RECONNECT),
        (1001, CloseAction.RESUME),
        (1012, CloseAction.RESUME),
    ],
)
def test_close_policy_follows_the_table(code: int | None, action: CloseAction) -> None:
    assert close_action(code) is action


def test_bug_codes_are_flagged_and_others_are_not() -> None:
    assert is_bug(4017) and is_bug(4020) and is_bug(4001)
    assert not is_bug(4015) and not is_bug(4014) and not is_bug(None) and not is_bug(1000)


def test_close_reasons_cover_every_4xxx_code_a_server_sends() -> None:
    for code in (4001, 4002, 4003, 4004, 4005, 4006, 4014, 4016, 4017, 4020):
        assert CLOSE_REASONS[code]
    assert CLOSE_REASONS[CloseCode.DAVE_REQUIRED] == "E2EE/DAVE protocol required"


def test_identify_decodes_what_discord_py_sends_and_ignores_extra_fields() -> None:
    wire = {
        "server_id": "1",
        "user_id": "2",
        "session_id": "s",
        "token": "t",
        "max_dave_protocol_version": 1,
        "video": True,
        "streams": [],
    }
    ident = msgspec.json.decode(json.dumps(wire), type=Identify)
    assert ident.user_id == "2" and ident.max_dave_protocol_version == 1
    assert ident.channel_id is msgspec.UNSET
    # Unset optional fields are left out; plain defaults are always sent.
    out = json.loads(msgspec.json.encode(Identify("1", "2", "s", "t")))
    assert "channel_id" not in out and out["max_dave_protocol_version"] == 0


def test_defaults_that_peers_index_directly_are_always_encoded() -> None:
    sd = json.loads(msgspec.json.encode(SessionDescription("m", [0] * 32)))
    assert sd == {
        "mode": "m",
        "secret_key": [0] * 32,
        "dave_protocol_version": 0,
        "audio_codec": "opus",
    }
    assert json.loads(msgspec.json.encode(Hello(13750))) == {"heartbeat_interval": 13750, "v": 8}
    assert json.loads(msgspec.json.encode(Heartbeat(5))) == {"t": 5, "seq_ack": -1}


def test_speaking_both_directions_omit_the_other_side_fields() -> None:
    client = json.loads(msgspec.json.encode(Speaking(speaking=1, ssrc=7, delay=0)))
    assert client == {"speaking": 1, "ssrc": 7, "delay": 0}
    server = json.loads(msgspec.json.encode(Speaking(speaking=1, ssrc=7, user_id="9")))
    assert server == {"speaking": 1, "ssrc": 7, "user_id": "9"}


def test_select_protocol_nested_shape() -> None:
    sp = SelectProtocol(protocol="udp", data=SelectProtocolData("1.2.3.4", 5, "m"))
    assert json.loads(msgspec.json.encode(sp)) == {
        "protocol": "udp",
        "data": {"address": "1.2.3.4", "port": 5, "mode": "m"},
    }


def test_bad_payload_error_names_the_field() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"\$\.ssrc"):
        msgspec.json.decode(b'{"ssrc":"x","ip":"a","port":1,"modes":[]}', type=Ready)


def test_every_json_op_with_fields_has_a_struct() -> None:
    for op in (0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 13, 21, 22, 23, 24, 31):
        assert Op(op) in PAYLOAD_TYPES
    assert not set(PAYLOAD_TYPES) & BINARY_OPS
