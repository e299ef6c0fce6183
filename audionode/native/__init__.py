"""The native per-packet path, when it is built (docs/decisions/0017-native-packet-path.md).

``_packet`` is a small C extension (``audionode/native/_packet.c``, built by
``audionode/native/build.sh`` from ``make run``/``make test``): per voice connection a
:class:`Channel` with the RTP counters and the op 4 key, and a :class:`Batch` that one tick
fills with every stream's frame and flushes in one call (DAVE frame encryption through davey,
RTP header, AEAD seal in OpenSSL or libsodium, ``sendmmsg``). It is optional: without it, or
with ``AUDIONODE_NATIVE=0`` in the environment, the pure-Python path runs (same bytes on the
wire, tested). :func:`describe` says which path is active; the engine logs it at start.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Final

log = logging.getLogger(__name__)

ENV_SWITCH: Final = "AUDIONODE_NATIVE"
"""``0``, ``off``, ``false``, ``python``: the pure-Python path; otherwise native when built."""
_OFF: Final = frozenset({"0", "off", "false", "no", "python"})

_module: ModuleType | None = None
_error: str | None = None

try:
    from audionode.native import _packet as _loaded
except ImportError as exc:  # not built here (no compiler, libssl or libsodium): Python path
    _error = str(exc)
else:
    _module = _loaded


def built() -> bool:
    """True when the extension is importable (whatever the switch says)."""
    return _module is not None


def enabled() -> bool:
    """True when new connections use the native path: built and not switched off."""
    return _module is not None and os.environ.get(ENV_SWITCH, "").strip().lower() not in _OFF


def module() -> ModuleType | None:
    """The extension when :func:`enabled`, else ``None``."""
    return _module if enabled() else None


def describe() -> str:
    """One line for the log and ``doctor``: which per-packet path runs, and why."""
    if _module is not None and enabled():
        return (
            f"native packet path (C: {_module.OPENSSL_VERSION}, "
            f"libsodium {_module.SODIUM_VERSION})"
        )
    if _module is not None:
        return f"pure-Python packet path ({ENV_SWITCH}={os.environ.get(ENV_SWITCH)!r})"
    return f"pure-Python packet path (native extension not built: {_error})"
