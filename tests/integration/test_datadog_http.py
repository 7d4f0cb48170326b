"""POST /webhook/datadog: header auth, every transition through the real pipeline and store,
the real corpus, and a Triggered notification restarting a real container."""

from __future__ import annotations

import json
from typing import Any

import pytest

from remediator.actions.docker import DockerExecutor
from tests.conftest import CORPUS
from tests.fixtures.datadog import notification
from tests.fixtures.docker_engine import DockerEngine
from tests.integration.conftest import AM_TOKEN, API_TOKEN, Harness, HarnessFactory

DD_TOKEN = "dd-token-0123456789"
CONFIG = f"""
auth:
  alertmanager: {{bearer_token: {AM_TOKEN}}}
  datadog: {{header: X-Remediator-Token, token: {DD_TOKEN}}}
  api: {{bearer_token: {API_TOKEN}}}
"""
POLICY = """
name: restart-unhealthy-dd
match:
  source: datadog
  matchers: ['alertname="Container unhealthy"', 'env="prod"', 'datadog_test!="true"']
action:
  type: docker.restart
  params: {container: "{{ labels.container }}", timeout: 1s}
  allow_targets: ["web-*"]
guards: {cooldown: 10m, %s}
verify: {within: 20s}
"""
HEADERS = {"X-Remediator-Token": DD_TOKEN, "Content-Type": "application/json"}


async def post(h: Harness, body: bytes, headers: dict[str, str] = HEADERS) -> tuple[int, Any]:
    sent = {"Content-Type": "application/json", **headers}  # Datadog sends JSON
    resp = await h.client.post("/webhook/datadog", data=body, headers=sent)
    return resp.status, await resp.json()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Remediator-Token": "wrong"},
        {"Authorization": f"Bearer {DD_TOKEN}"},
        {"X-Remediator-Token": DD_TOKEN.upper()},
    ],
)
async def test_missing_or_wrong_header_is_401(
    harness: HarnessFactory, headers: dict[str, str]
) -> None:
    h = await harness(POLICY % "dry_run: true", CONFIG)
    status, answer = await post(h, notification("Triggered"), headers)
    assert status == 401 and answer == {"error": "missing or wrong credentials"}
    assert await h.decisions() == []
    assert h.metric("remediator_webhook_rejected_total", endpoint="datadog", code="401") == 1


async def test_the_header_name_is_configurable(harness: HarnessFactory) -> None:
    config = CONFIG.replace("X-Remediator-Token", "X-Custom")
    h = await harness(POLICY % "dry_run: true", config)
    assert (await post(h, notification("Triggered"), {"X-Custom": DD_TOKEN}))[0] == 200


@pytest.mark.parametrize("cycle", ["c1", None], ids=["cycle-key", "monitor-fallback"])
async def test_an_incident_from_trigger_to_recovery_and_again(
    harness: HarnessFactory, cycle: str | None
) -> None:
    h = await harness(POLICY % "dry_run: true", CONFIG)
    steps = [
        ("Triggered", "c1"),
        ("Re-Triggered", "c1"),
        ("Renotify", "c1"),
        ("Triggered", "c1"),
        ("Recovered", "c1"),
        ("Triggered", "c2"),
        ("Re-Triggered", "c2"),
    ]
    answers = []
    for transition, key in steps:
        status, answer = await post(h, notification(transition, cycle=key if cycle else None))
        assert status == 200, answer
        answers.append([d["outcome"] for d in answer["decisions"]])
    assert answers == [
        ["dry_run"],
        ["deduplicated"],
        ["deduplicated"],
        ["deduplicated"],  # one incident
        [],  # Recovered matches no firing policy; it ends the episode
        ["cooldown"],  # a new incident inside the 10m cooldown on web-1
        ["deduplicated"],
    ]
    records = await h.decisions()
    assert [(d["outcome"], d["repeats"]) for d in records] == [
        ("dry_run", 0),
        ("deduplicated", 3),
        ("cooldown", 0),
        ("deduplicated", 1),
    ]
    assert {d["source"] for d in records} == {"datadog"}
    assert h.metric("remediator_alerts_received_total", source="datadog", status="firing") == 6
    assert h.metric("remediator_alerts_received_total", source="datadog", status="resolved") == 1


