"""The runner over a real SQLite store: retries only what is transient, records every result.

The executor here is a scripted stand-in of the Executor protocol; the real Docker executor's
own error classification is tested against a real engine in test_docker_executor.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remediator.actions.base import ActionRequest, ActionResult
from remediator.core.alert import Alert
from remediator.errors import ActionError
from remediator.metrics import Metrics
from remediator.runner import Runner
from remediator.store.base import NewDecision
from remediator.store.sqlite import SqliteStore

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Scripted:
    """Raises the scripted errors in order, then succeeds."""

    def __init__(self, *errors: ActionError) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def execute(self, request: ActionRequest) -> ActionResult:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return ActionResult(ok=True, detail=f"restarted {request.target}")

    async def probe(self) -> str | None:
        return None

    async def close(self) -> None:
        return None


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(str(tmp_path / "state.db"))
    await db.open()
    yield db
    await db.close()


async def _action(store: SqliteStore) -> int:
    alert = Alert("alertmanager", "firing", {"alertname": "X"}, {}, NOW, "f", "am:f:1")
    async with store.transaction() as tx:
        decision = await tx.add_decision(
            NewDecision(NOW, "p", alert, "docker.restart", "web-1", "executing", "")
        )
        return await tx.add_action(
            decision, "p", "docker.restart", "web-1", {}, dry_run=False, now=NOW
        )


async def _run(store: SqliteStore, executor: Scripted) -> tuple[str, str, list[str]]:
    tripped: list[str] = []

    async def trip(policy: str, reason: str) -> None:
        tripped.append(policy)

    runner = Runner(
        store,
        {"docker.restart": executor},
        Metrics(),
        lambda: NOW,
        max_concurrent=1,
        on_unverified=trip,
        retry_wait=0.01,
    )
    action_id = await _action(store)
    runner.submit(
        ActionRequest(action_id, "p", "docker.restart", "web-1", {}, timedelta(seconds=5))
    )
    await runner.drain(timedelta(seconds=10))
    [record] = await store.decisions(1)
    return record.outcome, record.reason, tripped


async def test_transient_errors_are_retried(store: SqliteStore) -> None:
    executor = Scripted(
        ActionError("engine unreachable", retryable=True),
        ActionError("engine unreachable", retryable=True),
    )
    outcome, reason, _ = await _run(store, executor)
    assert executor.calls == 3
    assert (outcome, reason) == ("executed", "restarted web-1")


async def test_retries_are_bounded(store: SqliteStore) -> None:
    executor = Scripted(*(ActionError("engine unreachable", retryable=True) for _ in range(5)))
    outcome, reason, tripped = await _run(store, executor)
    assert executor.calls == 3
    assert (outcome, reason) == ("failed", "engine unreachable")
    assert tripped == []  # an unreachable engine is not evidence that restarting does not help


async def test_other_errors_are_never_retried(store: SqliteStore) -> None:
    executor = Scripted(ActionError("container web-1 not found"))
    outcome, reason, _ = await _run(store, executor)
    assert executor.calls == 1
    assert (outcome, reason) == ("failed", "container web-1 not found")


async def test_unverified_results_trip_the_policy(store: SqliteStore) -> None:
    class Unverified(Scripted):
        async def execute(self, request: ActionRequest) -> ActionResult:
            self.calls += 1
            return ActionResult(
                ok=False, verified=False, detail="web-1 status=running health=unhealthy after 3s"
            )

    outcome, reason, tripped = await _run(store, Unverified())
    assert outcome == "failed" and "health=unhealthy" in reason
    assert tripped == ["p"]
