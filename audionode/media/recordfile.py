"""One Ogg/Opus file written from PCM (the recordings of ``engine/recording.py``).

PyAV's libopus encoder and Ogg muxer: 48 kHz stereo, 20 ms packets. Call :meth:`write` with
PCM of any length (it is encoded in 960-sample frames, the rest kept for the next call) and
:meth:`close` once; both run on the recording's writer thread (libav releases the GIL).
"""

from __future__ import annotations

import av
import av.container
import numpy as np

from audionode.media.codec import RATE, Pcm, pcm_frame
from audionode.media.frames import FRAME_SAMPLES


class OggOpusFile:
    """``OggOpusFile(path, bitrate)``; :attr:`bytes` counts the opus data written so far."""

    def __init__(self, path: str, bitrate: int) -> None:
        self.path = path
        container = av.open(path, "w", format="ogg")
        assert isinstance(container, av.container.OutputContainer)
        stream = container.add_stream("libopus", rate=RATE, layout="stereo")
        stream.format = "flt"
        stream.bit_rate = bitrate
        self._container = container
        self._stream = stream
        self._pending: Pcm = np.zeros((0, 2), dtype=np.float32)
        self._pts = 0
        self.bytes = 0
        self.samples = 0
        """Samples per channel written (padding of the last frame included)."""

    def write(self, pcm: Pcm) -> int:
        """Add samples; returns the opus bytes this call produced."""
        if len(self._pending):
            pcm = np.concatenate([self._pending, pcm])
        whole = len(pcm) - len(pcm) % FRAME_SAMPLES
        produced = 0
        for start in range(0, whole, FRAME_SAMPLES):
            produced += self._encode(pcm[start : start + FRAME_SAMPLES])
        self._pending = pcm[whole:]
        return produced

    def _encode(self, block: Pcm | None) -> int:
        produced = 0
        frame = None
        if block is not None:
            frame = pcm_frame(np.clip(block, -1.0, 1.0), self._pts)
            self._pts += FRAME_SAMPLES
            self.samples += FRAME_SAMPLES
        for packet in self._stream.encode(frame):
            produced += packet.size
            self._container.mux(packet)
        self.bytes += produced
        return produced

    def close(self) -> None:
        """Pad the last partial frame with silence, flush the encoder, finish the file."""
        if len(self._pending):
            pad = np.zeros((FRAME_SAMPLES - len(self._pending), 2), dtype=np.float32)
            self._encode(np.concatenate([self._pending, pad]))
            self._pending = self._pending[:0]
        self._encode(None)
        self._container.close()
