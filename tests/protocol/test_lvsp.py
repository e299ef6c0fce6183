"""LVSP codec (seed 001; docs/protocols/lvsp.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audionode.protocol.lvsp import (
    ChannelInfo,
    CloseCode,
    Info,
    InfoType,
    LvspError,
    Op,
    VoiceInfo,
    VstRequest,
    decode_client,
)


def frame(op: int, d: Any) -> str:
    return json.dumps({"op": op, "d": d})


# --- codec ---------------------------------------------------------------------------------


def test_decodes_every_client_op() -> None:
    assert decode_client(frame(1, {"token": "t"}))[0] is Op.IDENTIFY
    op, msg = decode_client(frame(2, {"token": "t", "seq": 3}))
    assert op is Op.RESUME and msg.seq == 3  # type: ignore[union-attr]
    assert decode_client(frame(4, {"s": 0}))[0] is Op.HEARTBEAT
    op, msg = decode_client(frame(6, {"type": 0, "info": {"id": "5", "bitrate": 96000}}))
    assert msg == Info(InfoType.CHANNEL, ChannelInfo("5", bitrate=96000))
    op, msg = decode_client(frame(6, {"type": 1, "info": {"user_id": "1", "channel_id": None}}))
    assert msg == Info(InfoType.VST, VoiceInfo("1", None))
    op, msg = decode_client(frame(7, {"user_id": "1", "channel_id": "2", "guild_id": "3"}))
    assert msg == VstRequest("1", "2", "3")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json", "not valid JSON"),
        ("[1]", "Expected `object`, got `array`"),
        (frame(1, None), "IDENTIFY: Expected `object`, got `null` - at `d`"),
        (frame(1, {}), "IDENTIFY: Object missing required field `token` - at `d`"),
        (frame(2, {"token": "t", "seq": -1}), "RESUME: Expected `int` >= 0 - at `d.seq`"),
        (frame(6, {"type": 9, "info": {}}), "INFO: Invalid enum value 9 - at `d.type`"),
        (frame(6, {"type": 0, "info": {"id": 5}}), "Expected `str`, got `int` - at `d.info.id`"),
        (frame(6, {"type": 1, "info": {"user_id": "1"}}), "field `channel_id` - at `d.info`"),
        (frame(7, {"user_id": "x", "channel_id": "2"}), "matching regex"),
        (frame(6, {"type": 0, "info": {"id": "1", "bitrate": 5}}), ">= 8000 - at `d.info.bitrate`"),
        (frame(3, {}), "op 3 is not a client op"),
        ('{"op": "1", "d": {}}', "Expected `int`, got `str` - at `$.op`"),
    ],
)
def test_bad_input_names_the_field(raw: str, reason: str) -> None:
    with pytest.raises(LvspError) as info:
        decode_client(raw)
    assert info.value.code == CloseCode.DECODE_ERROR
    assert reason in info.value.reason


@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_decode_never_raises_anything_but_lvsp_error(raw: bytes | str) -> None:
    try:
        decode_client(raw)
    except LvspError as e:
        assert e.code == CloseCode.DECODE_ERROR
