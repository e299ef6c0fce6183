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

_FLT = av.AudioFormat("flt")
_STEREO = av.AudioLayout("stereo")


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
    """The samples of a packed ``flt`` stereo frame (as made by :class:`ToPcm`), without a
    copy: a read-only view of the frame's buffer, which it keeps alive. Read-only because
    libav may still share the buffer (a filter graph passes frames through); whoever changes
    samples writes a new array."""
    array = _samples(frame, frame.samples)
    array.flags.writeable = False
    return array


def _samples(frame: av.AudioFrame, n: int) -> Pcm:
    """The first ``n`` samples of a packed float stereo frame, as an array over its buffer."""
    # AudioPlane has the buffer protocol; PyAV's type stubs do not say so.
    array: Pcm = np.frombuffer(frame.planes[0], np.float32, 2 * n).reshape(-1, 2)  # type: ignore[call-overload]
    return array


class ToPcm:
    """Resamples decoded frames of any rate, layout and format to the pipeline format.

    With ``frame_size`` libav also cuts the output into blocks of that many samples (the
    last one of a stream shorter), so a reader hands the mixer whole 20 ms frames and no
    Python re-chunks them (issue 17: a numpy slice and copy per frame cost more than 10 % of
    a transcode)."""

    def __init__(self, frame_size: int = 0) -> None:
        self._resampler = av.AudioResampler(
            format="flt", layout="stereo", rate=RATE, frame_size=frame_size or None
        )

    def frames(self, frame: av.AudioFrame | None) -> list[av.AudioFrame]:
        """Convert one decoded frame, as libav's frames; ``None`` flushes the tail."""
        return self._resampler.resample(frame)

    def blocks(self, frame: av.AudioFrame | None) -> list[Pcm]:
        """:meth:`frames` as arrays."""
        return [frame_pcm(f) for f in self._resampler.resample(frame)]

    def convert(self, frame: av.AudioFrame | None) -> Pcm:
        """:meth:`blocks` as one array."""
        out = self.blocks(frame)
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

    def encode(self, pcm: Pcm, gain: float | Pcm = 1.0) -> bytes:
        """Encode exactly 960 samples times ``gain`` (a number, or a ramp of shape (960, 1))
        into one opus packet.

        The samples are written once, scaled and clipped to [-1, 1], straight into the
        buffer of the frame libopus reads: no intermediate arrays (issue 17)."""
        if pcm.shape != (FRAME_SAMPLES, 2):
            raise ValueError(f"OpusEncoder.encode expects (960, 2) samples, got {pcm.shape}")
        frame = av.AudioFrame(format=_FLT, layout=_STEREO, samples=FRAME_SAMPLES)
        dst = _samples(frame, FRAME_SAMPLES)
        if not isinstance(gain, np.ndarray) and gain == 1.0:
            np.minimum(pcm, 1.0, out=dst)
        else:
            np.multiply(pcm, gain, out=dst)
            np.minimum(dst, 1.0, out=dst)
        np.maximum(dst, -1.0, out=dst)
        frame.sample_rate = RATE
        frame.pts = self._pts  # the time base is the encoder's (1/48000) when none is set
        self._pts += FRAME_SAMPLES
        return self._encode(frame)

    def encode_frame(self, frame: av.AudioFrame) -> bytes:
        """Encode a frame of 960 samples in the pipeline format (as :class:`ToPcm` cuts them)
        as it is: no copy, no gain, no clipping. For audio nothing changed since it was
        decoded (unity volume, no filter, no fade, no layer): such samples reach libopus as
        the source has them, as an opus source's packets are forwarded as they are."""
        frame.pts = self._pts
        self._pts += FRAME_SAMPLES
        return self._encode(frame)

    def _encode(self, frame: av.AudioFrame) -> bytes:
        packets = self._ctx.encode(frame)
        return bytes(packets[0]) if len(packets) == 1 else b"".join(bytes(p) for p in packets)


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
