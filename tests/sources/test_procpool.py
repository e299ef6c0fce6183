"""The worker pool: results, errors, and a timeout that really frees the worker."""

from __future__ import annotations

import os
import time

import pytest

from audionode.errors import SourceError
from audionode.sources.procpool import ProcessPool


async def test_calls_run_in_another_process_and_workers_are_reused() -> None:
    pool = ProcessPool(1, 20.0, name="test")
    try:
        assert await pool.run(pow, 2, 10) == 1024
        pid = await pool.run(os.getpid)
        assert pid != os.getpid()
        assert await pool.run(os.getpid) == pid and pool.started == 1
    finally:
        await pool.close()


async def test_workers_run_at_the_configured_niceness() -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)
    pool = ProcessPool(1, 20.0, name="test", nice=7)
    try:
        worker = await pool.run(os.getpid)
        assert os.getpriority(os.PRIO_PROCESS, worker) == min(19, own + 7)
        assert os.getpriority(os.PRIO_PROCESS, 0) == own  # the parent keeps its priority
    finally:
        await pool.close()


async def test_a_failing_call_reports_its_message() -> None:
    pool = ProcessPool(1, 20.0, name="test")
    try:
        with pytest.raises(SourceError, match="invalid literal for int"):
            await pool.run(int, "seven")
        assert await pool.run(int, "7") == 7  # the worker survived
    finally:
        await pool.close()


async def test_a_call_past_its_timeout_is_killed_and_the_pool_recovers() -> None:
    pool = ProcessPool(1, 0.5, name="test")
    try:
        first = await pool.run(os.getpid)
        start = time.monotonic()
        with pytest.raises(SourceError, match=r"test gave up after 0\.5 s"):
            await pool.run(time.sleep, 30)
        assert time.monotonic() - start < 3
        second = await pool.run(os.getpid)
        assert second != first and pool.started == 2
        with pytest.raises(ProcessLookupError):
            os.kill(first, 0)  # the stuck worker is gone, not left running
    finally:
        await pool.close()


async def test_a_closed_pool_refuses_work() -> None:
    pool = ProcessPool(1, 5.0, name="test")
    await pool.close()
    with pytest.raises(SourceError, match="closed"):
        await pool.run(pow, 1, 1)
