"""Resume and reset decide again, at once, the still-firing episodes a pause or a breaker held:
through the whole pipeline (every guard again), once (however many replicas or repeats race
it), with the alert as it was recorded (labels, annotations, generator URL), and never an
episode that resolved meanwhile. Both backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from remediator.actions.base import ActionRequest, ActionResult
from remediator.store.postgres import PostgresStore
from remediator.store.roles.store import Store
from remediator.store.sqlite import SqliteStore
from tests.integration.conftest import Harness, HarnessFactory, on_both_backends
from tests.integration.test_guards_pipeline import alert, message, policy

pytestmark = on_both_backends


class Recording:
    """Stands in for Docker: records each run; `gate` holds calls until set."""

    def __init__(self) -> None:
        self.ran: list[ActionRequest] = []
        self.gate: asyncio.Event | None = None

    async def execute(self, request: ActionRequest) -> ActionResult:
        self.ran.append(request)
        if self.gate is not None and request.target == "web-1":
            await self.gate.wait()
        return ActionResult(ok=True, detail=f"restarted {request.target}")

    @property
    def targets(self) -> list[str]:
        return [r.target for r in self.ran]

    async def probe(self) -> str | None:
        return None

    async def close(self) -> None:
        return None


async def _until(probe: Any, what: str, within: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not probe():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


async def _outcomes(h: Harness, *alerts: dict[str, Any]) -> list[str]:
    status, answer = await h.post(message(*alerts))
    assert status == 200, answer
    return [d["outcome"] for d in answer["decisions"]]


async def _settled(h: Harness) -> list[tuple[str, str]]:
    """(target, outcome) of every decision once none is executing any more."""
    found: list[dict[str, Any]] = []

    async def done() -> bool:
        nonlocal found
        found = await h.decisions()
        return all(d["outcome"] != "executing" for d in found)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not await done():
        if loop.time() > deadline:
            pytest.fail(f"decisions still executing: {found}")
        await asyncio.sleep(0.02)
    return [(d["target"], d["outcome"]) for d in found]


async def test_resume_decides_the_held_episodes_at_once_but_not_a_resolved_one(
    harness: HarnessFactory,
) -> None:
    executor = Recording()
    h = await harness(policy(guards=""), executors={"docker.restart": executor})
    await h.api("/api/v1/pause")
    assert await _outcomes(h, alert("web-1"), alert("web-2")) == ["paused", "paused"]
    assert await _outcomes(h, alert("web-2", status="resolved")) == []  # it ended meanwhile
    status, answer = await h.api("/api/v1/resume", who="alice")
    assert status == 200 and answer["paused"] is False
    assert [(d["target"], d["outcome"]) for d in answer["redecided"]] == [("web-1", "executing")]
    assert await _settled(h) == [("web-1", "paused"), ("web-2", "paused"), ("web-1", "executed")]
    assert executor.targets == ["web-1"]
    # Alertmanager's repeat comes later: a repeat of that decision, nothing runs twice.
    assert await _outcomes(h, alert("web-1")) == ["deduplicated"]
    assert (await h.api("/api/v1/resume"))[1]["redecided"] == []
    assert executor.targets == ["web-1"]
    assert h.metric("remediator_decisions_total", policy="restart-web", outcome="executed") == 1


async def test_a_held_episode_is_decided_again_with_its_annotations_and_generator_url(
    harness: HarnessFactory,
) -> None:
    text = """
name: exec-web
match: {matchers: ['alertname="ContainerDown"']}
action:
  type: docker.exec
  params:
    container: "{{ labels.container }}"
    command: [logger, "{{ annotations.summary }}", "{{ alert.generator_url }}"]
  allow_targets: ["web-*"]
