"""Stopping a background task without losing the caller's own cancellation.

The usual ``task.cancel()`` then ``with suppress(CancelledError): await task`` has a hole: if
the caller itself is cancelled while it waits for the task, the ``CancelledError`` it receives
is its own, and the ``suppress`` swallows it, so the caller goes on as if nothing had happened
(a ``close()`` inside a loop that was being stopped kept that loop running for ever: the
``bench/streams.py --churn`` load hung its run this way). These helpers tell the two apart with
``Task.cancelling()`` (Python 3.11). The client library keeps its own copy
(``audionode/client/socket.py``): it imports nothing of the node.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def wait_ended(*tasks: asyncio.Future[Any] | None) -> None:
    """Wait until each of ``tasks`` (None entries skipped) has ended.

    A task that ended cancelled is fine; another exception it ended with is raised; a
    cancellation of the caller while it waits is raised, never absorbed."""
    for task in tasks:
        if task is None:
            continue
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the caller was cancelled, not (only) the task


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel ``tasks`` (None entries skipped), then :func:`wait_ended`."""
    for task in tasks:
        if task is not None:
            task.cancel()
    await wait_ended(*tasks)
