"""Runbook steps taken on Docker Compose services, as shipped: runbook 001's "restart every
service when the site is down", 002's "restart the whole stack (use with caution)" and its
per-service restart, 003's compose rollback (`down; pull; up -d`, then `curl -f
/api/health`), 000's restart from a Datadog monitor, and the last rung of 004's service-down
ladder. Each policy file is loaded as it is (a test only shortens a window or points a health
URL at loopback, after checking the text it replaces), fired with the labels of its rule in
deploy/prometheus/rules.yml (or the body Datadog sends for deploy/datadog's monitor), and acts
on real containers through the real Docker executor; Slack is the stand-in API, the health
endpoints and the image registry are real servers on loopback."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker.models.containers import Container

from remediator.actions.docker import DockerExecutor
from remediator.store.records import DecisionRecord
from tests.fixtures.datadog import SAMPLE, render
from tests.fixtures.docker_engine import IMAGE, DockerEngine
from tests.fixtures.health_endpoint import HealthEndpoint
from tests.fixtures.procs import free_port, require_binary, stop_process, wait_for
from tests.fixtures.slack_api import SlackAPI
from tests.integration.conftest import Harness, HarnessFactory
from tests.integration.test_datadog_http import CONFIG as DATADOG_CONFIG
from tests.integration.test_datadog_http import post as post_datadog
from tests.integration.test_docker_executor import compose_labels
from tests.integration.test_runbook_004 import GRACEFUL, body, rule_labels, shipped
from tests.integration.test_slack_approvals import CHANNEL, click, config, eventually

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
MONITOR = REPO / "deploy" / "datadog" / "000-container-unhealthy.json"


def docker_kinds(executor: DockerExecutor) -> dict[str, Any]:
    return dict.fromkeys(("docker.restart", "docker.exec", "docker.recreate"), executor)


def replaced(text: str, old: str, new: str, count: int = 1) -> str:
    """`text` with `old` replaced, after checking it occurs exactly `count` times."""
    assert text.count(old) == count, f"{old!r} occurs {text.count(old)} times, not {count}"
    return text.replace(old, new)


def compose_alert(alert: str, project: str, service: str) -> dict[str, Any]:
    """The alert of rule `alert` for one compose service (its relabelled labels added)."""
    return body({**rule_labels(alert), "compose_project": project, "compose_service": service})


def run_service(engine: DockerEngine, project: str, service: str, number: int = 1) -> Container:
    name = f"{project}-{service}-{number}"
    return engine.run(name, command=GRACEFUL, labels=compose_labels(project, service, number))


async def settle(h: Harness, decision_id: int) -> dict[str, Any]:
    return await h.wait_outcome(decision_id, {"executed", "failed"})


# --- R1-1: runbook 001, Site Completely Down -> `docker-compose restart` ---------------------


def site_policy(health: HealthEndpoint) -> str:
    """The shipped policy with the site's health URL pointed at the loopback endpoint."""
    text = shipped("001-restart-stack-when-site-down")
    return replaced(text, "https://vibesheets.com/health", f"{health.url}/health")


async def test_site_down_restarts_every_service_of_the_site_and_no_other(
    harness: HarnessFactory,
    docker_cleanup: DockerEngine,
    docker_executor: DockerExecutor,
    health_endpoint: HealthEndpoint,
) -> None:
    engine = docker_cleanup
    for service in ("app", "worker"):
        run_service(engine, "vibesheets", service)
    run_service(engine, "pyairtable", "api-gateway")
    before = {
        name: engine.started_at_ns(name)
        for name in ("vibesheets-app-1", "vibesheets-worker-1", "pyairtable-api-gateway-1")
    }
    h = await harness(site_policy(health_endpoint), executors=docker_kinds(docker_executor))
    # The rule fires one alert per service of the project; the route groups by compose_service.
    decisions = []
    for service in ("app", "worker"):
        status, answer = await h.post(compose_alert("SiteCompletelyDown", "vibesheets", service))
        assert status == 200, answer
        decisions.extend(answer["decisions"])
    assert [d["target"] for d in decisions] == ["vibesheets/app", "vibesheets/worker"]
    for decision in decisions:
        record = await settle(h, decision["id"])
        assert record["outcome"] == "executed", record
        # The runbook's `curl -f` of the site, after the restart.
        assert f"healthy: GET {health_endpoint.url}/health: 200" in record["reason"]
    assert engine.started_at_ns("vibesheets-app-1") > before["vibesheets-app-1"]
    assert engine.started_at_ns("vibesheets-worker-1") > before["vibesheets-worker-1"]
    # Attacks: another project's service, and a service name that tries to leave the project.
    [other] = (await h.post(compose_alert("SiteCompletelyDown", "pyairtable", "api-gateway")))[1][
        "decisions"
    ]
    assert other["outcome"] == "out_of_scope", other
    [hostile] = (await h.post(compose_alert("SiteCompletelyDown", "vibesheets", "app/../db")))[1][
        "decisions"
    ]
    assert hostile["outcome"] == "render_error", hostile
    assert "is not a valid Compose name" in hostile["reason"]
    assert engine.started_at_ns("pyairtable-api-gateway-1") == before["pyairtable-api-gateway-1"]


