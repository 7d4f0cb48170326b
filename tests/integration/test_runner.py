"""The runner over a real SQLite store: retries only what is transient, records every result,
checks pause, breaker and cooldown again when an action's turn comes and before each retry,
runs one action per target at a time, keeps slots for execution only, and never starts an
action once a drain began.

The executors here are scripted stand-ins of the Executor protocol; the real Docker executor's
own error classification is tested against a real engine in test_docker_executor.py, and the
whole daemon under attack in tests/security/.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from remediator.actions.base import ActionRequest, ActionResult
from remediator.checks.prometheus import PrometheusChecker
from remediator.core.alert import Alert
from remediator.core.ladder import Rung
from remediator.core.records import NewDecision
from remediator.core.verify import PrometheusCheck, VerifyPlan
from remediator.errors import ActionError, StoreError
from remediator.gate import Hold
from remediator.inflight import NOT_STARTED
from remediator.metrics import Metrics
from remediator.runner import Runner
from remediator.store.sqlite import SqliteStore
from remediator.targets import TargetLocks
from tests.integration.conftest import AUTH, HarnessFactory
from tests.integration.test_guards_pipeline import alert, message, policy

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
JSON = {**AUTH, "Content-Type": "application/json"}
PAUSED: Hold = ("paused", "remediation is paused")
TRIPPED: Hold = ("tripped", "circuit breaker is open")
COOLDOWN: Hold = ("cooldown", "cooldown 10m: last action at 2026-11-22T11:58:00+00:00, 8m left")


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


class Slow:
    """Each call waits at its target's gate (open unless a test closed it) and records when
    it entered and left, on the loop clock: the witness that two calls overlapped or not."""

    def __init__(self) -> None:
        self.gates: dict[str, asyncio.Event] = {}
        self.spans: list[tuple[str, float, float]] = []  # (target, entered, left)
        self.inside: list[str] = []

    def close_gate(self, target: str) -> None:
        self.gates[target] = asyncio.Event()

    def open_gate(self, target: str) -> None:
        self.gates[target].set()

    async def execute(self, request: ActionRequest) -> ActionResult:
        loop = asyncio.get_running_loop()
        entered = loop.time()
        self.inside.append(request.target)
        gate = self.gates.get(request.target)
        if gate is not None:
            await gate.wait()
        self.inside.remove(request.target)
        self.spans.append((request.target, entered, loop.time()))
        return ActionResult(ok=True, detail=f"restarted {request.target}")

    def entered(self, target: str) -> bool:
        return target in self.inside or any(t == target for t, _, _ in self.spans)

    async def probe(self) -> str | None:
        return None

    async def close(self) -> None:
        return None


@dataclass
class Switch:
    """A stand-in of Switches.admit: what holds actions now, and who asked with what."""

    hold: Hold | None = None
    error: StoreError | None = None
    asked: list[tuple[int, datetime | None]] = field(default_factory=list)

    async def __call__(self, request: ActionRequest, last_done: datetime | None) -> Hold | None:
        self.asked.append((request.action_id, last_done))
        if self.error is not None:
            raise self.error
        return self.hold


class Ratio(PrometheusChecker):
    """A Prometheus stand-in for verification: answers one value until a test changes it."""

    def __init__(self, value: float) -> None:
        super().__init__("http://127.0.0.1:9")
        self.value = value
        self.asked = 0

    async def instant(self, query: str) -> dict[str, Any]:
        self.asked += 1
        sample = {"metric": {}, "value": [0, str(self.value)]}
        return {"status": "success", "data": {"resultType": "vector", "result": [sample]}}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(str(tmp_path / "state.db"))
    await db.open()
    yield db
    await db.close()


async def _action(
    store: SqliteStore, target: str = "web-1", action: str = "docker.restart", policy: str = "p"
) -> int:
    alert_ = Alert("alertmanager", "firing", {"alertname": "X"}, {}, NOW, "f", f"am:f:{target}")
    async with store.transaction() as tx:
        decision = await tx.add_decision(
            NewDecision(NOW, policy, alert_, action, target, "executing", "")
        )
        return await tx.add_action(decision, policy, action, target, {}, dry_run=False, now=NOW)


def _request(
    action_id: int,
    target: str = "web-1",
    action: str = "docker.restart",
    params: Mapping[str, str] | None = None,
    check: PrometheusCheck | None = None,
) -> ActionRequest:
    plan = VerifyPlan(timedelta(seconds=20), check)
    return ActionRequest(action_id, "p", action, target, dict(params or {}), plan)


async def _submit(
    runner: Runner,
    store: SqliteStore,
    target: str = "web-1",
    action: str = "docker.restart",
    params: Mapping[str, str] | None = None,
    check: PrometheusCheck | None = None,
) -> int:
    """Record an action as the pipeline does, and hand it to the runner."""
    action_id = await _action(store, target, action)
    runner.submit(_request(action_id, target, action, params, check))
    return action_id


async def _until(probe: Callable[[], Any], what: str, within: float = 15) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.01)


async def _record(store: SqliteStore, target: str) -> tuple[str, str]:
    found = [d for d in await store.decisions(100) if d.target == target]
    assert len(found) == 1, found
    return found[0].outcome, found[0].reason


def _count(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def _runner(
    store: SqliteStore,
    executors: Mapping[str, Any],
    *,
    metrics: Metrics | None = None,
    admit: Switch | None = None,
    slots: int = 1,
    tripped: list[str] | None = None,
    checker: PrometheusChecker | None = None,
    on_finished: Any = None,
    clock: Callable[[], datetime] = lambda: NOW,
) -> Runner:
    async def trip(policy: str, reason: str) -> None:
        if tripped is not None:
            tripped.append(policy)

    return Runner(
        store,
        dict(executors),
        metrics or Metrics(),
        clock,
        max_concurrent=slots,
        on_unverified=trip,
        on_finished=on_finished,
        admit=admit,
        checker=checker,
        retry_wait=0.01,
    )


async def _run(
    store: SqliteStore, executor: Scripted, admit: Switch | None = None
) -> tuple[str, str, list[str]]:
    tripped: list[str] = []
    runner = _runner(store, {"docker.restart": executor}, admit=admit, tripped=tripped)
    await _submit(runner, store)
    await _until(lambda: runner.running == 0, "the action to end")
    await runner.drain(timedelta(seconds=10))
    outcome, reason = await _record(store, "web-1")
    return outcome, reason, tripped


# --- retries and results -------------------------------------------------------------------


async def test_transient_errors_are_retried(store: SqliteStore) -> None:
    executor = Scripted(
        ActionError("engine unreachable", retryable=True),
        ActionError("engine unreachable", retryable=True),
    )
    switch = Switch()
    outcome, reason, _ = await _run(store, executor, switch)
    assert executor.calls == 3
    assert (outcome, reason) == ("executed", "restarted web-1")
    assert len(switch.asked) == 3  # when its turn came, and before each of the two retries


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


class Unverified(Scripted):
    async def execute(self, request: ActionRequest) -> ActionResult:
        self.calls += 1
        return ActionResult(
            ok=False, verified=False, detail="web-1 status=running health=unhealthy after 3s"
        )


async def test_unverified_results_trip_the_policy(store: SqliteStore) -> None:
    outcome, reason, tripped = await _run(store, Unverified())
    assert outcome == "failed" and "health=unhealthy" in reason
    assert tripped == ["p"]


async def test_the_breaker_trips_before_the_failure_is_recorded(store: SqliteStore) -> None:
    """Nothing is awaited between the verdict and the trip: an action of the policy that
    starts while the failure is being written finds the breaker open."""
    at_trip: list[tuple[str, str]] = []

    async def trip(policy: str, reason: str) -> None:
        at_trip.append(await _record(store, "web-1"))

    runner = Runner(
        store,
        {"docker.restart": Unverified()},
        Metrics(),
        lambda: NOW,
        max_concurrent=1,
        on_unverified=trip,
        retry_wait=0.01,
    )
    await _submit(runner, store)
    await _until(lambda: runner.running == 0, "the action to end")
    await runner.drain(timedelta(seconds=10))
    assert [outcome for outcome, _ in at_trip] == ["executing"]
    assert (await _record(store, "web-1"))[0] == "failed"


async def test_a_failed_rung_whose_next_one_asks_nobody_here_ends_the_ladder(
    store: SqliteStore,
) -> None:
    """With no approvals part (as in `remediator test`), a ladder whose next rung carries its
    own approval stops at the failure: it is recorded, and the next rung never runs unasked."""
    executor = Scripted(ActionError("container web-1 not found"))
    tripped: list[str] = []
    runner = _runner(store, {"docker.restart": executor}, tripped=tripped)
    assert runner.approvals is None
    asks = Rung(2, "docker.restart", "web-1", {}, timedelta(seconds=20), ask={"step": "2 of 2"})
    action_id = await _action(store)
    plan = VerifyPlan(timedelta(seconds=20))
    runner.submit(ActionRequest(action_id, "p", "docker.restart", "web-1", {}, plan, 1, (asks,)))
    await _until(lambda: runner.running == 0, "the first rung to end")
    await runner.drain(timedelta(seconds=10))
    assert executor.calls == 1
    # One decision only: no second rung was written, neither as an action nor as a request.
    assert await _record(store, "web-1") == ("failed", "container web-1 not found")
    assert await store.approvals(pending_only=True) == []
    assert tripped == []  # a ladder trips its breaker at its last rung, which was not reached


# --- pause, breaker and cooldown when the turn comes, and before each retry -----------------


@pytest.mark.parametrize("hold", [PAUSED, TRIPPED, COOLDOWN], ids=lambda h: h[0])
async def test_an_action_held_when_its_turn_comes_never_runs(
    store: SqliteStore, hold: Hold
) -> None:
    executor = Scripted()
    metrics = Metrics()
    runner = _runner(store, {"docker.restart": executor}, metrics=metrics, admit=Switch(hold))
    await _submit(runner, store)
    await _until(lambda: runner.running == 0, "the action to end")
    outcome, reason = await _record(store, "web-1")
    assert executor.calls == 0
    assert outcome == hold[0]
    assert reason == f"{hold[1]}, when this action's turn came; not run"
    labels = {"policy": "p", "action": "docker.restart", "result": hold[0]}
    assert _count(metrics, "remediator_actions_total", **labels) == 1
    assert _count(metrics, "remediator_decisions_total", policy="p", outcome=hold[0]) == 1
    # A final state: no lease running out later turns it into `interrupted`.
    assert await store.interrupt_stale(NOW + timedelta(hours=1), None) == []
    await runner.drain(timedelta(seconds=1))


async def test_a_pause_landing_while_an_action_is_queued_holds_it(store: SqliteStore) -> None:
    executor = Slow()
    executor.close_gate("web-1")
    switch = Switch()
    runner = _runner(store, {"docker.restart": executor}, admit=switch, slots=1)
    await _submit(runner, store, "web-1")
    await _until(lambda: executor.entered("web-1"), "the first action to run")
    await _submit(runner, store, "web-2")  # queued behind the only slot
    switch.hold = PAUSED  # POST /api/v1/pause, here or on another replica
    executor.open_gate("web-1")
    await _until(lambda: runner.running == 0, "both actions to end")
    assert await _record(store, "web-1") == ("executed", "restarted web-1")
    assert (await _record(store, "web-2"))[0] == "paused"
    assert not executor.entered("web-2")
    await runner.drain(timedelta(seconds=1))


@pytest.mark.parametrize("hold", [PAUSED, TRIPPED], ids=lambda h: h[0])
async def test_a_retry_checks_pause_and_breaker_again(store: SqliteStore, hold: Hold) -> None:
    switch = Switch()

    class PausedMeanwhile(Scripted):
        async def execute(self, request: ActionRequest) -> ActionResult:
            switch.hold = hold  # lands while the first attempt fails and the retry waits
            return await super().execute(request)

    executor = PausedMeanwhile(ActionError("engine unreachable", retryable=True))
    outcome, reason, tripped = await _run(store, executor, switch)
    assert executor.calls == 1
    assert outcome == hold[0]
    assert reason == f"{hold[1]}, before a retry; not retried after: engine unreachable"
    assert tripped == []


async def test_an_action_whose_switches_cannot_be_read_never_runs(store: SqliteStore) -> None:
    executor = Scripted()
    switch = Switch(error=StoreError("state store unavailable: disk I/O error"))
    runner = _runner(store, {"docker.restart": executor}, admit=switch)
    await _submit(runner, store)
    await _until(lambda: runner.running == 0, "the action to end")
    assert executor.calls == 0
    outcome, reason = await _record(store, "web-1")
    assert outcome == "interrupted"
    assert reason.startswith("pause and breaker could not be read when its turn came (")
    assert reason.endswith("); not run")
    await runner.drain(timedelta(seconds=1))


# --- one action per target -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "serialized"),
    [
        (("docker.restart", "web-1"), ("docker.restart", "web-1"), True),
        (("docker.restart", "web-1"), ("docker.recreate", "web-1"), True),
        (("kubernetes.rollback", "prod/checkout"), ("kubernetes.rollback", "prod/checkout"), True),
        (("kubernetes.rollback", "prod/checkout"), ("kubernetes.scale", "prod/checkout"), True),
        (("docker.restart", "web-1"), ("docker.restart", "web-2"), False),
        (("kubernetes.restart", "shop/web"), ("docker.restart", "shop/web"), False),
    ],
)
async def test_actions_on_one_target_never_overlap(
    store: SqliteStore,
    first: tuple[str, str],
    second: tuple[str, str],
    serialized: bool,
) -> None:
    executor = Slow()
    executors = {first[0]: executor, second[0]: executor}
    switch = Switch()
    runner = _runner(store, executors, admit=switch, slots=2)
    for _, target in {first, second}:
        executor.close_gate(target)
    await _submit(runner, store, first[1], first[0])
    await _until(lambda: executor.entered(first[1]), "the first action to run")
    await _submit(runner, store, second[1], second[0])
    if serialized:
        await asyncio.sleep(0.2)  # room for a wrong runner to start the second one early
    else:
        await _until(lambda: len(executor.inside) == 2, "both actions to run at once")
    for gate in executor.gates.values():
        gate.set()
    await _until(lambda: len(executor.spans) == 2, "both actions to end")
    (_, _, first_left), (_, second_entered, _) = sorted(executor.spans, key=lambda s: s[1])
    assert (second_entered >= first_left) is serialized
    await runner.drain(timedelta(seconds=1))


async def test_the_later_action_on_a_target_has_its_guards_checked_when_it_starts(
    store: SqliteStore,
) -> None:
    executor = Slow()
    executor.close_gate("web-1")
    switch = Switch()
    clock = [NOW]
    runner = _runner(
        store, {"docker.restart": executor}, admit=switch, slots=4, clock=lambda: clock[0]
    )
    one = await _submit(runner, store, "web-1")
    await _until(lambda: executor.entered("web-1"), "the first action to run")
    two = await _submit(runner, store, "web-1")
    await asyncio.sleep(0.1)
    assert [asked for asked, _ in switch.asked] == [one]  # the second waits, unchecked yet
    clock[0] = NOW + timedelta(minutes=3)
    switch.hold = TRIPPED
    executor.open_gate("web-1")
    await _until(lambda: runner.running == 0, "both actions to end")
    # Checked when its turn came, told when the last action on its target here ended.
    assert switch.asked == [(one, None), (two, NOW + timedelta(minutes=3))]
    outcomes = {d.id: d.outcome for d in await store.decisions(10)}
    assert sorted(outcomes.values()) == ["executed", "tripped"]
    assert len(executor.spans) == 1
    await runner.drain(timedelta(seconds=1))


async def test_a_breaker_tripped_by_verification_holds_the_next_action_on_its_target(
    store: SqliteStore,
) -> None:
    tripped: list[str] = []
    switch = Switch()

    class Unhealthy(Slow):
        async def execute(self, request: ActionRequest) -> ActionResult:
            await super().execute(request)
            return ActionResult(ok=False, verified=False, detail="web-1 health=unhealthy")

    async def trip(policy: str, reason: str) -> None:
        tripped.append(policy)
        switch.hold = TRIPPED  # Switches.trip: the breaker is open from now on

    executor = Unhealthy()
    executor.close_gate("web-1")
    runner = Runner(
        store,
        {"docker.restart": executor},
        Metrics(),
        lambda: NOW,
        max_concurrent=4,
        on_unverified=trip,
        admit=switch,
    )
    await _submit(runner, store, "web-1")
    await _until(lambda: executor.entered("web-1"), "the first action to run")
    await _submit(runner, store, "web-1")
    executor.open_gate("web-1")
    await _until(lambda: runner.running == 0, "both actions to end")
    assert sorted(d.outcome for d in await store.decisions(10)) == ["failed", "tripped"]
    assert tripped == ["p"] and len(executor.spans) == 1
    await runner.drain(timedelta(seconds=1))


async def test_a_verification_holds_its_target_but_no_slot(store: SqliteStore) -> None:
    executor = Slow()
    ratio = Ratio(0.5)  # error ratio still high: verification keeps waiting
    runner = _runner(store, {"docker.restart": executor}, admit=Switch(), slots=1, checker=ratio)
    await _submit(runner, store, "web-1", check=PrometheusCheck("error_ratio", below=0.1))
    await _until(lambda: ratio.asked > 0, "the first action to verify")
    await _submit(runner, store, "web-2")
    await _until(lambda: executor.entered("web-2"), "another target's action, in the one slot")
    await _submit(runner, store, "web-1")  # same target: waits for verification
    await _until(lambda: ratio.asked > 1, "verification to poll again")
    assert [t for t, _, _ in executor.spans].count("web-1") == 1
    recovered_at = asyncio.get_running_loop().time()
    ratio.value = 0.01
    await _until(lambda: runner.running == 0, "every action to end")
    outcomes = [d.outcome for d in await store.decisions(10)]
    assert outcomes == ["executed", "executed", "executed"]
    [_, (_, second_entered, _)] = [s for s in executor.spans if s[0] == "web-1"]
    assert second_entered > recovered_at  # the target stayed held through verification
    await runner.drain(timedelta(seconds=1))


async def test_a_result_post_holds_neither_slot_nor_target(store: SqliteStore) -> None:
    executor = Slow()
    slack_down = asyncio.Event()
    posted: list[str] = []

    async def on_finished(request: ActionRequest, outcome: str, reason: str, s: float) -> None:
        posted.append(outcome)
        await slack_down.wait()  # a Slack that does not answer

    runner = _runner(store, {"docker.restart": executor}, admit=Switch(), on_finished=on_finished)
    await _submit(runner, store, "web-1")
    await _submit(runner, store, "web-1")
    await _until(lambda: len(executor.spans) == 2, "both actions on web-1 to run")
    await _until(lambda: posted == ["executed", "executed"], "both results to be posted")
    slack_down.set()
    await runner.drain(timedelta(seconds=1))


# --- drain -----------------------------------------------------------------------------------


async def test_a_drain_never_starts_a_queued_action(store: SqliteStore) -> None:
    executor = Slow()
    executor.close_gate("web-1")
    metrics = Metrics()
    runner = _runner(store, {"docker.restart": executor}, metrics=metrics, admit=Switch(), slots=1)
    await _submit(runner, store, "web-1")
    await _until(lambda: executor.entered("web-1"), "the first action to run")
    await _submit(runner, store, "web-2")  # waits for the slot
    await _submit(runner, store, "web-1")  # waits for its target
    drain = asyncio.create_task(runner.drain(timedelta(seconds=20)))
    await _until(
        lambda: (
            _count(metrics, "remediator_decisions_total", policy="p", outcome="interrupted") == 2
        ),
        "the queued actions to be recorded interrupted",
    )
    executor.open_gate("web-1")  # the running one may finish within the drain bound
    await drain
    records = sorted((d.target, d.outcome, d.reason) for d in await store.decisions(10))
    assert records == [
        ("web-1", "executed", "restarted web-1"),
        ("web-1", "interrupted", NOT_STARTED),
        ("web-2", "interrupted", NOT_STARTED),
    ]
    assert [t for t, _, _ in executor.spans] == ["web-1"]
    await _submit(runner, store, "web-3")  # an approval landing meanwhile
    await _until(lambda: runner.running == 0, "the late action to be recorded")
    assert (await _record(store, "web-3")) == ("interrupted", NOT_STARTED)
    assert not executor.entered("web-3")


async def test_target_locks_exist_only_while_used() -> None:
    locks = TargetLocks()
    key = ("docker", "web-1")
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with locks.hold(key):
            holding.set()
            await release.wait()

    first = asyncio.create_task(hold())
    await holding.wait()
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0)
    assert locks.busy(key) and len(locks) == 1
    waiter.cancel()  # a drain cancels a waiter: it must not leave its entry behind
    await asyncio.gather(waiter, return_exceptions=True)
    release.set()
    await first
    assert len(locks) == 0 and not locks.busy(key)


# --- the switches' admit: fresh from the store, then the cooldown -----------------------------


@pytest.mark.parametrize(
    ("flag", "last_done", "held"),
    [
        (None, None, None),
        ("paused", None, "paused"),  # set through another replica: no sync needed
        ("tripped:restart-web", None, "tripped"),
        ("tripped:other-policy", None, None),
        (None, timedelta(minutes=-2), "cooldown"),  # the last action here ended 2m ago
        (None, timedelta(minutes=-11), None),
    ],
)
async def test_switches_admit(
    harness: HarnessFactory, flag: str | None, last_done: timedelta | None, held: str | None
) -> None:
    h = await harness(policy(guards="cooldown: 10m"))
    if flag is not None:
        await h.daemon.store.set_flag(flag, "1")
    now = datetime.now(UTC)
    request = ActionRequest(
        1, "restart-web", "docker.restart", "web-1", {}, VerifyPlan(timedelta(minutes=1))
    )
    answer = await h.daemon.switches.admit(request, None if last_done is None else now + last_done)
    assert (answer[0] if answer else None) == held
    if held == "cooldown":
        assert answer is not None and "cooldown 10m: last action at" in answer[1]


async def test_a_trip_holds_this_replicas_actions_before_its_store_write_ends(
    harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner trips the breaker before recording the failure, and the trip holds here
    at once: an action of the policy on another target whose turn comes while the flag is
    still being written (a busy store) must not run."""
    h = await harness(policy(guards=""))
    store, entered, release = h.daemon.store, asyncio.Event(), asyncio.Event()
    set_flag = store.set_flag

    async def slow_set_flag(name: str, value: str | None, *args: Any) -> None:
        entered.set()
        await release.wait()
        await set_flag(name, value, *args)

    monkeypatch.setattr(store, "set_flag", slow_set_flag)
    trip = asyncio.create_task(h.daemon.switches.trip("restart-web", "verify failed (test)"))
    await asyncio.wait_for(entered.wait(), 10)
    request = ActionRequest(
        2, "restart-web", "docker.restart", "web-2", {}, VerifyPlan(timedelta(minutes=1))
    )
    assert await h.daemon.switches.admit(request, None) == TRIPPED
    release.set()
    await asyncio.wait_for(trip, 10)
    assert await store.get_flag("tripped:restart-web") == "verify failed (test)"
    assert await h.daemon.switches.admit(request, None) == TRIPPED


