"""The CPU figures of ``/status``: samples at a fixed interval, the mean of a window."""

from __future__ import annotations

import asyncio

from audionode.service.cpu import CpuSampler
from tests.conftest import eventually


async def test_the_first_sample_comes_early_and_counts_for_the_time_it_covers() -> None:
    readings = [(50.0, 40.0), (10.0, 10.0)]
    taken: list[tuple[float, float]] = []

    def read() -> tuple[float, float]:
        taken.append(readings[len(taken)])
        return taken[-1]

    sampler = CpuSampler(interval=0.6, read=read)  # the first after 0.5 s, then every 0.6 s
    sampler.start()
    await eventually(lambda: len(taken) == 1)
    first = sampler.figures()
    assert (first["process"], first["system"], first["window"]) == (50.0, 40.0, 0.5)
    await eventually(lambda: len(taken) == 2)
    sampler.close()
    second = sampler.figures()
    assert second["system"] == round((40.0 * 0.5 + 10.0 * 0.6) / 1.1, 2)
    assert second["window"] == 1.1


async def test_the_figures_are_the_means_of_the_last_window() -> None:
    readings = [(10.0 * i, float(i)) for i in range(1, 100)]
    taken: list[tuple[float, float]] = []

    def read() -> tuple[float, float]:
        taken.append(readings[len(taken)])
        return taken[-1]

    sampler = CpuSampler(interval=0.01, window=0.03, read=read)
    assert sampler.figures()["window"] == 0 and sampler.figures()["system"] == 0.0
    sampler.start()
    await eventually(lambda: len(taken) >= 5)
    sampler.close()
    count, last = len(taken), taken[-3:]
    figures = sampler.figures()
    assert figures["process"] == round(sum(p for p, _ in last) / 3, 2)
    assert figures["system"] == round(sum(s for _, s in last) / 3, 2)
    assert figures["window"] == 0.03 and figures["cores"] >= 1
    assert sampler.figures() == figures, "reading changes nothing"
    await asyncio.sleep(0.05)
    assert len(taken) == count, "closed: no more samples"