async def test_a_site_still_down_after_the_restart_fails_and_trips_the_breaker(
    harness: HarnessFactory,
    docker_cleanup: DockerEngine,
    docker_executor: DockerExecutor,
    health_endpoint: HealthEndpoint,
) -> None:
    engine = docker_cleanup
    run_service(engine, "vibesheets", "app")
    before = engine.started_at_ns("vibesheets-app-1")
    health_endpoint.fail()
    text = replaced(site_policy(health_endpoint), "within: 2m", "within: 2s")
    h = await harness(text, executors=docker_kinds(docker_executor))
    [decision] = (await h.post(compose_alert("SiteCompletelyDown", "vibesheets", "app")))[1][
        "decisions"
    ]
    record = await settle(h, decision["id"])
    assert record["outcome"] == "failed", record
    assert f"not healthy within 2s: GET {health_endpoint.url}/health: 503" in record["reason"]
    assert engine.started_at_ns("vibesheets-app-1") > before  # restarted, yet not enough
    # The failure is recorded before the breaker trips (the runner's order): wait for it.
    await eventually(
        lambda: h.metric("remediator_policy_tripped", policy="restart-stack-when-site-down") == 1,
        "the breaker to trip",
    )
    # The next step (redeploy the last good version) is a person's: nothing restarts again.
    _, answer = await h.post(compose_alert("SiteCompletelyDown", "vibesheets", "worker"))
    assert [d["outcome"] for d in answer["decisions"]] == ["tripped"]


# --- R2-4: runbook 002, restart the entire stack (use with caution), after approval ---------


async def test_the_whole_stack_restarts_only_as_far_as_a_person_approves_in_slack(
    harness: HarnessFactory,
    docker_cleanup: DockerEngine,
    docker_executor: DockerExecutor,
    slack_api: SlackAPI,
) -> None:
    engine = docker_cleanup
    stack = ("api-gateway", "airtable-gateway", "postgres")
    for service in stack:
        run_service(engine, "pyairtable", service)
    run_service(engine, "obsidian", "redis")
    names = [f"pyairtable-{s}-1" for s in stack] + ["obsidian-redis-1"]
    before = {name: engine.started_at_ns(name) for name in names}
    h = await harness(
        shipped("002-restart-whole-stack-after-approval"),
        config(slack_api),
        executors=docker_kinds(docker_executor),
    )
    decisions = {}
    for service in stack:
        [decision] = (await h.post(compose_alert("StackMostlyDown", "pyairtable", service)))[1][
            "decisions"
        ]
        assert decision["outcome"] == "awaiting_approval", decision
        decisions[service] = decision
    # Another project is out of the policy's scope: no approval is even asked for it.
    [other] = (await h.post(compose_alert("StackMostlyDown", "obsidian", "redis")))[1]["decisions"]
    assert other["outcome"] == "out_of_scope", other

    def three() -> list[dict[str, Any]] | None:
        found = slack_api.messages(CHANNEL)
        return found if len(found) == 3 else None

    messages = await eventually(three, "one approval message per service")
    by_service = {s: next(m for m in messages if f"pyairtable/{s}" in str(m)) for s in stack}
    # Nothing restarts before a person approves, nor when someone who is not an approver clicks.
    assert await click(h, by_service["api-gateway"], "U999") == 200
    await eventually(lambda: slack_api.ephemerals, "the refusal of a non-approver")
    assert {name: engine.started_at_ns(name) for name in names} == before
    assert h.daemon.runner.running == 0
    # The person restarts the two gateways and keeps the database.
    for service in ("api-gateway", "airtable-gateway"):
        assert await click(h, by_service[service], "U111") == 200
    assert await click(h, by_service["postgres"], "U222", "deny") == 200
    for service in ("api-gateway", "airtable-gateway"):
        record = await settle(h, decisions[service]["id"])
        assert record["outcome"] == "executed", record
        assert engine.started_at_ns(f"pyairtable-{service}-1") > before[f"pyairtable-{service}-1"]
    denied = await h.wait_outcome(decisions["postgres"]["id"], {"denied"})
    assert denied["outcome"] == "denied"
    assert engine.started_at_ns("pyairtable-postgres-1") == before["pyairtable-postgres-1"]
    assert engine.started_at_ns("obsidian-redis-1") == before["obsidian-redis-1"]


