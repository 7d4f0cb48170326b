"""The daemon when other replicas share its store: switches they set, leases they let lapse,
actions they recorded interrupted. Runs on SQLite and PostgreSQL (`on_both_backends`); a
second replica is played by writing to the store the way one would.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from remediator.actions.base import ActionRequest, ActionResult
from remediator.core.alert import Alert
from remediator.core.approval import Approval, ApprovalState
from remediator.core.records import NewDecision
from remediator.core.verify import VerifyPlan
from remediator.store.roles.store import Store
from tests.integration.conftest import Harness, HarnessFactory, on_both_backends
from tests.integration.test_guards_pipeline import alert, message, policy

pytestmark = on_both_backends


class Recording:
    """An executor that records what it was asked to run."""

    def __init__(self) -> None:
        self.ran: list[int] = []

    async def execute(self, request: ActionRequest) -> ActionResult:
        self.ran.append(request.action_id)
        return ActionResult(ok=True, detail=f"restarted {request.target}")

    async def probe(self) -> str | None:
        return None

    async def close(self) -> None:
        return None


async def _until(probe: Any, what: str, within: float = 15) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await probe()
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


async def _foreign_action(store: Store, owner_store: Store | None = None) -> int:
    """An action another replica decided and holds (its owner is not this daemon)."""
    now = datetime.now(UTC)
    a = Alert("alertmanager", "firing", {"alertname": "X"}, {}, now, "f9", "am:f9:1")
    async with (owner_store or store).transaction() as tx:
        decision = await tx.add_decision(
            NewDecision(now, "restart-web", a, "docker.restart", "web-9", "executing", "")
        )
        return await tx.add_action(
            decision, "restart-web", "docker.restart", "web-9", {}, dry_run=False, now=now
        )


async def test_a_pause_set_through_another_replica_holds_this_one(harness: HarnessFactory) -> None:
    executor = Recording()
    h = await harness(policy(guards=""), executors={"docker.restart": executor})
    await h.daemon.store.set_flag("paused", "1")  # as `POST /pause` on the other replica does
    status, answer = await h.post(message(alert("web-1")))
    assert status == 200
    assert [d["outcome"] for d in answer["decisions"]] == ["paused"]
    assert executor.ran == []
    await h.daemon.store.set_flag("paused", None)  # resumed there
    await h.daemon.sync()
    assert h.metric("remediator_paused") == 0
    status, answer = await h.post(message(alert("web-1")))
    assert [d["outcome"] for d in answer["decisions"]] == ["executing"]


async def test_a_breaker_tripped_on_another_replica_holds_this_one(
    harness: HarnessFactory,
) -> None:
    h = await harness(policy(guards=""), executors={"docker.restart": Recording()})
    await h.daemon.store.set_flag("tripped:restart-web", "not recovered")
    _, answer = await h.post(message(alert("web-1")))
    assert [d["outcome"] for d in answer["decisions"]] == ["tripped"]
    assert h.metric("remediator_policy_tripped", policy="restart-web") == 1


async def test_a_limits_reset_on_another_replica_counts_at_this_ones_next_decision(
    harness: HarnessFactory,
) -> None:
    # The switches are read with the facts, and the window counts were built from the
    # switches last seen here: a reset this replica has not synced yet must move the window.
    executor = Recording()
    h = await harness(policy(guards='rate_limit: "1/1h"'), executors={"docker.restart": executor})
    _, answer = await h.post(message(alert("web-1")))
    [first] = answer["decisions"]
    assert first["outcome"] == "executing"
    await h.wait_outcome(first["id"], {"executed"})
    _, answer = await h.post(message(alert("web-2")))
    assert [d["outcome"] for d in answer["decisions"]] == ["rate_limited"]
    # As `POST /api/v1/policies/restart-web/reset {"limits": true}` there writes it.
    record = json.dumps({"at": datetime.now(UTC).isoformat(), "by": "api:bob"})
    await h.daemon.store.set_flag("limits:restart-web", record)
    assert "restart-web" not in h.daemon.switches.gates.limits_reset  # not synced here
    _, answer = await h.post(message(alert("web-3")))
    assert [d["outcome"] for d in answer["decisions"]] == ["executing"]


async def test_a_lapsed_lease_of_another_replica_is_recorded_interrupted(
    harness: HarnessFactory,
) -> None:
    h = await harness(policy(guards=""), "action_lease: 1s\n")
    foreign = await _foreign_action(h.daemon.store)

    async def interrupted() -> bool:
        records = {d["target"]: d for d in await h.decisions()}
        return bool(records["web-9"]["outcome"] == "interrupted")

    await _until(interrupted, "the lapsed action to be recorded interrupted")
    record = next(d for d in await h.decisions() if d["target"] == "web-9")
    assert "did not renew its lease for 1s (action_lease)" in record["reason"]
    assert "not re-run" in record["reason"]
    assert await h.daemon.store.start_action(foreign, datetime.now(UTC)) is False
    assert (
        h.metric(
            "remediator_actions_total",
            policy="restart-web",
            action="docker.restart",
            result="interrupted",
        )
        == 1
    )


async def test_leases_of_actions_this_replica_holds_are_renewed(harness: HarnessFactory) -> None:
    release = asyncio.Event()

    class Slow(Recording):
        async def execute(self, request: ActionRequest) -> ActionResult:
            self.ran.append(request.action_id)
            await release.wait()
            return ActionResult(ok=True, detail="restarted after a while")

    executor = Slow()
    h = await harness(policy(guards=""), "action_lease: 1s\n", {"docker.restart": executor})
    status, answer = await h.post(message(alert("web-1")))
    assert status == 200
    [decision] = answer["decisions"]
    await _until(lambda: _ran(executor), "the action to start")
    # Three leases long: a lapse would have been recorded by now, renewal keeps it running.
    await _outlive(h, seconds=3)
    release.set()
    done = await h.wait_outcome(decision["id"], {"executed", "interrupted"})
    assert done["outcome"] == "executed"


async def _ran(executor: Recording) -> bool:
    return len(executor.ran) > 0


async def _outlive(h: Harness, seconds: float) -> None:
    """Let renew/sweep rounds run for `seconds`, checking the record the whole time."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        assert "interrupted" not in await h.outcomes()
        await asyncio.sleep(0.1)


