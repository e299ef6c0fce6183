"""PyAV glue for the pipeline: the libopus encoder, an opus packet decoder, and conversion of
decoded frames to the pipeline's sample format.

Inside the pipeline audio is always float32, 48 kHz, stereo, interleaved: a numpy array of
shape ``(samples, 2)``. Opus frames are 20 ms (960 samples per channel).
"""

from __future__ import annotations

from fractions import Fraction

import av
import av.logging
import numpy as np
import numpy.typing as npt

from audionode.media.frames import FRAME_SAMPLES

RATE = 48000
TIME_BASE = Fraction(1, RATE)

Pcm = npt.NDArray[np.float32]
"""Interleaved float32 stereo at 48 kHz, shape (samples, 2)."""

# libav only reports through its log; ERROR keeps the cost nil and the messages available
# (filters.py captures them to explain an invalid filter).
av.logging.set_level(av.logging.ERROR)


def empty_pcm() -> Pcm:
    return np.zeros((0, 2), dtype=np.float32)


def pcm_frame(pcm: Pcm, pts: int) -> av.AudioFrame:
    """Wrap ``pcm`` as a packed float stereo AudioFrame with a 1/48000 time base."""
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(pcm, dtype=np.float32).reshape(1, -1), format="flt", layout="stereo"
    )
    frame.sample_rate = RATE
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame


def frame_pcm(frame: av.AudioFrame) -> Pcm:
    """The samples of a packed ``flt`` stereo frame (as made by :class:`ToPcm`)."""
    array: Pcm = frame.to_ndarray().reshape(-1, 2).astype(np.float32, copy=False)
    return array


class ToPcm:
    """Resamples decoded frames of any rate, layout and format to the pipeline format."""

    def __init__(self) -> None:
        self._resampler = av.AudioResampler(format="flt", layout="stereo", rate=RATE)

    def convert(self, frame: av.AudioFrame | None) -> Pcm:
        """Convert one decoded frame; ``None`` flushes the resampler's tail."""
        out = [frame_pcm(f) for f in self._resampler.resample(frame)]
        if not out:
            return empty_pcm()
        return out[0] if len(out) == 1 else np.concatenate(out)


class OpusEncoder:
    """libopus through PyAV: 20 ms frames, 48 kHz stereo, one packet per :meth:`encode`."""

    def __init__(self, bitrate: int, complexity: int) -> None:
        ctx = av.CodecContext.create("libopus", "w")
        assert isinstance(ctx, av.AudioCodecContext)
        ctx.sample_rate = RATE
        ctx.layout = "stereo"
        ctx.format = "flt"
        ctx.bit_rate = bitrate
        ctx.time_base = TIME_BASE
        # compression_level is libavcodec's name for the libopus complexity (0-10).
        ctx.options = {"application": "audio", "compression_level": str(complexity)}
        self._ctx = ctx
        self._pts = 0

    def encode(self, pcm: Pcm) -> bytes:
        """Encode exactly 960 samples into one opus packet."""
        if pcm.shape != (FRAME_SAMPLES, 2):
            raise ValueError(f"OpusEncoder.encode expects (960, 2) samples, got {pcm.shape}")
        packets = self._ctx.encode(pcm_frame(np.clip(pcm, -1.0, 1.0), self._pts))
        self._pts += FRAME_SAMPLES
        return b"".join(bytes(p) for p in packets)


class OpusDecoder:
    """Decodes single opus packets (taken from a demuxer) to pipeline PCM."""

    def __init__(self) -> None:
        ctx = av.CodecContext.create("libopus", "r")
        assert isinstance(ctx, av.AudioCodecContext)
        ctx.sample_rate = RATE
        ctx.layout = "stereo"
        self._ctx = ctx
        self._pcm = ToPcm()

    def decode(self, packet: bytes) -> Pcm:
        out = [self._pcm.convert(f) for f in self._ctx.decode(av.Packet(packet))]
        if not out:
            return empty_pcm()
        return out[0] if len(out) == 1 else np.concatenate(out)

    def reset(self) -> None:
        """Forget the decoder state (after packets were forwarded without decoding)."""
        self._ctx.flush_buffers()
