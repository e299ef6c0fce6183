"""The worker pool: results, errors, and a timeout that really frees the worker."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from audionode.errors import Forbidden, SourceError
from audionode.netpolicy import InputPolicy
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


async def test_a_function_named_by_string_is_imported_only_in_the_worker() -> None:
    pool = ProcessPool(1, 20.0, name="test")
    try:
        assert await pool.run("math:factorial", 5) == 120
        assert await pool.run("os:getpid") != os.getpid()
    finally:
        await pool.close()


async def test_the_workers_error_class_reaches_the_caller() -> None:
    """A refusal raised in a worker (the probe's guard) stays a Forbidden, not a 502."""
    pool = ProcessPool(1, 20.0, name="test")
    try:
        with pytest.raises(Forbidden, match=r"^refusing to fetch from 10\.0\.0\.1: not a public"):
            await pool.run("audionode.netpolicy:pick", "10.0.0.1", 80, InputPolicy())
        with pytest.raises(SourceError, match=r"^division by zero$"):
            await pool.run("operator:truediv", 1, 0)
    finally:
        await pool.close()


async def test_one_key_cannot_take_every_worker_nor_the_shared_executor() -> None:
    """Three slow calls of one host hold at most all workers but one; a call of another host
    starts at once. Waiting for workers uses the pool's threads, not the loop's executor."""
    pool = ProcessPool(3, 20.0, name="test")
    try:
        await asyncio.gather(*(pool.run(os.getpid) for _ in range(3)))  # start all three
        slow = [asyncio.ensure_future(pool.run(time.sleep, 1.0, key="slow.example"))
                for _ in range(3)]
        await asyncio.sleep(0.1)
        assert pool.slots.busy("slow.example") == 3
        started = time.monotonic()
        assert await pool.run(pow, 2, 3, key="other.example") == 8
        assert time.monotonic() - started < 0.2
        default = asyncio.get_running_loop()._default_executor  # type: ignore[attr-defined]
        assert default is None or not default._threads
        await asyncio.gather(*slow)
    finally:
        await pool.close()
