"""The CPU gate: heavy steps run one per loop iteration, with what the loop had ready (the
sender's tick) in between, in arrival order."""

from __future__ import annotations

import asyncio

from audionode.transport.cpugate import gate_for_loop


async def test_steps_arriving_together_let_ready_callbacks_run_between_them() -> None:
    loop = asyncio.get_running_loop()
    log: list[str] = []

    async def step(name: str) -> None:
        async with gate_for_loop():
            log.append(name)
            # stands in for the sender's timer falling due while this step runs
            loop.call_soon(log.append, f"tick after {name}")

    await asyncio.gather(*(step(f"step{i}") for i in range(3)))
    assert log == [
        "step0",
        "tick after step0",
        "step1",
        "tick after step1",
        "step2",
        "tick after step2",
    ]


async def test_a_lone_step_still_yields_to_the_loop_first() -> None:
    loop = asyncio.get_running_loop()
    log: list[str] = []
    loop.call_soon(log.append, "ready before")

    async with gate_for_loop():
        log.append("step")
    assert log == ["ready before", "step"]


async def test_a_failing_step_releases_the_gate() -> None:
    async def boom() -> None:
        async with gate_for_loop():
            raise ValueError("bad commit")

    results = await asyncio.gather(boom(), boom(), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    async with gate_for_loop():  # not stuck
        pass
