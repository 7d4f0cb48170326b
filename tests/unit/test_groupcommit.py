"""Group commit: concurrent callers share one run, each gets its own result after it, and a
failed shared run is retried per caller so one bad item fails only itself."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from remediator.groupcommit import GroupCommit


async def started(runs: list[list[int]], count: int) -> None:
    """Until `count` runs have begun (a few loop turns at most)."""
    for _ in range(50):
        if len(runs) >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"only {len(runs)} runs began")


class Recorder:
    def __init__(self) -> None:
        self.runs: list[list[int]] = []
        self.gate = asyncio.Event()

    async def run(self, items: Sequence[int]) -> list[int]:
        self.runs.append(list(items))
        await self.gate.wait()
        if any(i < 0 for i in items):
            raise ValueError(f"bad item in {list(items)}")
        return [i * 10 for i in items]


async def test_callers_that_arrive_during_a_run_share_the_next_one() -> None:
    rec = Recorder()
    commits: GroupCommit[int, int] = GroupCommit(rec.run)
    first = asyncio.create_task(commits.submit(1))
    await started(rec.runs, 1)  # the first run starts and waits on the gate
    rest = [asyncio.create_task(commits.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    assert not any(t.done() for t in [first, *rest])  # nobody answered before its commit
    rec.gate.set()
    assert await asyncio.gather(first, *rest) == [10, 20, 30, 40]
    assert rec.runs == [[1], [2, 3, 4]]


async def test_a_failed_group_is_retried_alone_so_only_the_bad_item_fails() -> None:
    rec = Recorder()
    commits: GroupCommit[int, int] = GroupCommit(rec.run)
    rec.gate.set()
    blocker = asyncio.Event()

    async def slow(items: Sequence[int]) -> list[int]:
        if items == [0]:
            await blocker.wait()
        return await rec.run(items)

    commits = GroupCommit(slow)
    head = asyncio.create_task(commits.submit(0))
    await started(rec.runs, 0)
    for _ in range(10):  # the first run is under way (waiting on the blocker)
        await asyncio.sleep(0)
    tasks = [asyncio.create_task(commits.submit(n)) for n in (5, -1, 6)]
    await asyncio.sleep(0)
    blocker.set()
    assert await head == 0
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == 50 and results[2] == 60
    assert isinstance(results[1], ValueError)
    assert rec.runs == [[0], [5, -1, 6], [5], [-1], [6]]


async def test_groups_are_bounded() -> None:
    rec = Recorder()
    rec.gate.set()
    commits: GroupCommit[int, int] = GroupCommit(rec.run, max_group=2)
    assert await asyncio.gather(*(commits.submit(n) for n in range(5))) == [0, 10, 20, 30, 40]
    assert all(len(run) <= 2 for run in rec.runs)


async def test_a_caller_that_goes_away_does_not_cancel_the_shared_work() -> None:
    rec = Recorder()
    commits: GroupCommit[int, int] = GroupCommit(rec.run)
    leaver = asyncio.create_task(commits.submit(1))
    stayer = asyncio.create_task(commits.submit(2))
    await asyncio.sleep(0)
    leaver.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaver
    rec.gate.set()
    assert await stayer == 20
    await commits.wait_idle()
    assert rec.runs == [[1, 2]]


async def test_callers_arriving_over_a_few_loop_turns_share_the_first_run() -> None:
    """Webhooks sent together are parsed one after another: the first must not go alone."""
    rec = Recorder()
    rec.gate.set()
    commits: GroupCommit[int, int] = GroupCommit(rec.run)

    async def late(n: int, turns: int) -> int:
        for _ in range(turns):
            await asyncio.sleep(0)
        return await commits.submit(n)

    assert list(await asyncio.gather(late(1, 0), late(2, 1), late(3, 2))) == [10, 20, 30]
    assert rec.runs == [[1, 2, 3]]


async def test_items_of_different_keys_never_share_a_run_and_keep_their_order() -> None:
    """Webhooks taken under two rule sets (around a reload) are decided in separate
    transactions, in arrival order."""
    rec = Recorder()
    old, new = object(), object()
    keys = {0: old, 1: old, 2: old, 3: new, 4: new, 5: old}
    commits: GroupCommit[int, int] = GroupCommit(rec.run, key=keys.__getitem__)
    first = asyncio.create_task(commits.submit(0))
    await started(rec.runs, 1)
    rest = [asyncio.create_task(commits.submit(n)) for n in (1, 2, 3, 4, 5)]
    await asyncio.sleep(0)
    rec.gate.set()
    assert await asyncio.gather(first, *rest) == [0, 10, 20, 30, 40, 50]
    assert rec.runs == [[0], [1, 2], [3, 4], [5]]
