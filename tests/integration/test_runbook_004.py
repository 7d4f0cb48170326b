"""Runbook 004's steps as shipped: each policy file in policies/ loaded as it is, fired by
an alert carrying the labels of its rule in deploy/prometheus/rules.yml, routed to
remediator by deploy/alertmanager.yml (amtool), and acting on real containers through the
real Docker executor. Slack is the stand-in API; the slow-responses ladder's latency check
answers through a Prometheus checker stand-in (its rule's query needs a histogram that the
test Prometheus app does not export)."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from remediator.actions.docker import DockerExecutor
from remediator.checks.prometheus import PrometheusChecker
from tests.fixtures.docker_engine import DockerEngine
from tests.fixtures.health_endpoint import HealthEndpoint
from tests.fixtures.procs import require_binary
from tests.fixtures.slack_api import SlackAPI
from tests.integration.conftest import HarnessFactory
from tests.integration.test_docker_executor import compose_labels
from tests.integration.test_slack_approvals import CHANNEL, config

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
RULES = yaml.safe_load((REPO / "deploy" / "prometheus" / "rules.yml").read_text())


def shipped(name: str) -> str:
    """A shipped policy file's text: in policies/, or in the folder of those that need more
    than the embedded default (policies/slack/, policies/hooks/)."""
    [found] = (REPO / "policies").glob(f"**/{name}.yaml")
    return found.read_text()


def rule_labels(alert: str) -> dict[str, str]:
    for group in RULES["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == alert:
                return {"alertname": alert, **{k: str(v) for k, v in rule["labels"].items()}}
    raise AssertionError(f"no rule {alert} in deploy/prometheus/rules.yml")


def body(labels: dict[str, str]) -> dict[str, Any]:
    alert = {"status": "firing", "labels": labels, "annotations": {}, "startsAt": STARTS}
    return {"version": "4", "status": "firing", "alerts": [alert]}


STARTS = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# PID 1 that stops on SIGTERM at once (busybox sleep ignores it): a restart takes a second,
# not the policy's whole stop grace period.
GRACEFUL = ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def _docker_kinds(executor: DockerExecutor) -> dict[str, Any]:
    return dict.fromkeys(("docker.restart", "docker.exec", "docker.recreate"), executor)


@pytest.mark.parametrize(
    "alert", [rule["alert"] for group in RULES["groups"] for rule in group["rules"]]
)
def test_every_rule_is_routed_to_remediator(alert: str) -> None:
    amtool = require_binary("amtool", "Debian package prometheus-alertmanager")
    labels = [f"{k}={v}" for k, v in rule_labels(alert).items()]
    done = subprocess.run(
        [
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={REPO / 'deploy' / 'alertmanager.yml'}",
            *labels,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "remediator" in done.stdout.strip().split(","), done.stdout


@pytest.mark.parametrize(
    ("policy", "alert", "service"),
    [
        ("004-restart-pipeline-on-error-rate", "PipelineHighErrorRate", "data-pipeline"),
        ("004-restart-chroma-on-failed-heartbeat", "ChromaHeartbeatFailing", "chroma"),
    ],
)
async def test_a_compose_service_is_restarted(
    harness: HarnessFactory,
    docker_cleanup: DockerEngine,
    docker_executor: DockerExecutor,
    policy: str,
    alert: str,
    service: str,
) -> None:
    engine = docker_cleanup
    name = f"obsidian-{service}-1"
    engine.run(name, command=GRACEFUL, labels=compose_labels("obsidian", service, 1))
    before = engine.started_at_ns(name)
    h = await harness(shipped(policy), executors=_docker_kinds(docker_executor))
    status, answer = await h.post(body(rule_labels(alert)))
    assert status == 200, answer
    [decision] = answer["decisions"]
    assert (decision["policy"], decision["target"]) == (
        policy.removeprefix("004-"),
        f"obsidian/{service}",
    )
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    assert engine.started_at_ns(name) > before


async def test_redis_is_restarted_only_once_a_person_approves(
    harness: HarnessFactory,
    docker_cleanup: DockerEngine,
    docker_executor: DockerExecutor,
    slack_api: SlackAPI,
) -> None:
    engine = docker_cleanup
    engine.run("obsidian-redis-1", command=GRACEFUL, labels=compose_labels("obsidian", "redis", 1))
    before = engine.started_at_ns("obsidian-redis-1")
    h = await harness(
        shipped("004-restart-redis-after-approval"),
        config(slack_api),
        executors=_docker_kinds(docker_executor),
    )
    [decision] = (await h.post(body(rule_labels("RedisDown"))))[1]["decisions"]
    assert decision["outcome"] == "awaiting_approval"
    assert engine.started_at_ns("obsidian-redis-1") == before
    status, _ = await h.api(f"/api/v1/approvals/{decision['approval_id']}/approve")
    assert status == 200
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    assert engine.started_at_ns("obsidian-redis-1") > before


async def test_a_container_over_its_memory_is_restarted(
    harness: HarnessFactory, docker_cleanup: DockerEngine, docker_executor: DockerExecutor
) -> None:
    engine = docker_cleanup
    engine.run("obsidian-api-prod", command=GRACEFUL)
    engine.run("postgres-prod", command=GRACEFUL)
    h = await harness(
        shipped("004-restart-on-memory-pressure"), executors=_docker_kinds(docker_executor)
    )
    labels = rule_labels("ContainerMemoryHigh")
    before = engine.started_at_ns("obsidian-api-prod")
    [ok] = (await h.post(body({**labels, "name": "obsidian-api-prod"})))[1]["decisions"]
    assert (await h.wait_outcome(ok["id"], {"executed", "failed"}))["outcome"] == "executed"
    assert engine.started_at_ns("obsidian-api-prod") > before
    [refused] = (await h.post(body({**labels, "name": "postgres-prod"})))[1]["decisions"]
    assert refused["outcome"] == "out_of_scope"


async def test_old_backups_are_deleted_and_recent_ones_kept(
    harness: HarnessFactory, docker_cleanup: DockerEngine, docker_executor: DockerExecutor
) -> None:
    engine = docker_cleanup
    backup = engine.run("obsidian-backup-prod")
    for name, age in (
        ("old.tar.gz", "-d 2026-01-01"),
        ("new.tar.gz", ""),
        ("old.txt", "-d 2026-01-01"),
    ):
        command = f"mkdir -p /backups && touch {age} /backups/{name}"
        code, out = backup.exec_run(["sh", "-c", command])
        assert code == 0, out
    h = await harness(shipped("004-delete-old-backups"), executors=_docker_kinds(docker_executor))
    [decision] = (await h.post(body(rule_labels("BackupDiskLow"))))[1]["decisions"]
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    assert record["reason"].endswith("obsidian-backup-prod: exit 0; output: /backups/old.tar.gz")
    code, out = backup.exec_run(["ls", "/backups"])
    assert code == 0 and isinstance(out, bytes)
    assert out.decode().split() == ["new.tar.gz", "old.txt"]


async def _second_step(h: Any) -> int:
    """The id of the ladder's second step's decision, once the first handed over."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not (steps := [r for r in await h.daemon.store.decisions(100) if r.step == 2]):
        assert loop.time() < deadline, "the ladder never reached its second step"
        await asyncio.sleep(0.05)
    return int(steps[0].id)


