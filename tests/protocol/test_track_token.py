"""Track tokens (issue 11 item 6): a random secret, an expiry, the issuing node's name."""

import secrets
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audionode.errors import BadRequest
from audionode.protocol.track_token import sign, verify
from audionode.service.state import fresh_state
from audionode.store import StateFileError, Store

KEY = secrets.token_bytes(32)
NODE = "node-a"
INFO = {"source": "tone", "id": "tone:440", "title": "A4", "duration": 5.0}


def token(
    info: dict[str, object] = INFO, key: bytes = KEY, node: str = NODE, exp: float = 2e9
) -> str:
    return sign(info, key, issuer=node, expires=exp)


def test_round_trip() -> None:
    assert verify(token(), KEY, issuer=NODE, now=1e9) == INFO


def test_other_secret_or_tampering_is_refused() -> None:
    with pytest.raises(BadRequest, match="expected a track token issued by this node"):
        verify(token(), secrets.token_bytes(32), issuer=NODE, now=1e9)
    body, tag = token().split(".")
    forged = token({"uri": "file:///etc/passwd"}, secrets.token_bytes(32)).split(".")[0]
    with pytest.raises(BadRequest, match="issued by this node"):
        verify(f"{forged}.{tag}", KEY, issuer=NODE, now=1e9)
    flipped = tag[:5] + ("B" if tag[5] != "B" else "C") + tag[6:]
    with pytest.raises(BadRequest):
        verify(f"{body}.{flipped}", KEY, issuer=NODE, now=1e9)


def test_expired_token_says_so() -> None:
    with pytest.raises(BadRequest, match=r"field `source.encoded`: the track token expired 2001"):
        verify(token(exp=1e9), KEY, issuer=NODE, now=1e9 + 1, field="source.encoded")


def test_another_nodes_token_names_that_node() -> None:
    other = token(key=secrets.token_bytes(32), node="node-b")
    with pytest.raises(BadRequest, match="issued by node 'node-b', not by this node"):
        verify(other, KEY, issuer=NODE, now=1e9)


@given(st.one_of(st.text(max_size=300), st.integers(), st.none(), st.lists(st.text())))
def test_garbage_is_refused_with_bad_request(garbage: object) -> None:
    with pytest.raises(BadRequest, match="`encoded`"):
        verify(garbage, KEY, issuer=NODE, now=1e9)


def test_the_secret_is_random_and_kept_in_the_state_file(tmp_path: Path) -> None:
    memory_a, memory_b = fresh_state(), fresh_state()
    assert memory_a.token_secret != memory_b.token_secret  # never derived from anything
    path = tmp_path / "state" / "node.db"
    first = Store.open(path)
    kept = first.load().identity
    first.close()
    second = Store.open(path)
    again = second.load().identity
    second.close()
    assert (kept.node_id, kept.token_secret) == (again.node_id, again.token_secret)
    assert len(kept.token_secret) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    path.write_text("{not a database")
    with pytest.raises(StateFileError, match=r"state file .*node.db: not an SQLite database"):
        Store.open(path)
