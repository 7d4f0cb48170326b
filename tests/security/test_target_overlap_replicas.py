"""Finding 8 across replicas: two replicas sharing one PostgreSQL never act on one target at
once. Each holds a session advisory lock for the target (Store.target_lease) through the
action; another target is not held up. Two real PostgresStores, two runners, one database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from remediator.actions.base import ActionRequest
from remediator.core.alert import Alert
from remediator.core.records import NewDecision
from remediator.core.verify import VerifyPlan
from remediator.metrics import Metrics
from remediator.runner import Runner
from remediator.store.postgres import PostgresStore
from tests.fixtures.postgres import Postgres
from tests.integration.test_runner import Slow

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.fixture
async def replicas(postgres: Postgres) -> AsyncIterator[tuple[str, PostgresStore, PostgresStore]]:
    url = postgres.database()
    a, b = PostgresStore(url, owner="replica-a"), PostgresStore(url, owner="replica-b")
    await a.open()
    await b.open()
    yield url, a, b
    await a.close()
    await b.close()


async def _submit(runner: Runner, store: PostgresStore, target: str, episode: str) -> int:
    alert = Alert("alertmanager", "firing", {"alertname": "X"}, {}, NOW, "f", episode)
    async with store.transaction() as tx:
        decision = await tx.add_decision(
            NewDecision(NOW, "p", alert, "docker.restart", target, "executing", "")
        )
        action_id = await tx.add_action(
            decision, "p", "docker.restart", target, {}, dry_run=False, now=NOW
        )
    runner.submit(
        ActionRequest(
            action_id, "p", "docker.restart", target, {}, VerifyPlan(timedelta(seconds=20))
        )
    )
    return action_id


def _runner(store: PostgresStore, executor: Slow) -> Runner:
    async def trip(policy: str, reason: str) -> None:
        raise AssertionError(f"nothing may trip here: {policy} {reason}")

    return Runner(
        store,
        {"docker.restart": executor},
        Metrics(),
        lambda: NOW,
        max_concurrent=4,
        on_unverified=trip,
    )


async def _until(probe: object, what: str, within: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = probe() if callable(probe) else probe
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


async def test_two_replicas_never_act_on_one_target_at_once(
    replicas: tuple[str, PostgresStore, PostgresStore],
) -> None:
    url, store_a, store_b = replicas
    executor = Slow()
    executor.close_gate("web-1")
    runner_a, runner_b = _runner(store_a, executor), _runner(store_b, executor)
    await _submit(runner_a, store_a, "web-1", "am:f:1")
    await _until(lambda: executor.entered("web-1"), "replica A's action to start")
    # Another episode for the same target, decided and run by replica B.
    await _submit(runner_b, store_b, "web-1", "am:f:2")
    watcher = await asyncpg.connect(url)
    try:

        async def both_leasing() -> bool:
            count = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = 'remediator-target' AND datname = current_database()"
            )
            return int(count) == 2

        await _until(both_leasing, "replica B to ask for the target")
        # A different target on replica B is not held up by A's action.
        await _submit(runner_b, store_b, "web-2", "am:f:3")
        await _until(lambda: any(t == "web-2" for t, _, _ in executor.spans), "web-2 to run")
        await asyncio.sleep(0.5)  # room for a broken lock to let B's web-1 in; the spans judge
        assert executor.inside == ["web-1"], "replica B entered web-1 while A was acting on it"
        executor.open_gate("web-1")
        await _until(
            lambda: sum(t == "web-1" for t, _, _ in executor.spans) == 2, "both web-1 actions"
        )
    finally:
        await watcher.close()
    first, second = [(entered, left) for t, entered, left in executor.spans if t == "web-1"]
    assert second[0] >= first[1], f"the two actions on web-1 overlapped: {first} {second}"
    for runner in (runner_a, runner_b):
        await _until(lambda r=runner: r.running == 0, "the runners to finish")
    outcomes = sorted(d.outcome for d in await store_a.decisions(10))
    assert outcomes == ["executed", "executed", "executed"]
