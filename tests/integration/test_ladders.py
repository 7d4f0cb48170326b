"""Escalation ladders (`steps`) through the whole daemon, on SQLite and PostgreSQL: each rung
its own decision (`step`), a rung that fails or is not verified hands over to the next at
once, a verified rung ends the ladder, repeats never run a rung again, the cooldown is the
ladder's, and pause and the breaker are checked before every rung. The executors are
stand-ins of the Executor protocol that answer as scripted per action type."""

from __future__ import annotations

import asyncio
from typing import Any

from remediator.actions.base import ActionRequest, ActionResult
from tests.fixtures.slack_api import SlackAPI
from tests.integration.conftest import HarnessFactory, on_both_backends
from tests.integration.test_guards_pipeline import alert, message
from tests.integration.test_runner import _until
from tests.integration.test_slack_approvals import CHANNEL, click, config, eventually

pytestmark = on_both_backends

LADDER = """
name: web-down
match: {matchers: ['alertname="ContainerDown"']}
guards: {cooldown: 10m}
steps:
  - action: {type: docker.restart, params: {container: "{{ labels.container }}"}, allow_targets: ["web-*"]}
    verify: {within: 2m}
  - action: {type: docker.recreate, params: {container: "{{ labels.container }}"}, allow_targets: ["web-*"]}
    verify: {within: 3m}
  - action: {type: notify, params: {text: "{{ labels.container }} still down after restart and recreate"}}
"""


class Scripted:
    """Answers each call of its type as scripted (True: done and verified, False: ran but
    not verified), recording (step, target) of every call; `gate` holds calls until set."""

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[int | None, str]] = []
        self.gate: asyncio.Event | None = None

    async def execute(self, request: ActionRequest) -> ActionResult:
        self.calls.append((request.step, request.target))
        if self.gate is not None:
            await self.gate.wait()
        ok = self.answers.pop(0) if self.answers else True
        if ok:
            return ActionResult(ok=True, detail=f"{request.type} {request.target}: verified")
        return ActionResult(
            ok=False, verified=False, detail=f"{request.type} {request.target}: still down"
        )

    async def probe(self) -> str | None:
        return None

    async def close(self) -> None:
        return None


def _executors(restart: Scripted, recreate: Scripted, notify: Scripted) -> dict[str, Any]:
    return {"docker.restart": restart, "docker.recreate": recreate, "notify": notify}


async def _records(h: Any) -> list[dict[str, Any]]:
    """The audit, oldest first, with each decision's `step` (the store's column; the list
    endpoint shows SPEC's fields only)."""
    await h.daemon.intake.flush_repeats()
    found = reversed(await h.daemon.store.decisions(1000))
    return [{**record.to_api(), "step": record.step} for record in found]


async def _settled(h: Any, count: int) -> list[dict[str, Any]]:
    """The decisions once `count` of them exist and none is executing any more."""

    async def done() -> list[dict[str, Any]] | None:
        found = [d for d in await _records(h) if d["outcome"] != "deduplicated"]
        if len(found) >= count and all(d["outcome"] != "executing" for d in found):
            return found
        return None

    settled: list[dict[str, Any]] = await _until(done, f"{count} settled decisions")
    return settled


async def test_a_verified_first_rung_ends_the_ladder(harness: HarnessFactory) -> None:
    restart, recreate, notify = Scripted(True), Scripted(), Scripted()
    h = await harness(LADDER, executors=_executors(restart, recreate, notify))
    status, answer = await h.post(message(alert("web-1")))
    assert status == 200
    assert [d["outcome"] for d in answer["decisions"]] == ["executing"]
    [first] = await _settled(h, 1)
    assert (first["outcome"], first["step"], first["action"]) == ("executed", 1, "docker.restart")
    await asyncio.sleep(0)  # nothing else is queued: no second rung exists to wait for
    assert [d["step"] for d in await _records(h)] == [1]
    assert recreate.calls == [] and notify.calls == []


async def test_a_rung_not_verified_hands_over_to_the_next_in_the_same_episode(
    harness: HarnessFactory,
) -> None:
    restart, recreate, notify = Scripted(False), Scripted(True), Scripted()
    h = await harness(LADDER, executors=_executors(restart, recreate, notify))
    await h.post(message(alert("web-1")))
    first, second = await _settled(h, 2)
    assert (first["step"], first["outcome"], first["action"]) == (1, "failed", "docker.restart")
    assert first["reason"] == "docker.restart web-1: still down"
    assert (second["step"], second["outcome"], second["action"]) == (
        2,
        "executed",
        "docker.recreate",
    )
    assert second["target"] == "web-1" and second["alertname"] == "ContainerDown"
    assert restart.calls == [(1, "web-1")] and recreate.calls == [(2, "web-1")]
    assert notify.calls == []
    # The cooldown (10m) is the ladder's: the second rung on the same target was not held.
    assert h.metric("remediator_policy_tripped", policy="web-down") == 0


