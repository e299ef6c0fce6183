"""An opus decoder with loss concealment (PLC) and in-band FEC, for the receive path.

PyAV decodes opus packets but cannot ask libopus to conceal a lost one (an empty packet means
"drain" to libavcodec) nor to rebuild it from the next packet's forward error correction. This
calls the libopus that PyAV's wheel ships (``av.libs/libopus-*.so``) through ctypes:
``opus_decode_float`` with no data is PLC, with the next packet and ``decode_fec=1`` is FEC.
ctypes releases the GIL during each call, so decoding on the receive thread does not hold up
the event loop. Where that library cannot be found (another platform's wheel), the decoder
falls back to PyAV's (``media.codec.OpusDecoder``) and conceals with silence
(:attr:`OpusDecoder.conceals` is then false).
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
from typing import Final

import numpy as np
import numpy.typing as npt

RATE: Final = 48000
CHANNELS: Final = 2
FRAME: Final = 960
"""Samples per channel of a 20 ms frame."""
MAX_FRAME: Final = 5760
"""The longest opus frame (120 ms) a packet may carry."""

Pcm = npt.NDArray[np.float32]
"""Interleaved stereo float32, shape (samples, 2)."""


class OpusDecodeError(ValueError):
    """libopus refused a packet (corrupt, or not opus)."""


def _find_libopus() -> ctypes.CDLL | None:
    spec = importlib.util.find_spec("av")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = os.path.dirname(next(iter(spec.submodule_search_locations)))
    for path in sorted(glob.glob(os.path.join(root, "av.libs", "libopus*.so*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.opus_decoder_create.restype = ctypes.c_void_p
        lib.opus_decoder_create.argtypes = [
            ctypes.c_int32,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_int),
        ]
        lib.opus_decode_float.restype = ctypes.c_int
        lib.opus_decode_float.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int32,
            ctypes.POINTER(ctypes.c_float),
            ctypes.c_int,
            ctypes.c_int,
        ]
        lib.opus_decoder_destroy.restype = None
        lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
        return lib
    return None


_LIB: Final = _find_libopus()


class OpusDecoder:
    """One stream's decoder (opus keeps state between packets: one per SSRC)."""

    def __init__(self) -> None:
        self.conceals = _LIB is not None
        """True when lost frames are concealed by libopus (PLC/FEC), not replaced by silence."""
        self._buf: Pcm = np.zeros((MAX_FRAME, CHANNELS), dtype=np.float32)
        self._state: int | None = None
        self._fallback: object | None = None
        if _LIB is not None:
            err = ctypes.c_int()
            self._state = _LIB.opus_decoder_create(RATE, CHANNELS, ctypes.byref(err))
            if err.value != 0 or not self._state:
                raise RuntimeError(f"opus_decoder_create failed ({err.value})")
        else:
            from audionode.media.codec import OpusDecoder as PyAvDecoder

            self._fallback = PyAvDecoder()

    def decode(self, packet: bytes) -> Pcm:
        """The PCM of one packet; :class:`OpusDecodeError` for one libopus refuses."""
        if self._state is None:
            return self._fallback_decode(packet)
        return self._call(packet, MAX_FRAME, fec=False)

    def conceal(self, next_packet: bytes | None = None) -> Pcm:
        """20 ms standing in for a lost packet: rebuilt from ``next_packet``'s FEC when given
        (libopus falls back to PLC when it carries none), else PLC."""
        if self._state is None:
            return np.zeros((FRAME, CHANNELS), dtype=np.float32)
        if next_packet is not None:
            try:
                return self._call(next_packet, FRAME, fec=True)
            except OpusDecodeError:
                pass
        return self._call(None, FRAME, fec=False)

    def _call(self, packet: bytes | None, frame_size: int, *, fec: bool) -> Pcm:
        assert _LIB is not None
        out = self._buf.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        size = len(packet) if packet is not None else 0
        n = _LIB.opus_decode_float(self._state, packet, size, out, frame_size, int(fec))
        if n < 0:
            raise OpusDecodeError(f"libopus error {n} decoding a {size}-byte packet")
        return self._buf[:n].copy()

    def _fallback_decode(self, packet: bytes) -> Pcm:
        from audionode.media.codec import OpusDecoder as PyAvDecoder

        assert isinstance(self._fallback, PyAvDecoder)
        try:
            pcm: Pcm = self._fallback.decode(packet)
        except ValueError as exc:
            raise OpusDecodeError(str(exc)) from None
        return pcm

    def close(self) -> None:
        if self._state is not None and _LIB is not None:
            _LIB.opus_decoder_destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()