"""
    executor = Recording()
    h = await harness(text, executors={"docker.exec": executor})
    await h.api("/api/v1/pause")
    fired = alert("web-1") | {
        "annotations": {"summary": "web-1 has been down for 5m"},
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
    }
    assert await _outcomes(h, fired) == ["paused"]
    [again] = (await h.api("/api/v1/resume"))[1]["redecided"]
    assert again["outcome"] == "executing"
    await _until(lambda: executor.ran, "the command to run")
    params = executor.ran[0].params
    assert "web-1 has been down for 5m" in params.values()
    assert "http://prometheus:9090/graph?g0.expr=up" in params.values()


async def test_every_guard_judges_a_held_episode_again(harness: HarnessFactory) -> None:
    executor = Recording()
    h = await harness(policy(guards='rate_limit: "1/1h"'), executors={"docker.restart": executor})
    assert await _outcomes(h, alert("web-1")) == ["executing"]
    assert await _settled(h) == [("web-1", "executed")]  # it ran: the rate limit is spent
    await h.api("/api/v1/pause")
    assert await _outcomes(h, alert("web-2")) == ["paused"]
    [again] = (await h.api("/api/v1/resume"))[1]["redecided"]
    assert again["outcome"] == "rate_limited" and "rate_limit 1/1h" in again["reason"]


async def test_an_action_held_at_its_turn_starts_no_cooldown_and_resume_runs_it(
    harness: HarnessFactory,
) -> None:
    executor = Recording()
    executor.gate = asyncio.Event()
    h = await harness(
        policy(guards="cooldown: 1h"),
        "limits: {max_concurrent_actions: 1}\n",
        executors={"docker.restart": executor},
    )
    assert await _outcomes(h, alert("web-1")) == ["executing"]
    await _until(lambda: executor.ran, "the first action to hold the only slot")
    assert await _outcomes(h, alert("web-2")) == ["executing"]  # queued behind it
    await h.api("/api/v1/pause")
    executor.gate.set()
    await _until(lambda: len(executor.ran) == 1 and h.daemon.runner.running == 0, "the queue")
    assert await _settled(h) == [("web-1", "executed"), ("web-2", "paused")]
    [again] = (await h.api("/api/v1/resume"))[1]["redecided"]
    assert (again["target"], again["outcome"]) == ("web-2", "executing")  # no cooldown
    await _until(lambda: executor.targets == ["web-1", "web-2"], "the held action to run")


async def test_reset_decides_again_only_its_policys_tripped_episodes(
    harness: HarnessFactory,
) -> None:
    executor = Recording()
    two = policy("restart-a", guards="") + "---\n" + policy("restart-b", guards="")
    h = await harness(two, executors={"docker.restart": executor})
    await h.daemon.switches.trip("restart-a", "verify failed")
    await h.daemon.switches.trip("restart-b", "verify failed")
    assert await _outcomes(h, alert("web-1")) == ["tripped", "tripped"]
    # Reset while paused: still held (by the pause), nothing decided yet.
    await h.api("/api/v1/pause")
    status, answer = await h.api("/api/v1/policies/restart-a/reset")
    assert status == 200 and answer["cleared"] == ["breaker"] and answer["redecided"] == []
    [again] = (await h.api("/api/v1/resume"))[1]["redecided"]
    assert (again["policy"], again["outcome"]) == ("restart-a", "executing")
    await _until(lambda: executor.targets == ["web-1"], "restart-a's action")
    # restart-b's breaker is still open: its episode waits for its own reset.
    [again] = (await h.api("/api/v1/policies/restart-b/reset"))[1]["redecided"]
    assert (again["policy"], again["outcome"]) == ("restart-b", "executing")
    await _until(lambda: executor.targets == ["web-1", "web-1"], "restart-b's action")
    assert (await h.api("/api/v1/policies/restart-b/reset"))[1]["redecided"] == []


@pytest.fixture
async def two_stores(
    store_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Store, Store]]:
    """Two store objects on one database: two replicas' (or, on SQLite, two processes')."""
    if store_backend == "postgresql":
        url = request.getfixturevalue("postgres").database()
        stores: tuple[Store, Store] = (
            PostgresStore(url, owner="replica-a", max_size=4),
            PostgresStore(url, owner="replica-b", max_size=4),
        )
    else:
        path = str(tmp_path / "shared.db")
        stores = (SqliteStore(path, owner="replica-a"), SqliteStore(path, owner="replica-b"))
    for store in stores:
        await store.open()
    yield stores
    for store in stores:
        await store.close()


async def test_a_resume_racing_a_repeat_and_another_replica_acts_once(
    two_stores: tuple[Store, Store], harness: HarnessFactory
) -> None:  # the stores first: they close after the daemons on them stopped
    ran = [Recording(), Recording()]
    a, b = [
        await harness(policy(guards=""), executors={"docker.restart": r}, store=s)
        for r, s in zip(ran, two_stores, strict=True)
    ]
    await a.api("/api/v1/pause")
    assert await _outcomes(a, alert("web-1")) == ["paused"]
    assert await _outcomes(b, alert("web-1")) == ["paused"]  # the other replica's copy
    resumed, redecided, repeat = await asyncio.gather(
        a.api("/api/v1/resume"),
        b.daemon.intake.redecide(),
        b.post(message(alert("web-1"))),
    )
    assert resumed[0] == 200 and repeat[0] == 200
    # At most one of the two re-decisions decided it (none if the repeat came first); the
    # other left it alone: no second decision, no repeat counted that nobody sent.
    again = [*resumed[1]["redecided"], *(v.to_api() for v in redecided)]
    assert [d["outcome"] for d in again] in ([], ["executing"]), again
    await _until(lambda: ran[0].ran or ran[1].ran, "the action")
    settled = await _settled(a)
    assert settled.count(("web-1", "executed")) == 1, settled
    assert sorted(len(r.ran) for r in ran) == [0, 1]  # run once, by whichever decided it
    await b.daemon.intake.flush_repeats()
    records = await a.decisions()
    # Every webhook sent (three) is a record or a repeat on one; a re-decision adds its own.
    seen = sum(d["repeats"] + (d["outcome"] != "deduplicated") for d in records)
    assert seen == 3 + len(again), records
