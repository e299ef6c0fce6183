"""Which plays can share one encode: the key of a shared encode (decision 0018).

Two plays share a decode/filter/encode (docs/decisions/0018-shared-encode.md) when their
keys are equal. The engine (``engine/engine.py``) joins players by it; the worker pool
(``engine/worker.py``) uses the same key in the control process to place a player that starts
such a play on the worker already encoding it (docs/ARCHITECTURE.md, "Admission and
placement"). Pure and light: no media.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from audionode.playable import Playable

ShareKey = tuple[object, ...]
VOLUME: Final = 5
"""Index of the volume in a :data:`ShareKey`."""
FILTERS: Final = 6
"""Index of the filter set (canonical JSON) in a :data:`ShareKey`."""


def filters_key(filters: Mapping[str, Any]) -> str:
    """The filter set as the key holds it (key order does not matter)."""
    return json.dumps(filters, sort_keys=True)


def share_key(
    source: Playable,
    start_ms: int,
    end_ms: int | None,
    volume: float,
    filters: Mapping[str, Any],
) -> ShareKey | None:
    """The key of the shared encode a play of ``source`` may join, or None when it plays alone:
    only a live URL from its live edge (no start or end position). The key holds everything
    the encoded frames depend on: the URL, request headers, demuxer options, container format,
    input policy, then the volume and the filter set (applied before the encode)."""
    if not source.is_live or source.url is None or start_ms or end_ms is not None:
        return None
    return (
        source.url,
        tuple(sorted(source.headers.items())),
        tuple(sorted(source.options.items())),
        source.format,
        msgspec.json.encode(source.policy),
        volume,
        filters_key(filters),
    )