async def test_an_action_recorded_interrupted_before_it_starts_never_runs(
    harness: HarnessFactory,
) -> None:
    """A replica cut off past its lease comes back: what was recorded interrupted stays so."""
    executor = Recording()
    h = await harness(policy(guards=""), executors={"docker.restart": executor})
    foreign = await _foreign_action(h.daemon.store)
    await h.daemon.store.interrupt_actions([foreign], datetime.now(UTC), "lease ran out")
    h.daemon.runner.submit(
        ActionRequest(
            foreign, "restart-web", "docker.restart", "web-9", {}, VerifyPlan(timedelta(seconds=5))
        )
    )
    await h.daemon.runner.drain(timedelta(seconds=10))
    assert executor.ran == []
    [record] = [d for d in await h.decisions() if d["target"] == "web-9"]
    assert (record["outcome"], record["reason"]) == ("interrupted", "lease ran out")


async def test_approvals_pending_counts_what_the_store_holds(harness: HarnessFactory) -> None:
    h = await harness(policy(guards=""))
    now = datetime.now(UTC)
    request = Approval(
        "ap-1",
        1,
        "restart-web",
        "docker.restart",
        "web-1",
        ApprovalState.PENDING,
        now,
        now + timedelta(minutes=5),
        1,
        ("U1",),
    )
    async with h.daemon.store.transaction() as tx:  # requested on another replica
        await tx.add_approval(request, "am:x:1", {})
    await h.daemon.sync()
    assert h.metric("remediator_approvals_pending") == 1
    async with h.daemon.store.transaction() as tx:  # and denied there
        await tx.save_approval(replace(request, state=ApprovalState.DENIED))
    await h.daemon.sync()
    assert h.metric("remediator_approvals_pending") == 0