# --- R2-1: runbook 002, restart a service that is down -----------------------------------


async def test_a_service_not_answering_has_every_replica_restarted_and_only_it(
    harness: HarnessFactory, docker_cleanup: DockerEngine, docker_executor: DockerExecutor
) -> None:
    engine = docker_cleanup
    for service, number in (("web", 1), ("web", 2), ("db", 1)):
        run_service(engine, "shop", service, number)
    names = ("shop-web-1", "shop-web-2", "shop-db-1")
    before = {name: engine.started_at_ns(name) for name in names}
    h = await harness(
        shipped("restart-down-compose-service"), executors=docker_kinds(docker_executor)
    )
    [decision] = (await h.post(compose_alert("ServiceNotAnswering", "shop", "web")))[1]["decisions"]
    assert decision["target"] == "shop/web"
    record = await settle(h, decision["id"])
    assert record["outcome"] == "executed", record
    assert engine.started_at_ns("shop-web-1") > before["shop-web-1"]
    assert engine.started_at_ns("shop-web-2") > before["shop-web-2"]
    # The database is never the policy's to restart, and the ladder's alert is not this one.
    [db] = (await h.post(compose_alert("ServiceNotAnswering", "shop", "db")))[1]["decisions"]
    assert db["outcome"] == "out_of_scope", db
    ladders = {**rule_labels("ServiceDown"), "compose_project": "shop", "compose_service": "web"}
    assert (await h.post(body(ladders)))[1]["decisions"] == []
    assert engine.started_at_ns("shop-db-1") == before["shop-db-1"]


# --- R0-2: runbook 000, `docker-compose restart web`, from Datadog ------------------------


def datadog_notification(
    container: str, transition: str = "Triggered", *, cycle: str = "c1", test: bool = False
) -> bytes:
    """What Datadog posts for the shipped monitor's group `container_name:<container>,env:prod`
    (deploy/datadog-webhook-payload.json rendered with the monitor's name, query and tags)."""
    monitor = json.loads(MONITOR.read_text())
    scope = f"container_name:{container},env:prod"
    name = f"[TEST] {monitor['name']}" if test else monitor["name"]
    values = {
        **SAMPLE,
        "ALERT_TRANSITION": transition,
        "ALERT_CYCLE_KEY": cycle,
        "ALERT_TITLE": name,
        "EVENT_TITLE": f"[P1] [{transition} on {{{scope}}}] {name}",
        "TAGS": ",".join([*monitor["tags"], scope]),
        "ALERT_SCOPE": scope,
        "ALERT_QUERY": monitor["query"],
        "ALERT_METRIC": "http.can_connect",
        "ALERT_TYPE": "success" if transition == "Recovered" else "error",
    }
    return render(values)


def test_the_datadog_monitor_feeds_the_shipped_policy() -> None:
    monitor = json.loads(MONITOR.read_text())
    policy = shipped("restart-unhealthy-container-datadog")
    assert f'alertname="{monitor["name"]}"' in policy
    assert "@webhook-remediator" in monitor["message"]
    # The policy reads container_name and env: the monitor is grouped by exactly those.
    assert '.by("container_name","env")' in monitor["query"]
    assert '"env:prod"' in monitor["query"] and 'env="prod"' in policy
    assert "remediation:restart" in monitor["tags"]


