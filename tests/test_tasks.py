"""``audionode.tasks`` and the client library's copy: stopping a task never swallows the
caller's own cancellation (the hole of ``suppress(CancelledError)`` around ``await task``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from audionode import tasks
from audionode.client import socket as client_socket

Stop = Callable[..., Awaitable[None]]
STOPPERS: list[Stop] = [tasks.cancel_and_wait, client_socket.cancel_and_wait]


async def _slow_to_stop() -> None:
    """A task that takes a while to wind down once cancelled (a close handshake)."""
    try:
        await asyncio.sleep(3600)
    finally:
        await asyncio.shield(asyncio.sleep(0.05))


@pytest.mark.parametrize("stop", STOPPERS)
async def test_a_cancelled_caller_stays_cancelled(stop: Stop) -> None:
    """The caller is cancelled while it waits for the task to end: it must not go on."""
    went_on = asyncio.Event()

    async def caller() -> None:
        child = asyncio.create_task(_slow_to_stop())
        await asyncio.sleep(0)
        await stop(child)
        went_on.set()  # reached only if the caller's cancellation was swallowed

    task = asyncio.create_task(caller())
    await asyncio.sleep(0.01)  # caller is now waiting in stop()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not went_on.is_set()


@pytest.mark.parametrize("stop", STOPPERS)
async def test_the_tasks_own_cancellation_is_absorbed(stop: Stop) -> None:
    children = [asyncio.create_task(_slow_to_stop()) for _ in range(3)]
    await asyncio.sleep(0)
    await stop(*children)
    assert all(c.cancelled() for c in children)


async def test_another_failure_of_the_task_is_raised() -> None:
    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    child = asyncio.create_task(fails_on_cancel())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="cleanup failed"):
        await tasks.cancel_and_wait(child)


async def test_wait_ended_waits_without_cancelling_and_skips_none() -> None:
    done: list[Any] = []

    async def finishes() -> None:
        await asyncio.sleep(0.01)
        done.append(1)

    child = asyncio.create_task(finishes())
    await tasks.wait_ended(None, child)
    assert done == [1] and not child.cancelled()
