"""The control-socket codec: every input maps to a frame or one of two clear errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audionode.errors import BadRequest
from audionode.protocol.discodo import (
    DecodeError,
    GuildRequest,
    Identify,
    decode_frame,
    encode,
    parse,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=10,
)


@given(st.text())
def test_any_text_decodes_or_fails_clearly(text: str) -> None:
    try:
        op, _ = decode_frame(text)
    except (DecodeError, BadRequest):
        return
    assert isinstance(op, str)


@given(st.binary())
def test_binary_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_frame(data)


@given(json_values)
def test_any_payload_parses_or_names_a_field(value: object) -> None:
    for typ in (Identify, GuildRequest):
        try:
            parse(value, typ)
        except BadRequest as e:
            assert e.message.startswith("field `d")


def test_round_trip() -> None:
    assert decode_frame(encode("HEARTBEAT", {"x": 1})) == ("HEARTBEAT", {"x": 1})
    assert json.loads(encode("HELLO")) == {"op": "HELLO", "d": None}


def test_snowflakes_accept_strings_and_ints() -> None:
    assert parse({"user_id": "123", "shard_id": 2}, Identify) == Identify(user_id=123, shard_id=2)
    assert parse({"guild_id": 9}, GuildRequest).guild_id == 9