async def test_a_tag_holding_a_lone_surrogate_is_decided_stored_and_remembered(
    harness: HarnessFactory,
) -> None:
    # Datadog bodies are read by json.loads, which keeps a lone surrogate (`\ud800`); the
    # sighting row's labels and the episode cache's digest are then written by the standard
    # library (orjson refuses such text). The repeats must still find the episode.
    h = await harness(POLICY % "dry_run: true", CONFIG)
    hostile = b"service:w\\ud800b"
    answers = []
    for transition in ("Triggered", "Re-Triggered", "Re-Triggered"):
        body = notification(transition).replace(b"service:web", hostile)
        assert hostile in body
        status, answer = await post(h, body)
        assert status == 200, answer
        answers.append([d["outcome"] for d in answer["decisions"]])
    assert answers == [["dry_run"], ["deduplicated"], ["deduplicated"]]
    records = await h.decisions()
    assert [(d["outcome"], d["repeats"]) for d in records] == [
        ("dry_run", 0),
        ("deduplicated", 2),
    ]


async def test_warn_then_triggered_is_one_incident(harness: HarnessFactory) -> None:
    h = await harness(POLICY % "dry_run: true", CONFIG)
    for transition in ("Warn", "Triggered", "Re-Warn"):
        assert (await post(h, notification(transition, cycle=None)))[0] == 200
    assert await h.outcomes() == ["dry_run", "deduplicated"]


async def test_test_notifications_are_excluded_by_the_policy(harness: HarnessFactory) -> None:
    h = await harness(POLICY % "dry_run: true", CONFIG)
    body = notification(
        "Triggered",
        EVENT_TITLE="[Triggered] [TEST] Container unhealthy",
        ALERT_TITLE="[TEST] Container unhealthy",
    )
    status, answer = await post(h, body)
    assert status == 200 and answer["decisions"] == []


async def test_alertmanager_only_policies_ignore_datadog(harness: HarnessFactory) -> None:
    h = await harness(
        (POLICY % "dry_run: true").replace("source: datadog", "source: alertmanager"), CONFIG
    )
    assert (await post(h, notification("Triggered")))[1]["decisions"] == []


@pytest.mark.parametrize("path", sorted((CORPUS / "datadog").glob("*.json")), ids=lambda p: p.name)
async def test_every_corpus_body_is_accepted_without_5xx(
    harness: HarnessFactory, path: Any
) -> None:
    catch_all = """
name: record-datadog
match: {source: datadog}
action: {type: docker.restart, params: {container: "web-{{ labels.monitor_id | default('x') }}"}, allow_targets: ["web-*"]}
guards: {dry_run: true}
"""
    h = await harness(catch_all, CONFIG)
    status, answer = await post(h, path.read_bytes())
    assert status == 200, answer
    assert answer["alerts"] == 1
    firing = json.loads(path.read_bytes()).get("title", "").find("[Recovered") < 0
    assert [d["outcome"] for d in answer["decisions"]] == (["dry_run"] if firing else [])


async def test_a_body_missing_fields_is_400_naming_them(harness: HarnessFactory) -> None:
    h = await harness(POLICY % "dry_run: true", CONFIG)
    status, answer = await post(h, b'{"text": "hello", "tags": "env:prod"}')
    assert status == 400
    assert "transition" in answer["error"] and "monitor" in answer["error"]
    assert await h.decisions() == []


async def test_triggered_restarts_a_real_container_once(
    harness: HarnessFactory, docker_cleanup: DockerEngine
) -> None:
    docker_cleanup.run("web-dd")
    before = docker_cleanup.started_at_ns("web-dd")
    h = await harness(
        POLICY % 'rate_limit: "3/1h"',
        CONFIG,
        executors={"docker.restart": DockerExecutor(docker_cleanup.url)},
    )
    [decision] = (await post(h, notification("Triggered", container="web-dd")))[1]["decisions"]
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    restarted = docker_cleanup.started_at_ns("web-dd")
    assert restarted > before
    for transition in ("Re-Triggered", "Renotify"):
        [repeat] = (await post(h, notification(transition, container="web-dd")))[1]["decisions"]
        assert repeat["outcome"] == "deduplicated"
    assert h.daemon.runner.running == 0
    assert docker_cleanup.started_at_ns("web-dd") == restarted
