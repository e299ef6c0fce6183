import pytest

from audionode.errors import Forbidden, Unauthorized
from audionode.web.auth import check_authorization


@pytest.mark.parametrize("header", ["pw", " pw ", "Bearer pw", "bearer pw"])
def test_accepted_forms(header: str) -> None:
    check_authorization(header, "pw")


@pytest.mark.parametrize("header", [None, ""])
def test_missing_is_401(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        check_authorization(header, "pw")


@pytest.mark.parametrize("header", ["pw2", "Bearer", "Bearer pw2", "Basic pw", "PW"])
def test_wrong_is_403(header: str) -> None:
    with pytest.raises(Forbidden):
        check_authorization(header, "pw")