async def test_a_datadog_health_check_failure_restarts_that_web_container_once(
    harness: HarnessFactory, docker_cleanup: DockerEngine, docker_executor: DockerExecutor
) -> None:
    engine = docker_cleanup
    for name in ("vibecode-webgui-web-1", "vibecode-webgui-web-2", "vibecode-webgui-db-1"):
        engine.run(name, command=GRACEFUL)
    before = {
        name: engine.started_at_ns(name)
        for name in ("vibecode-webgui-web-1", "vibecode-webgui-web-2", "vibecode-webgui-db-1")
    }
    h = await harness(
        shipped("restart-unhealthy-container-datadog"),
        DATADOG_CONFIG,
        executors=docker_kinds(docker_executor),
    )
    # Datadog's "Test Notifications" button: nothing is decided, nothing restarts.
    status, answer = await post_datadog(h, datadog_notification("vibecode-webgui-web-1", test=True))
    assert status == 200 and answer["decisions"] == [], answer
    status, answer = await post_datadog(h, datadog_notification("vibecode-webgui-web-1"))
    assert status == 200, answer
    [decision] = answer["decisions"]
    assert decision["target"] == "vibecode-webgui-web-1"
    record = await settle(h, decision["id"])
    assert (record["outcome"], record["source"]) == ("executed", "datadog"), record
    restarted = engine.started_at_ns("vibecode-webgui-web-1")
    assert restarted > before["vibecode-webgui-web-1"]
    for transition in ("Re-Triggered", "Renotify"):  # the same incident: never a second restart
        [repeat] = (
            await post_datadog(h, datadog_notification("vibecode-webgui-web-1", transition))
        )[1]["decisions"]
        assert repeat["outcome"] == "deduplicated"
    [db] = (await post_datadog(h, datadog_notification("vibecode-webgui-db-1", cycle="c2")))[1][
        "decisions"
    ]
    assert db["outcome"] == "out_of_scope", db
    assert h.daemon.runner.running == 0
    assert engine.started_at_ns("vibecode-webgui-web-1") == restarted
    assert engine.started_at_ns("vibecode-webgui-web-2") == before["vibecode-webgui-web-2"]
    assert engine.started_at_ns("vibecode-webgui-db-1") == before["vibecode-webgui-db-1"]