async def test_every_rung_failing_ends_in_notify_and_trips_the_breaker(
    harness: HarnessFactory,
) -> None:
    restart, recreate, notify = Scripted(False), Scripted(False), Scripted(True)
    h = await harness(LADDER, executors=_executors(restart, recreate, notify))
    await h.post(message(alert("web-1")))
    decided = await _settled(h, 3)
    assert [(d["step"], d["action"], d["outcome"]) for d in decided] == [
        (1, "docker.restart", "failed"),
        (2, "docker.recreate", "failed"),
        (3, "notify", "executed"),
    ]
    await _until(lambda: _tripped(h), "the breaker to trip once the ladder reached its last rung")
    # A new episode of the same policy is now held by the breaker.
    _, answer = await h.post(message(alert("web-2")))
    assert [d["outcome"] for d in answer["decisions"]] == ["tripped"]
    assert restart.calls == [(1, "web-1")]


async def _tripped(h: Any) -> bool:
    return bool(h.metric("remediator_policy_tripped", policy="web-down") == 1)


async def test_repeats_of_the_alert_never_run_a_rung_again(harness: HarnessFactory) -> None:
    restart, recreate, notify = Scripted(False), Scripted(True), Scripted()
    recreate.gate = asyncio.Event()
    h = await harness(LADDER, executors=_executors(restart, recreate, notify))
    await h.post(message(alert("web-1")))
    await _until(lambda: _called(recreate), "the second rung to start")
    for _ in range(3):  # Alertmanager's repeats while the second rung runs
        _, answer = await h.post(message(alert("web-1")))
        assert [d["outcome"] for d in answer["decisions"]] == ["deduplicated"]
    recreate.gate.set()
    await _settled(h, 2)
    _, answer = await h.post(message(alert("web-1")))  # and after the ladder ended
    assert [d["outcome"] for d in answer["decisions"]] == ["deduplicated"]
    assert restart.calls == [(1, "web-1")] and recreate.calls == [(2, "web-1")]
    records = await _records(h)
    assert [(d["step"], d["outcome"]) for d in records] == [
        (1, "failed"),
        (2, "executed"),
        (None, "deduplicated"),
    ]
    assert records[-1]["repeats"] == 4  # every repeat counted on the one record


async def _called(executor: Scripted) -> bool:
    return bool(executor.calls)


async def test_a_pause_before_a_rung_holds_it_and_the_ladder_stops(
    harness: HarnessFactory,
) -> None:
    restart, recreate, notify = Scripted(False), Scripted(True), Scripted()
    restart.gate = asyncio.Event()
    h = await harness(LADDER, executors=_executors(restart, recreate, notify))
    await h.post(message(alert("web-1")))
    await _until(lambda: _called(restart), "the first rung to start")
    await h.daemon.switches.set_paused(True)
    restart.gate.set()
    first, second = await _settled(h, 2)
    assert (first["step"], first["outcome"]) == (1, "failed")
    assert (second["step"], second["outcome"]) == (2, "paused")
    assert recreate.calls == []
    # Resumed, a repeat of the episode does not start the ladder over (its first rung ran).
    await h.daemon.switches.set_paused(False)
    _, answer = await h.post(message(alert("web-1")))
    assert [d["outcome"] for d in answer["decisions"]] == ["deduplicated"]
    assert restart.calls == [(1, "web-1")]


async def test_a_later_rung_out_of_scope_stops_the_ladder_before_it_starts(
    harness: HarnessFactory,
) -> None:
    narrow = LADDER.replace(
        'docker.recreate, params: {container: "{{ labels.container }}"}, allow_targets: ["web-*"]',
        'docker.recreate, params: {container: "{{ labels.container }}"}, allow_targets: ["api-*"]',
    )
    restart, recreate, notify = Scripted(), Scripted(), Scripted()
    h = await harness(narrow, executors=_executors(restart, recreate, notify))
    _, answer = await h.post(message(alert("web-1")))
    [decision] = answer["decisions"]
    assert decision["outcome"] == "out_of_scope"
    assert decision["reason"].startswith("step 2: target 'web-1' is not in allow_targets")
    assert restart.calls == []


# The second rung asks people first (its own approval); the first and the last do not.
ASKING = LADDER.replace(
    """    verify: {within: 3m}
""",
    """    verify: {within: 3m}
    approval: always
""",
).replace("guards: {cooldown: 10m}", "guards: {cooldown: 10m, approvers: ['api:alice']}")


async def _waiting(h: Any) -> dict[str, Any]:
    """The second rung's decision, once the first failed and it waits for its approval."""

    async def found() -> dict[str, Any] | None:
        for d in await _records(h):
            if d["step"] == 2 and d["outcome"] == "awaiting_approval":
                return d
        return None

    waiting: dict[str, Any] = await _until(found, "step 2 to wait for its approval")
    return waiting