@pytest.mark.parametrize("where", ["here", "another replica"])
async def test_a_pause_holds_an_action_queued_in_the_runner(
    harness: HarnessFactory, where: str
) -> None:
    executor = Slow()
    executor.close_gate("web-1")
    h = await harness(
        policy(guards=""),
        "limits: {max_concurrent_actions: 1}\n",
        executors={"docker.restart": executor},
    )
    status, answer = await h.post(message(alert("web-1")), JSON)
    assert status == 200, answer
    await _until(lambda: executor.entered("web-1"), "the first action to run")
    _, answer = await h.post(message(alert("web-2")), JSON)
    [queued] = answer["decisions"]
    assert queued["outcome"] == "executing"
    if where == "here":
        # what POST /api/v1/pause and `remediator pause` do
        await h.daemon.switches.set_paused(True)
    else:
        await h.daemon.store.set_flag("paused", "1")  # no sync of this daemon needed
    executor.open_gate("web-1")
    record = await h.wait_outcome(queued["id"], {"paused", "executed"})
    assert record["outcome"] == "paused"
    assert record["reason"] == "remediation is paused, when this action's turn came; not run"
    assert not executor.entered("web-2")
    assert h.metric("remediator_decisions_total", policy="restart-web", outcome="paused") == 1
    labels = {"policy": "restart-web", "action": "docker.restart", "result": "paused"}
    assert h.metric("remediator_actions_total", **labels) == 1