# --- R3-8, R3-9: runbook 003, compose rollback (`pull; up -d`) and `curl -f /api/health` -----


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """A real image registry (Debian's docker-registry, distribution 2.8) on a loopback
    port, which a dockerd trusts without TLS; stopped by its pid. Yields `127.0.0.1:PORT`."""
    binary = require_binary("docker-registry", "Debian package docker-registry")
    address = f"127.0.0.1:{free_port()}"
    config_file = tmp_path / "registry.yml"
    config_file.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'registry'}}}}}\n"
        f"http: {{addr: '{address}'}}\n"
    )
    with (tmp_path / "registry.log").open("wb") as log:
        proc = subprocess.Popen(
            [binary, "serve", str(config_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def answers() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"docker-registry exited: {(tmp_path / 'registry.log').read_text()}")
            try:
                with urllib.request.urlopen(f"http://{address}/v2/", timeout=1) as resp:
                    return bool(resp.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_for(answers, timeout=30, what="docker-registry to answer /v2/")
        yield address
    finally:
        stop_process(proc)


def release(engine: DockerEngine, name: str) -> str:
    """An image of the test's busybox whose /release says `name`; its id."""
    maker = engine.client.containers.create(
        IMAGE, ["/bin/sh", "-c", f"echo {name} > /release"], network_mode="none"
    )
    try:
        maker.start()
        assert maker.wait(timeout=30)["StatusCode"] == 0
        image = maker.commit(repository="mgmt-vibe-release", tag=name)
    finally:
        maker.remove(force=True)
    return str(image.id)


def push(engine: DockerEngine, image_id: str, repository: str, tag: str) -> None:
    engine.client.api.tag(image_id, repository, tag)
    for line in engine.client.api.push(repository, tag=tag, stream=True, decode=True):
        assert "error" not in line, line


def deployed_app(engine: DockerEngine, registry: str) -> tuple[Container, str, str]:
    """The app running the bad release from `<registry>/mgmt-vibe-app:production`, after the
    release process moved that tag in the registry back to the good one (the host still has
    the bad one under it). Returns the container and the two image ids (bad, good)."""
    repository = f"{registry}/mgmt-vibe-app"
    reference = f"{repository}:production"
    bad, good = release(engine, "bad"), release(engine, "good")
    push(engine, good, repository, "production")
    engine.client.api.tag(bad, repository, "production")  # what the host pulled last
    created = engine.client.api.create_container(
        reference,
        GRACEFUL,
        name="mgmt-vibe-app-1",
        labels=compose_labels("mgmt-vibe", "app", 1),
        host_config=engine.client.api.create_host_config(network_mode="none"),
    )
    app = engine.client.containers.get(created["Id"])
    app.start()
    assert app.attrs["Image"] == bad
    return app, bad, good


def rollback_policy(health: HealthEndpoint) -> str:
    text = shipped("003-rollback-compose-app")
    return replaced(text, "http://app:5000/api/health", f"{health.url}/api/health")


async def test_the_rollback_pulls_the_moved_tag_recreates_the_app_and_checks_its_health(
    harness: HarnessFactory,
    docker_cleanup: DockerEngine,
    docker_executor: DockerExecutor,
    health_endpoint: HealthEndpoint,
    slack_api: SlackAPI,
    registry: str,
) -> None:
    engine = docker_cleanup
    old, bad, good = deployed_app(engine, registry)
    h = await harness(
        rollback_policy(health_endpoint), config(slack_api), executors=docker_kinds(docker_executor)
    )
    [decision] = (await h.post(compose_alert("ComposeAppHighErrorRate", "mgmt-vibe", "app")))[1][
        "decisions"
    ]
    assert (decision["outcome"], decision["target"]) == ("awaiting_approval", "mgmt-vibe/app")
    # Only the application: its database is not the rollback's to touch.
    [db] = (await h.post(compose_alert("ComposeAppHighErrorRate", "mgmt-vibe", "db")))[1][
        "decisions"
    ]
    assert db["outcome"] == "out_of_scope", db
    # Before a person approves, the bad release keeps running, untouched.
    await eventually(lambda: slack_api.messages(CHANNEL), "the approval message")
    current = engine.client.api.inspect_container("mgmt-vibe-app-1")
    assert (current["Id"], current["Image"]) == (old.id, bad)
    assert health_endpoint.asked == 0
    status, _ = await h.api(f"/api/v1/approvals/{decision['approval_id']}/approve")
    assert status == 200
    record = await settle(h, decision["id"])
    assert record["outcome"] == "executed", record
    replacement = engine.client.api.inspect_container("mgmt-vibe-app-1")
    assert replacement["Id"] != old.id
    assert replacement["Image"] == good  # pulled: the tag's image in the registry
    assert replacement["Config"]["Image"] == f"{registry}/mgmt-vibe-app:production"
    assert replacement["Config"]["Labels"] == old.attrs["Config"]["Labels"]
    code, out = engine.client.containers.get(replacement["Id"]).exec_run(["cat", "/release"])
    assert (code, out) == (0, b"good\n")
    # R3-9: `curl -f http://localhost:5000/api/health` after it.
    assert f"healthy: GET {health_endpoint.url}/api/health: 200" in record["reason"]
    assert "/api/health" in health_endpoint.paths


async def test_a_rollback_whose_health_check_keeps_failing_is_failed_and_trips_the_breaker(
    harness: HarnessFactory,
    docker_cleanup: DockerEngine,
    docker_executor: DockerExecutor,
    health_endpoint: HealthEndpoint,
    slack_api: SlackAPI,
    registry: str,
) -> None:
    engine = docker_cleanup
    old, _, good = deployed_app(engine, registry)
    health_endpoint.fail()
    text = replaced(rollback_policy(health_endpoint), "within: 2m", "within: 3s")
    h = await harness(text, config(slack_api), executors=docker_kinds(docker_executor))
    [decision] = (await h.post(compose_alert("ComposeAppHighErrorRate", "mgmt-vibe", "app")))[1][
        "decisions"
    ]
    status, _ = await h.api(f"/api/v1/approvals/{decision['approval_id']}/approve")
    assert status == 200
    record = await settle(h, decision["id"])
    assert record["outcome"] == "failed", record
    assert f"not healthy within 3s: GET {health_endpoint.url}/api/health: 503" in record["reason"]
    assert engine.client.api.inspect_container("mgmt-vibe-app-1")["Image"] == good
    # The failure is recorded before the breaker trips (the runner's order): wait for it.
    await eventually(
        lambda: h.metric("remediator_policy_tripped", policy="rollback-compose-app") == 1,
        "the breaker to trip",
    )
    assert old.id != engine.client.api.inspect_container("mgmt-vibe-app-1")["Id"]


def lose_layers(storage: Path) -> None:
    """Delete every blob of the registry's storage but its manifests' and images' configs: the
    registry still serves the tag, and fails the download of a layer the host does not have."""
    v2 = storage / "docker" / "registry" / "v2"
    kept = {
        link.read_text().split(":")[1]
        for link in (v2 / "repositories").rglob("link")
        if "_manifests" in link.parts
    }
    for manifest in kept.copy():
        found = next((v2 / "blobs" / "sha256").glob(f"*/{manifest}/data"))
        kept.add(json.loads(found.read_text())["config"]["digest"].split(":")[1])
    for blob in (v2 / "blobs" / "sha256").glob("*/*"):
        if blob.name not in kept:
            shutil.rmtree(blob)


async def test_a_pull_that_fails_midway_is_no_rollback_and_leaves_the_app_alone(
    harness: HarnessFactory,
    docker_cleanup: DockerEngine,
    docker_executor: DockerExecutor,
    health_endpoint: HealthEndpoint,
    slack_api: SlackAPI,
    registry: str,
    tmp_path: Path,
) -> None:
    engine = docker_cleanup
    old, bad, good = deployed_app(engine, registry)
    engine.client.api.remove_image(good, force=True)  # the host must download its layer
    lose_layers(tmp_path / "registry")
    h = await harness(
        rollback_policy(health_endpoint), config(slack_api), executors=docker_kinds(docker_executor)
    )
    [decision] = (await h.post(compose_alert("ComposeAppHighErrorRate", "mgmt-vibe", "app")))[1][
        "decisions"
    ]
    status, _ = await h.api(f"/api/v1/approvals/{decision['approval_id']}/approve")
    assert status == 200
    record = await settle(h, decision["id"])
    current = engine.client.api.inspect_container("mgmt-vibe-app-1")
    assert (current["Id"], current["Image"]) == (old.id, bad)  # untouched, as the executor says
    assert record["outcome"] == "failed", record
    assert "pulling " in record["reason"] and "unknown blob" in record["reason"]


# --- R4-2: runbook 004, still down after restart and recreate -> escalate -------------------


async def _steps(h: Harness, count: int) -> list[DecisionRecord]:
    """The ladder's step records once `count` of them have settled."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 40
    while True:
        found = [r for r in await h.daemon.store.decisions(100) if r.step is not None]
        if len(found) >= count and all(r.outcome in {"executed", "failed"} for r in found):
            return sorted(found, key=lambda r: r.step or 0)
        assert loop.time() < deadline, f"the ladder never settled {count} steps: {found}"
        await asyncio.sleep(0.05)


async def test_service_down_ladder_escalates_in_slack_and_then_acts_no_more(
    harness: HarnessFactory,
    docker_cleanup: DockerEngine,
    docker_executor: DockerExecutor,
    health_endpoint: HealthEndpoint,
    slack_api: SlackAPI,
) -> None:
    engine = docker_cleanup
    health_endpoint.fail()  # /health never comes back: neither rung helps
    old = run_service(engine, "pyairtable", "api-gateway")
    text = shipped("004-service-down-ladder")
    text = replaced(replaced(text, "within: 2m", "within: 2s"), "within: 3m", "within: 3s")
    h = await harness(text, config(slack_api), executors=docker_kinds(docker_executor))
    alert = {**rule_labels("ServiceDown"), "compose_project": "pyairtable"}
    alert |= {"compose_service": "api-gateway", "instance": health_endpoint.address}
    status, answer = await h.post(body(alert))
    assert status == 200, answer
    steps = await _steps(h, 3)
    assert [(r.step, r.action, r.outcome) for r in steps] == [
        (1, "docker.restart", "failed"),
        (2, "docker.recreate", "failed"),
        (3, "notify", "executed"),
    ]
    escalation = (
        "pyairtable/api-gateway is still down after a restart and a force-recreate: "
        "escalating to the on-call backup engineer."
    )
    # Posted once, as written, to the configured channel (the notify step names none).
    [call] = [c for c in slack_api.calls_to("chat.postMessage") if c.body["text"] == escalation]
    assert call.body["channel"] == CHANNEL
    await eventually(
        lambda: h.metric("remediator_policy_tripped", policy="service-down-ladder") == 1,
        "the breaker to trip at the ladder's last rung",
    )

    def two() -> list[str] | None:
        found = [m["text"] for m in slack_api.messages(CHANNEL)]
        return found if len(found) == 2 else None

    # The escalation, then the daemon's own notice that the policy now waits for a person.
    posted, tripped = await eventually(two, "the escalation and the breaker's notice")
    assert posted == escalation
    assert tripped.startswith(":rotating_light: Policy `service-down-ladder` tripped")
    assert tripped.endswith("`POST /api/v1/policies/service-down-ladder/reset`")
    recreated = engine.client.api.inspect_container("pyairtable-api-gateway-1")
    assert recreated["Id"] != old.id  # the second rung did replace the container
    started = engine.started_at_ns("pyairtable-api-gateway-1")
    asked = len(slack_api.calls_to("chat.postMessage"))
    # Alertmanager's repeat of the alert: nothing runs again, nobody is paged twice.
    [repeat] = (await h.post(body(alert)))[1]["decisions"]
    assert repeat["outcome"] == "deduplicated"
    # A new episode of the outage is held by the breaker until a person resets it.
    again = body(alert)
    again["alerts"][0]["startsAt"] = "2030-01-01T00:00:00Z"
    [held] = (await h.post(again))[1]["decisions"]
    assert held["outcome"] == "tripped"
    assert h.daemon.runner.running == 0
    assert engine.client.api.inspect_container("pyairtable-api-gateway-1")["Id"] == recreated["Id"]
    assert engine.started_at_ns("pyairtable-api-gateway-1") == started
    assert len(slack_api.calls_to("chat.postMessage")) == asked
    ran = [r for r in await h.daemon.store.decisions(100) if r.outcome in {"executed", "failed"}]
    assert sorted(r.step or 0 for r in ran) == [1, 2, 3]  # each rung once, in the one episode


# --- the rules behind these policies ------------------------------------------------------

PROMTOOL_TEST = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - {{series: 'up{{job="vibesheets",compose_project="vibesheets",compose_service="app"}}', values: '1x10'}}
      - {{series: 'up{{job="vibesheets",compose_project="vibesheets",compose_service="worker"}}', values: '0x10'}}
      - {{series: 'probe_success{{job="vibesheets-health",region="eu"}}', values: '0x10'}}
      - {{series: 'probe_success{{job="vibesheets-health",region="us"}}', values: '0 0 0 0 1 1 1 1 1 1 1'}}
      - {{series: 'up{{job="pyairtable-apps",compose_project="pyairtable",compose_service="api-gateway"}}', values: '0x10'}}
      - {{series: 'up{{job="pyairtable-apps",compose_project="pyairtable",compose_service="postgres"}}', values: '1x10'}}
      - {{series: 'up{{job="pyairtable-apps",compose_project="other",compose_service="web"}}', values: '0x10'}}
      - {{series: 'up{{job="pyairtable-apps",compose_project="other",compose_service="db"}}', values: '1x10'}}
      - {{series: 'up{{job="pyairtable-apps",compose_project="other",compose_service="cache"}}', values: '1x10'}}
    alert_rule_test:
      - eval_time: 3m
        alertname: SiteCompletelyDown
        exp_alerts:
          - exp_labels: {{severity: critical, remediation: restart, compose_project: vibesheets, compose_service: app}}
            exp_annotations: {{summary: "vibesheets.com is down: vibesheets/app is restarted"}}
          - exp_labels: {{severity: critical, remediation: restart, compose_project: vibesheets, compose_service: worker}}
            exp_annotations: {{summary: "vibesheets.com is down: vibesheets/worker is restarted"}}
      - eval_time: 6m
        alertname: SiteCompletelyDown
        exp_alerts: []
      - eval_time: 6m
        alertname: StackMostlyDown
        exp_alerts:
          - exp_labels: {{severity: critical, remediation: restart, compose_project: pyairtable, compose_service: api-gateway}}
            exp_annotations: {{summary: "half of pyairtable is down: restart api-gateway?"}}
          - exp_labels: {{severity: critical, remediation: restart, compose_project: pyairtable, compose_service: postgres}}
            exp_annotations: {{summary: "half of pyairtable is down: restart postgres?"}}
"""


def test_the_stack_rules_fire_once_per_service_while_the_site_or_half_the_stack_is_down(
    tmp_path: Path,
) -> None:
    """SiteCompletelyDown: every service of the project, only while every probe fails;
    StackMostlyDown: every service of a project with half of it down, no other project."""
    promtool = require_binary("promtool", "Debian package prometheus")
    test_file = tmp_path / "test.yml"
    test_file.write_text(PROMTOOL_TEST.format(rules=REPO / "deploy" / "prometheus" / "rules.yml"))
    done = subprocess.run(
        [promtool, "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
