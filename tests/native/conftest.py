"""The native packet path's tests need the extension: skipped where it is not built, failed
instead when ``REQUIRE_NATIVE_PACKETS=1`` (``make test`` sets it after building it)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from audionode import native


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if native.built():
        return
    if os.environ.get("REQUIRE_NATIVE_PACKETS") == "1":
        raise pytest.UsageError(f"REQUIRE_NATIVE_PACKETS=1 but {native.describe()}")
    skip = pytest.mark.skip(reason=native.describe())
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(skip)


@pytest.fixture
def python_path() -> Iterator[None]:
    """The test may switch the path (``native.configure``); native again afterwards."""
    try:
        yield
    finally:
        native.configure(True)
