"""The Discodo command catalogue: every route's input, whatever it is, becomes a typed command
or a 400 naming the field (property tests, no server)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audionode.control import commands as c
from audionode.errors import BadRequest
from audionode.protocol.discodo_routes import BY_NAME, ROUTES, Route, argument_fields, build

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


def bodies(route: Route) -> st.SearchStrategy[Any]:
    """Random JSON, and objects using the route's own field names with random values."""
    names = argument_fields(route) or ["x"]
    shaped = st.dictionaries(st.sampled_from(names), json_values, max_size=len(names))
    return json_values | shaped


@settings(max_examples=60)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
@given(data=st.data())
def test_any_body_is_a_command_or_a_400_naming_a_field(route: Route, data: st.DataObject) -> None:
    body = data.draw(bodies(route))
    try:
        _, command = build(route, body, 5, "")
    except BadRequest as e:
        assert e.message.startswith(
            ("field `", "invalid filter", "unknown filter", "unknown param")
        )
        return
    assert isinstance(command, msgspec.Struct)


def test_a_valid_body_becomes_the_expected_command() -> None:
    assert build(BY_NAME["seek"], {"offset": "12.5"}, None, "")[1] == c.Seek(position=12.5)
    put = build(BY_NAME["putSource"], {"source": [{"encoded": "t", "context": {"a": 1}}]}, None, "")
    assert put[1] == c.Put(
        tracks=(c.TrackIn(token="t", field="source[0].encoded", context={"a": 1}),), as_list=True
    )
    moved = {"source": {"_type": "AudioSource", "encoded": "t", "position": 3.5}}
    assert build(BY_NAME["putSource"], moved, None, "")[1].tracks[0].start_position == 3.5
    with pytest.raises(BadRequest, match=r"field `offset`: expected `float` <= 604800.0"):
        build(BY_NAME["seek"], {"offset": 1e300}, None, "")
    with pytest.raises(BadRequest, match="field `mode`: expected one of off, track, queue"):
        build(BY_NAME["setRepeat"], {"mode": "loud"}, None, "")
