import pytest
from hypothesis import given
from hypothesis import strategies as st

from audionode.errors import BadRequest
from audionode.protocol.track_token import derive_key, sign, verify

KEY = derive_key("pw")


def test_round_trip() -> None:
    info = {"source": "tone", "id": "tone:440", "title": "A4", "duration": 5.0}
    assert verify(sign(info, KEY), KEY) == info


def test_other_password_or_tampering_is_refused() -> None:
    token = sign({"uri": "http://127.0.0.1/x"}, KEY)
    with pytest.raises(BadRequest, match="issued by this node"):
        verify(token, derive_key("other"))
    body, tag = token.split(".")
    forged = sign({"uri": "file:///etc/passwd"}, derive_key("attacker")).split(".")[0]
    with pytest.raises(BadRequest):
        verify(f"{forged}.{tag}", KEY)
    with pytest.raises(BadRequest):
        verify(f"{body}.{tag[:-2]}AA", KEY)


@given(st.one_of(st.text(max_size=300), st.integers(), st.none(), st.lists(st.text())))
def test_garbage_is_refused_with_bad_request(token: object) -> None:
    with pytest.raises(BadRequest, match="`encoded`"):
        verify(token, KEY)
