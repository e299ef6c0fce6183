"""The tone plugin, loaded the way the node loads it (by name from the plugins folder)."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from audionode.config import HttpSourceConfig, SourcesConfig, YtdlpSourceConfig
from audionode.errors import BadRequest
from audionode.sources.api import LoadResult, Playable
from audionode.sources.loader import SourceManager

HERE = Path(__file__).parent


@pytest.fixture
async def manager() -> SourceManager:
    config = SourcesConfig(
        plugins=["tone"],
        plugins_dir=str(HERE),
        plugin_options={"tone": {"max_seconds": 10}},
        http=HttpSourceConfig(enabled=False),
        ytdlp=YtdlpSourceConfig(enabled=False),
    )
    return SourceManager.from_config(config)


def read_wav(playable: Playable) -> tuple[int, np.ndarray]:
    assert playable.data is not None and playable.format == "wav"
    with wave.open(io.BytesIO(playable.data)) as w:
        rate, frames = w.getframerate(), w.readframes(w.getnframes())
        assert w.getnchannels() == 2 and w.getsampwidth() == 2
    return rate, np.frombuffer(frames, "<i2").reshape(-1, 2) / 32767.0


def level(x: np.ndarray, rate: int, freq: float) -> float:
    """Spectrum magnitude within 20 Hz of ``freq``, relative to the strongest bin."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return float(spec[np.abs(freqs - freq) < 20].max() / spec.max())


async def test_a_chord_can_be_found_again_by_fft(manager: SourceManager) -> None:
    result = await manager.load("tone:440+660?seconds=0.5&amplitude=0.8")
    assert result.type == "track"
    track = result.tracks[0]
    assert track.source == "tone" and track.duration_ms == 500
    assert "440+660" in track.title
    rate, pcm = read_wav(await manager.open(track))
    assert rate == 48000 and len(pcm) == 24000
    assert level(pcm[:, 0], rate, 440) > 0.9 and level(pcm[:, 0], rate, 660) > 0.9
    assert level(pcm[:, 0], rate, 550) < 0.01
    assert 0.7 < np.abs(pcm).max() <= 0.8  # amplitude bounds the sum of the tones


async def test_wave_shapes_pan_and_rate(manager: SourceManager) -> None:
    square = await manager.load("tone:1000?wave=square&pan=-1&rate=16000&seconds=0.2")
    rate, pcm = read_wav(await manager.open(square.tracks[0]))
    assert rate == 16000 and len(pcm) == 3200
    assert np.abs(pcm[:, 1]).max() == 0  # panned hard left
    # a square wave has odd harmonics (1/3 of the fundamental at 3 kHz), no even ones
    assert level(pcm[:, 0], rate, 3000) == pytest.approx(1 / 3, abs=0.05)
    assert level(pcm[:, 0], rate, 2000) < 0.01


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("tone:abc", "frequencies must be numbers"),
        ("tone:440?seconds=50", "`seconds` must be between 0.001 and 10"),
        ("tone:440?wave=wobble", "`wave` must be one of"),
        ("tone:440?amplitude=2", "`amplitude` must be between 0 and 1"),
        ("tone:440?color=red", "unknown parameter(s) color"),
        ("tone:99999", "between 0 and 24000 Hz"),
    ],
)
async def test_bad_queries_name_the_parameter(
    manager: SourceManager, query: str, message: str
) -> None:
    result = await manager.load(query)
    assert result == LoadResult.of_error(result.error or "")
    assert message in (result.error or "")


def test_parse_rejects_other_queries() -> None:
    import tone  # the plugins folder is on sys.path under pytest

    with pytest.raises(BadRequest):
        tone.parse("sine:440")


@given(st.text(max_size=40))
def test_any_query_text_parses_or_names_the_problem(text: str) -> None:
    import tone

    try:
        spec = tone.parse("tone:" + text, max_seconds=5)
    except BadRequest as e:
        assert e.message.startswith("tone: ")
        return
    assert 0 < spec.seconds <= 5 and spec.freqs
