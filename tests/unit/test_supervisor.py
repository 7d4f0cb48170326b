"""The supervisor of background tasks: a loop outlives a failing round, a stop in stages
leaves nothing running, and a cancellation aimed at the stopper is never swallowed."""

from __future__ import annotations

import asyncio

import pytest

from remediator.errors import StoreError
from remediator.supervisor import Supervisor


async def test_a_loop_goes_on_after_a_store_error_and_a_bug() -> None:
    rounds: list[int] = []
    fourth = asyncio.Event()

    async def job() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise StoreError("store down")
        if len(rounds) == 2:
            raise ValueError("a bug")
        if len(rounds) == 4:
            fourth.set()

    supervisor = Supervisor()
    supervisor.every("job", 0.01, job)
    async with asyncio.timeout(5):
        await fourth.wait()
    await supervisor.stop()
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_a_loop_name_is_started_once() -> None:
    supervisor = Supervisor()
    supervisor.every("sync", 1.0, _noop)
    with pytest.raises(RuntimeError, match="sync"):
        supervisor.every("sync", 1.0, _noop)
    await supervisor.stop()
    supervisor.every("sync", 1.0, _noop)  # after a stop it may start again
    await supervisor.stop()


async def test_side_work_gets_its_grace_then_is_cancelled() -> None:
    supervisor = Supervisor()
    finished: list[str] = []

    async def work(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        finished.append(name)

    supervisor.spawn(work("quick", 0.01), "quick")
    supervisor.spawn(work("slow", 60), "slow")
    assert supervisor.spawned == 2
    await supervisor.finish_spawned(0.2)
    assert finished == ["quick"]
    assert supervisor.spawned == 0


async def test_stop_cancels_loops_and_side_work_started_meanwhile() -> None:
    supervisor = Supervisor()
    supervisor.every("idle", 60, _noop)
    await supervisor.finish_spawned(0.1)
    supervisor.spawn(asyncio.sleep(60), "late")  # e.g. a refresh spawned by a last sync
    await supervisor.stop()
    assert supervisor.spawned == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_a_cancelled_stop_is_not_swallowed() -> None:
    supervisor = Supervisor()
    release = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await release.wait()  # slow to wind down once cancelled

    supervisor.spawn(stubborn(), "stubborn")
    [task] = asyncio.all_tasks() - {asyncio.current_task()}
    await asyncio.sleep(0)
    stopper = asyncio.create_task(supervisor.stop())
    await asyncio.sleep(0.01)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    assert supervisor.spawned == 1  # still winding down: the stop did not pretend otherwise
    release.set()
    await asyncio.wait({task})
    assert supervisor.spawned == 0


async def _noop() -> None:
    return None