async def test_a_later_rung_with_its_own_approval_runs_only_once_approved(
    harness: HarnessFactory,
) -> None:
    assert "approval: always" in ASKING and "approvers: ['api:alice']" in ASKING
    restart, recreate, notify = Scripted(False), Scripted(True), Scripted()
    h = await harness(ASKING, executors=_executors(restart, recreate, notify))
    [first] = (await h.post(message(alert("web-1"))))[1]["decisions"]
    assert first["outcome"] == "executing"  # the first rung needs no approval
    waiting = await _waiting(h)
    assert (waiting["action"], waiting["target"]) == ("docker.recreate", "web-1")
    assert waiting["reason"].startswith("step 1 failed: step 2 waits for 1 approval(s) until ")
    [listed] = (await (await h.client.get("/api/v1/approvals")).json())["approvals"]
    assert (listed["id"], listed["action"], listed["state"]) == (
        waiting["approval_id"],
        "docker.recreate",
        "pending",
    )
    assert h.metric("remediator_approvals_pending") == 1
    # Repeats while it waits are counted, never a rung run again or another request.
    _, answer = await h.post(message(alert("web-1")))
    assert [d["outcome"] for d in answer["decisions"]] == ["deduplicated"]
    assert recreate.calls == [] and restart.calls == [(1, "web-1")]
    path = f"/api/v1/approvals/{waiting['approval_id']}/approve"
    status, refused = await h.api(path, {"by": "via the API"}, who="mallory")
    assert status == 403 and "not an approver" in refused["error"]
    assert recreate.calls == []
    status, _ = await h.api(path, {"by": "via the API"}, who="alice")
    assert status == 200
    record = await h.wait_outcome(waiting["id"], {"executed", "failed"})
    assert record["outcome"] == "executed" and record["reason"] == "docker.recreate web-1: verified"
    assert recreate.calls == [(2, "web-1")] and notify.calls == []
    assert h.metric("remediator_approvals_pending") == 0
    assert h.metric("remediator_policy_tripped", policy="web-down") == 0


async def test_a_denied_later_rung_ends_the_ladder_without_running_it(
    harness: HarnessFactory,
) -> None:
    restart, recreate, notify = Scripted(False), Scripted(True), Scripted()
    h = await harness(
        ASKING.replace("approvers: ['api:alice']", "approvers: ['api:alice', 'api:bob']"),
        executors=_executors(restart, recreate, notify),
    )
    await h.post(message(alert("web-1")))
    waiting = await _waiting(h)
    path = f"/api/v1/approvals/{waiting['approval_id']}/deny"
    status, _ = await h.api(path, {"by": "via the API"}, who="bob")
    assert status == 200
    record = await h.wait_outcome(waiting["id"], {"denied"})
    assert record["reason"] == "denied by api:bob"
    # Nothing after it runs: a person said no, and no remedy failed (the breaker stays shut).
    _, answer = await h.post(message(alert("web-1")))
    assert [d["outcome"] for d in answer["decisions"]] == ["deduplicated"]
    assert recreate.calls == [] and notify.calls == [] and restart.calls == [(1, "web-1")]
    assert h.metric("remediator_policy_tripped", policy="web-down") == 0


async def test_a_resolved_alert_cancels_a_later_rungs_request(harness: HarnessFactory) -> None:
    restart, recreate, notify = Scripted(False), Scripted(True), Scripted()
    h = await harness(ASKING, executors=_executors(restart, recreate, notify))
    await h.post(message(alert("web-1")))
    waiting = await _waiting(h)
    await h.post(message(alert("web-1", status="resolved")))
    record = await h.wait_outcome(waiting["id"], {"cancelled"})
    assert record["approval_id"] == waiting["approval_id"]
    path = f"/api/v1/approvals/{waiting['approval_id']}/approve"
    status, _ = await h.api(path, {"by": "via the API"}, who="alice")
    assert status == 409
    assert recreate.calls == []


async def test_a_later_rungs_approval_is_asked_only_where_its_rule_says(
    harness: HarnessFactory,
) -> None:
    only_prod = ASKING.replace("approval: always", "approval: {when: \"labels.env == 'prod'\"}")
    restart, recreate, notify = Scripted(False, False), Scripted(True, True), Scripted()
    h = await harness(only_prod, executors=_executors(restart, recreate, notify))
    await h.post(message(alert("web-1", env="prod")))
    await _waiting(h)
    await h.post(message(alert("web-2", env="staging")))
    await _until(lambda: _called_on(recreate, "web-2"), "staging's second rung to run unasked")
    assert recreate.calls == [(2, "web-2")]


async def _called_on(executor: Scripted, target: str) -> bool:
    return any(t == target for _, t in executor.calls)


async def test_the_slack_request_names_the_rung_it_asks_for(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    restart, recreate, notify = Scripted(False), Scripted(True), Scripted()
    h = await harness(
        ASKING.replace("approvers: ['api:alice']", "approvers: ['U111']"),
        config(slack_api),
        executors=_executors(restart, recreate, notify),
    )
    await h.post(message(alert("web-1")))
    waiting = await _waiting(h)
    [posted] = await eventually(lambda: slack_api.messages(CHANNEL), "the approval message")
    text = str(posted["blocks"])
    assert "*Action (step 2 of 3):* `docker.recreate` on `web-1`" in text
    assert "ContainerDown" in text and "`container=web-1`" in text
    assert await click(h, posted, "U111") == 200
    record = await h.wait_outcome(waiting["id"], {"executed", "failed"})
    assert record["outcome"] == "executed" and recreate.calls == [(2, "web-1")]