class Latency(PrometheusChecker):
    """The p95 latency the ladder's verify queries read, as the test sets it."""

    def __init__(self, value: float) -> None:
        super().__init__("http://127.0.0.1:9")
        self.value = value

    async def instant(self, query: str) -> dict[str, Any]:
        sample = {"metric": {}, "value": [0, str(self.value)]}
        return {"status": "success", "data": {"resultType": "vector", "result": [sample]}}


async def test_slow_responses_restart_then_flush_the_cache(
    harness: HarnessFactory,
    docker_cleanup: DockerEngine,
    docker_executor: DockerExecutor,
    slack_api: SlackAPI,
) -> None:
    engine = docker_cleanup
    engine.run("obsidian-api-1", command=GRACEFUL, labels=compose_labels("obsidian", "api", 1))
    engine.run("obsidian-redis-prod", command=GRACEFUL)
    latency = Latency(3.5)  # still slow after the restart ...
    # The shipped file with its 3m verify windows shortened: the test waits for each to end.
    text = shipped("004-slow-responses-ladder").replace("within: 3m", "within: 2s")
    assert text.count("within: 2s") == 2
    h = await harness(
        text, config(slack_api), executors=_docker_kinds(docker_executor), checker=latency
    )
    [first] = (await h.post(body(rule_labels("SlowResponses"))))[1]["decisions"]
    assert first["action"] == "docker.restart"
    await h.wait_outcome(first["id"], {"failed"})
    second = await _second_step(h)
    latency.value = 0.4  # ... and fast once the cache is flushed
    record = await h.wait_outcome(second, {"executed", "failed"})
    assert (record["action"], record["outcome"]) == ("docker.exec", "executed"), record
    code, out = engine.client.containers.get("obsidian-redis-prod").exec_run(
        ["cat", "/tmp/redis-cli.args"]
    )
    assert code == 0 and isinstance(out, bytes) and out.decode() == "FLUSHALL\n"
    assert not slack_api.messages(CHANNEL)  # the ladder ended before its notify step


async def test_service_down_restart_then_force_recreate(
    harness: HarnessFactory,
    docker_cleanup: DockerEngine,
    docker_executor: DockerExecutor,
    health_endpoint: HealthEndpoint,
) -> None:
    engine = docker_cleanup
    health_endpoint.fail()
    labels = compose_labels("pyairtable", "api-gateway", 1)
    old = engine.run("pyairtable-api-gateway-1", command=GRACEFUL, labels=labels)
    # The shipped file with its 2m and 3m verify windows shortened for the test.
    text = shipped("004-service-down-ladder")
    text = text.replace("within: 2m", "within: 2s").replace("within: 3m", "within: 10s")
    h = await harness(text, executors=_docker_kinds(docker_executor))
    alert = {**rule_labels("ServiceDown"), "compose_project": "pyairtable"}
    alert |= {"compose_service": "api-gateway", "instance": health_endpoint.address}
    [first] = (await h.post(body(alert)))[1]["decisions"]
    # The restart does not bring /health back: the ladder recreates the container.
    await h.wait_outcome(first["id"], {"failed"})
    second = await _second_step(h)
    health_endpoint.fail(False)
    record = await h.wait_outcome(second, {"executed", "failed"})
    assert (record["action"], record["outcome"]) == ("docker.recreate", "executed"), record
    assert "healthy: GET http://" in record["reason"]
    replaced = engine.client.api.inspect_container("pyairtable-api-gateway-1")
    assert replaced["Id"] != old.id
    assert replaced["Config"]["Labels"] == old.attrs["Config"]["Labels"]
