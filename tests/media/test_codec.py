"""The encoder's two entries: samples (gain and clipping written into libopus's frame) and
decoded frames handed on as they are (issue 17); both must give libopus the same audio."""

from __future__ import annotations

import av
import numpy as np

from audionode.media.codec import OpusEncoder, ToPcm, frame_pcm
from tests.media.mediafiles import tone

SAMPLES = tone([440, 1250], 1.0, amplitude=0.6)
"""50 frames of in-range audio."""


def _blocks(pcm: np.ndarray) -> list[np.ndarray]:
    return [pcm[i : i + 960] for i in range(0, len(pcm), 960)]


def _frames(pcm: np.ndarray) -> list[av.AudioFrame]:
    """``pcm`` as the reader gets it: through ToPcm's resampler, cut into 960-sample frames."""
    src = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(pcm.reshape(1, -1)), format="flt", layout="stereo"
    )
    src.sample_rate, src.pts = 48000, 0
    to_pcm = ToPcm(960)
    return to_pcm.frames(src) + to_pcm.frames(None)


def test_a_decoded_frame_encodes_like_its_samples() -> None:
    frames = _frames(SAMPLES)
    assert [f.samples for f in frames] == [960] * 50
    by_frame, by_samples = OpusEncoder(128000, 10), OpusEncoder(128000, 10)
    assert [by_frame.encode_frame(f) for f in frames] == [
        by_samples.encode(frame_pcm(f)) for f in frames
    ]


def test_gain_and_clipping_are_applied_on_the_way_into_the_encoder() -> None:
    loud = SAMPLES * np.float32(2.5)  # goes far past full scale
    ramp = np.linspace(1.0, 0.2, 960, dtype=np.float32)[:, None]
    fused, reference = OpusEncoder(128000, 10), OpusEncoder(128000, 10)
    got = [fused.encode(b, 2.5) for b in _blocks(SAMPLES)] + [fused.encode(SAMPLES[:960], ramp)]
    want = [reference.encode(np.clip(b, -1.0, 1.0)) for b in _blocks(loud)]
    want.append(reference.encode(SAMPLES[:960] * ramp))
    assert got == want
