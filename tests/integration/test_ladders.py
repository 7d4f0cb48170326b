"""Escalation ladders (`steps`) through the whole daemon, on SQLite and PostgreSQL: each rung
its own decision (`step`), a rung that fails or is not verified hands over to the next at
once, a verified rung ends the ladder, repeats never run a rung again, the cooldown is the
ladder's, and pause and the breaker are checked before every rung. The executors are
stand-ins of the Executor protocol that answer as scripted per action type."""

from __future__ import annotations

import asyncio
from typing import Any

from remediator.actions.base import ActionRequest, ActionResult
from tests.integration.conftest import HarnessFactory, on_both_backends
from tests.integration.test_guards_pipeline import alert, message
from tests.integration.test_runner import _until

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
