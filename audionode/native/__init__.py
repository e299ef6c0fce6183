"""The native per-packet path, when it is built (docs/decisions/0017-native-packet-path.md).

``_packet`` is a small C extension (``audionode/native/_packet.c``, built by
``audionode/native/build.sh`` from ``make run``/``make test``): per voice connection a
:class:`Channel` with the RTP counters and the op 4 key, and a :class:`Batch` that one tick
fills with every stream's frame and flushes in one call (DAVE frame encryption through davey,
RTP header, AEAD seal in OpenSSL or libsodium, one ``io_uring_enter`` or else ``sendmmsg`` per
socket: decision 0021). It is optional: without it, or
with ``engine.native_packets`` false (:func:`configure`; in the environment
``AUDIONODE_ENGINE__NATIVE_PACKETS=false``), the pure-Python path runs (same bytes on the wire,
tested). :func:`describe` says which path is active; the engine logs it at start.
"""

from __future__ import annotations

from types import ModuleType

_module: ModuleType | None = None
_error: str | None = None
_wanted = True

try:
    from audionode.native import _packet as _loaded
except ImportError as exc:  # not built here (no compiler, libssl or libsodium): Python path
    _error = str(exc)
else:
    _module = _loaded


def built() -> bool:
    """True when the extension is importable (whatever the switch says)."""
    return _module is not None


def configure(wanted: bool) -> None:
    """``engine.native_packets``: whether connections opened from now on in this process use
    the native path (when built). The engine calls it at start."""
    global _wanted
    _wanted = wanted


def enabled() -> bool:
    """True when new connections use the native path: built and not switched off."""
    return _module is not None and _wanted


def module() -> ModuleType | None:
    """The extension when :func:`enabled`, else ``None``."""
    return _module if enabled() else None


def describe() -> str:
    """One line for the log and ``doctor``: which per-packet path runs, and why."""
    if _module is not None and enabled():
        return (
            f"native packet path (C: {_module.OPENSSL_VERSION}, "
            f"libsodium {_module.SODIUM_VERSION}, "
            f"AES-256-GCM by {getattr(_module, 'AES_GCM', 'OpenSSL')}, sends with "
            f"{_send_backend(_module)})"
        )
    if _module is not None:
        return "pure-Python packet path (engine.native_packets is false)"
    return f"pure-Python packet path (native extension not built: {_error})"


_backend: str | None = None


def _send_backend(mod: ModuleType) -> str:
    """How a new ``Batch`` sends here, found once (a ``Batch`` made to ask holds an io_uring
    ring until it is freed). An extension built before decision 0021 has only sendmmsg."""
    global _backend
    if _backend is None:
        _backend = str(getattr(mod.Batch(), "backend", "sendmmsg"))
    return _backend
