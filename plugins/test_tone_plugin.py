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
        ("tone:440?rate=96000", "`rate` must be between 8000 and 48000"),
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


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_seconds": "long"}, "tone.max_seconds: expected a number from 0.001 to 3600"),
        ({"max_rate": 400000}, "tone.max_rate: expected a number from 8000 to 192000"),
        ({"max_sceonds": 5}, "unknown option(s) ['max_sceonds']"),
    ],
)
def test_bad_options_skip_the_plugin_naming_the_key(
    options: dict[str, object], message: str
) -> None:
    config = SourcesConfig(
        plugins=["tone"],
        plugins_dir=str(HERE),
        plugin_options={"tone": options},
        http=HttpSourceConfig(enabled=False),
        ytdlp=YtdlpSourceConfig(enabled=False),
    )
    manager = SourceManager.from_config(config)
    (failure,) = manager.failures
    assert failure.plugin == "tone" and message in failure.message


async def test_max_rate_bounds_the_rate_and_its_default() -> None:
    config = SourcesConfig(
        plugins=["tone"],
        plugins_dir=str(HERE),
        plugin_options={"tone": {"max_rate": 16000, "max_seconds": 2}},
        http=HttpSourceConfig(enabled=False),
        ytdlp=YtdlpSourceConfig(enabled=False),
    )
    manager = SourceManager.from_config(config)
    result = await manager.load("tone:440?seconds=2")
    rate, pcm = read_wav(await manager.open(result.tracks[0]))
    assert rate == 16000 and len(pcm) == 32000  # 2 s * 16 kHz * 4 bytes: the size bound
    refused = await manager.load("tone:440?rate=22050")
    assert "`rate` must be between 8000 and 16000" in (refused.error or "")
