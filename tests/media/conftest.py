from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from audionode.config import EngineConfig
from audionode.media.events import PipelineEvent
from audionode.media.pipeline import Pipeline
from tests.media.mediafiles import FORMATS, Recorder, tone, write_media


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One second of 440 Hz in every format, plus tracks made for specific tests."""
    d = tmp_path_factory.mktemp("media")
    a440 = tone([440], 1.0)
    for kind in FORMATS:
        write_media(d / f"a440.{kind}", a440, kind)
    write_media(d / "b660.wav", tone([660], 1.0), "wav")
    write_media(d / "b660.opus", tone([660], 1.0), "opus")
    # a track whose halves differ (440 Hz then 880 Hz), to check seeking by content
    write_media(d / "halves.wav", np.concatenate(
        [tone([440], 1.0), tone([880], 1.0)]), "wav")
    write_media(d / "halves.opus", np.concatenate(
        [tone([440], 1.0), tone([880], 1.0)]), "opus")
    # odd lengths: a join that does not fall on a 20 ms frame boundary
    write_media(d / "odd440.wav", tone([440], 0.517), "wav")
    write_media(d / "odd660.wav", tone([660], 0.503), "wav")
    write_media(d / "long440.opus", tone([440], 3.0), "opus")
    write_media(d / "long440.wav", tone([440], 3.0), "wav")
    write_media(d / "stereo.wav", tone([1000], 1.0), "wav")
    return d


@pytest.fixture
def events() -> queue.Queue[PipelineEvent]:
    return queue.Queue()


@pytest.fixture
def pipeline(events: queue.Queue[PipelineEvent]) -> Iterator[Pipeline]:
    p = Pipeline(EngineConfig(), on_event=events.put)
    p.start()
    yield p
    p.close()


@pytest.fixture
def rec(pipeline: Pipeline, events: queue.Queue[PipelineEvent]) -> Recorder:
    return Recorder(pipeline, events)
