"""Executing through the whole engine against a real Docker engine: approved restarts,
failed verification tripping the breaker, Docker errors as `failed` with a reason."""

from __future__ import annotations

import itertools
import sqlite3
from typing import Any

from remediator.actions.docker import DockerExecutor
from tests.conftest import CORPUS
from tests.fixtures.docker_engine import DockerEngine, healthcheck
from tests.integration.conftest import HarnessFactory
from tests.integration.test_reload import eventually


def _policy(guards: str = "cooldown: 1m", within: str = "20s") -> str:
    return f"""
name: restart-web
match: {{matchers: ['alertname="ContainerDown"']}}
action:
  type: docker.restart
  params: {{container: "{{{{ labels.container }}}}", timeout: 1s}}
  allow_targets: ["web-*"]
guards: {{{guards}}}
verify: {{within: {within}}}
"""


def _message(container: str, starts: str = "2026-11-22T10:00:00Z") -> dict[str, Any]:
    return {
        "alerts": [
            {"labels": {"alertname": "ContainerDown", "container": container}, "startsAt": starts}
        ]
    }


async def test_an_approved_action_restarts_the_container(
    harness: HarnessFactory, docker_cleanup: DockerEngine
) -> None:
    docker_cleanup.run("web-approve")
    before = docker_cleanup.started_at_ns("web-approve")
    h = await harness(
        _policy("approval: always"),
        executors={"docker.restart": DockerExecutor(docker_cleanup.url)},
    )
    [decision] = (await h.post(_message("web-approve")))[1]["decisions"]
    assert decision["outcome"] == "awaiting_approval"
    assert docker_cleanup.started_at_ns("web-approve") == before  # nothing before approval
    status, _ = await h.api(f"/api/v1/approvals/{decision['approval_id']}/approve", {"by": "ok"})
    assert status == 200
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    assert "restarted web-approve" in record["reason"]
    assert docker_cleanup.started_at_ns("web-approve") > before
    assert (
        h.metric(
            "remediator_actions_total",
            policy="restart-web",
            action="docker.restart",
            result="executed",
        )
        == 1
    )
    assert h.metric("remediator_approval_latency_seconds_count") == 1


async def test_failed_verification_trips_the_policy(
    harness: HarnessFactory, docker_cleanup: DockerEngine
) -> None:
    # a container the restart cannot cure: it never passes its healthcheck
    docker_cleanup.run("web-sick", healthcheck=healthcheck("false"))
    h = await harness(
        _policy(within="3s"), executors={"docker.restart": DockerExecutor(docker_cleanup.url)}
    )
    [decision] = (await h.post(_message("web-sick")))[1]["decisions"]
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "failed" and "health" in record["reason"], record
    # The failure is recorded before the breaker trips (the runner's order): wait for it.
    await eventually(lambda: "restart-web" in h.daemon.switches.gates.tripped, "the breaker")
    assert h.metric("remediator_policy_tripped", policy="restart-web") == 1
    [held] = (await h.post(_message("web-other", starts="2026-11-22T11:00:00Z")))[1]["decisions"]
    assert held["outcome"] == "tripped"


async def test_a_missing_container_is_failed_with_a_reason(
    harness: HarnessFactory, docker_cleanup: DockerEngine
) -> None:
    h = await harness(_policy(), executors={"docker.restart": DockerExecutor(docker_cleanup.url)})
    [decision] = (await h.post(_message("web-ghost")))[1]["decisions"]
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "failed"
    assert "web-ghost" in record["reason"] and "not found" in record["reason"]
    assert (
        "restart-web" not in h.daemon.switches.gates.tripped
    )  # a Docker error is not a failed verification


async def test_old_bodies_without_fingerprint_dedup(harness: HarnessFactory) -> None:
    catch = """
name: any-cluster-warning
match: {matchers: ['alertname="ClusterWarning"']}
action: {type: docker.restart, params: {container: "web-x"}, allow_targets: ["web-*"]}
guards: {dry_run: true}
"""
    h = await harness(catch)
    raw = (CORPUS / "alertmanager" / "09-am018-wire-exact-2-alerts.json").read_bytes()
    for _ in range(3):
        assert (await h.post(raw))[0] == 200
    records = await h.decisions()
    assert [(d["outcome"], d["repeats"]) for d in records] == [
        ("dry_run", 0),
        ("dry_run", 0),
        ("deduplicated", 2),
        ("deduplicated", 2),
    ]


async def test_max_concurrent_actions_queues_the_rest(
    harness: HarnessFactory, docker_cleanup: DockerEngine
) -> None:
    for name in ("web-q1", "web-q2", "web-q3"):
        docker_cleanup.run(name)  # sleep ignores SIGTERM: each restart takes its full 1s
    h = await harness(
        _policy(),
        "limits: {max_concurrent_actions: 1}\n",
        executors={"docker.restart": DockerExecutor(docker_cleanup.url)},
    )
    answer = (
        await h.post(
            {
                "alerts": [
                    {
                        "labels": {"alertname": "ContainerDown", "container": c},
                        "startsAt": "2026-11-22T10:00:00Z",
                    }
                    for c in ("web-q1", "web-q2", "web-q3")
                ]
            }
        )
    )[1]
    for decision in answer["decisions"]:
        assert (await h.wait_outcome(decision["id"], {"executed", "failed"}))[
            "outcome"
        ] == "executed"
    with sqlite3.connect(h.db_path) as db:  # the action rows as the store wrote them
        spans = db.execute(
            "SELECT started_at, finished_at FROM actions ORDER BY started_at"
        ).fetchall()
    assert len(spans) == 3
    for (_, first_end), (second_start, _) in itertools.pairwise(spans):
        assert second_start >= first_end  # never two at once
