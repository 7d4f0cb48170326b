"""Security review findings 7 and 14: the kill switch did not stop an action already queued
(behind `max_concurrent_actions`, or behind another action on its target) nor a retry, a
breaker trip did not stop the next action on the target, and the SIGTERM drain started
queued actions.

Attacked against the running daemon (`remediator serve`), with a real dockerd (its event
log says whether a container was touched) or a loopback deploy hook (it says whether a
request arrived), and a real Prometheus where a verification must fail.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from remediator.inflight import NOT_STARTED
from tests.fixtures.alertmanager import container_down
from tests.fixtures.daemon import DaemonFactory
from tests.fixtures.docker_engine import DockerEngine
from tests.fixtures.procs import wait_for
from tests.fixtures.prometheus import ErrorApp, PrometheusFactory
from tests.security.test_target_overlap import (
    NEVER_RECOVERS,
    Hook,
    decided,
    fired,
    http_policy,
    outcome_of,
    waiting,
)

RESTART = """
name: restart-web
match: {matchers: ['alertname="ContainerDown"']}
action:
  type: docker.restart
  params: {container: "{{ labels.container }}", timeout: "%s"}
  allow_targets: ["web-*"]
"""


@pytest.fixture
def hook() -> Iterator[Hook]:
    found = Hook()
    yield found
    found.close()


def _restarts_begun(docker: DockerEngine, container: str, since_ns: int) -> int:
    """Kill events dockerd logged for `container`: a restart's first step is its SIGTERM."""
    api: Any = docker.client.api
    seconds = f"{since_ns // 1_000_000_000}.{since_ns % 1_000_000_000:09d}"
    now_ns = time.time_ns()
    until = f"{now_ns // 1_000_000_000}.{now_ns % 1_000_000_000:09d}"
    events = api.events(
        since=seconds,
        until=until,
        filters={"type": "container", "container": container, "event": "kill"},
        decode=True,
    )
    return sum(1 for _ in events)


def _metric(text: bytes, line: str) -> bool:
    return line.encode() in text


def test_a_pause_holds_an_action_queued_behind_the_only_slot(
    daemon_factory: DaemonFactory, docker_cleanup: DockerEngine
) -> None:
    docker = docker_cleanup
    docker.run("web-slow")  # sleep ignores SIGTERM: its restart takes the whole 4s timeout
    docker.run("web-queued")
    since = time.time_ns()
    before = docker.started_at_ns("web-queued")
    daemon = daemon_factory(
        RESTART % "4s", docker={"url": docker.url}, limits={"max_concurrent_actions": 1}
    )
    daemon.start()
    now = datetime.now(UTC)
    assert daemon.webhook(container_down("web-slow", now))[0] == 200
    wait_for(lambda: daemon.events("action.started"), timeout=20, what="the slow restart")
    status, answer = daemon.webhook(container_down("web-queued", now))
    assert status == 200
    [queued] = answer["decisions"]
    assert queued["outcome"] == "executing"  # decided before the pause, waiting for the slot
    assert daemon.api("POST", "/api/v1/pause")[0] == 200

    record = outcome_of(daemon, queued["id"], {"paused", "executed", "failed"})
    assert record["outcome"] == "paused"
    assert record["reason"] == "remediation is paused, when this action's turn came; not run"
    slow = [d for d in daemon.decisions() if d["target"] == "web-slow"]
    assert [d["outcome"] for d in slow] == ["executed"]  # it had started: it finishes
    assert _restarts_begun(docker, "web-queued", since) == 0  # dockerd never saw it
    assert docker.started_at_ns("web-queued") == before
    [held] = daemon.events("action.held")
    assert (held["target"], held["outcome"]) == ("web-queued", "paused")
    _, metrics = daemon.request("GET", "/metrics")
    assert _metric(metrics, 'remediator_decisions_total{outcome="paused",policy="restart-web"} 1.0')
    assert _metric(
        metrics,
        'remediator_actions_total{action="docker.restart",policy="restart-web",result="paused"} 1.0',
    )
    # A final record: a restart of the daemon does not turn it into `interrupted`.
    assert daemon.stop() == 0
    daemon.start()
    record = {d["id"]: d for d in daemon.decisions()}[queued["id"]]
    assert record["outcome"] == "paused"
    # Held, it never ran: its episode stays open. While paused a repeat is counted on it...
    status, answer = daemon.webhook(container_down("web-queued", now))
    assert status == 200 and [d["outcome"] for d in answer["decisions"]] == ["paused"]
    # ...and once resumed, the still-firing alert is decided afresh at once and acts, once
    # (the held action started no cooldown).
    status, answer = daemon.api("POST", "/api/v1/resume")
    [again] = answer["redecided"]
    assert status == 200 and again["outcome"] == "executing", again
    record = outcome_of(daemon, again["id"], {"executed", "failed"})
    assert record["outcome"] == "executed"
    assert docker.started_at_ns("web-queued") != before
    status, answer = daemon.webhook(container_down("web-queued", now))
    assert [d["outcome"] for d in answer["decisions"]] == ["deduplicated"]


def test_a_breaker_trip_holds_the_next_action_waiting_for_its_target(
    daemon_factory: DaemonFactory,
    hook: Hook,
    error_app: ErrorApp,
    prometheus_factory: PrometheusFactory,
) -> None:
    prometheus = prometheus_factory(error_app)
    daemon = daemon_factory(
        http_policy(hook.port, verify=NEVER_RECOVERS % "5s"),  # cooldown 0: both episodes act
        prometheus={"url": prometheus.url},
    )
    daemon.start()
    path = "/job/rollback-checkout"
    start = datetime.now(UTC)
    [first] = decided(daemon, fired("checkout", start))
    wait_for(lambda: hook.seen(path) == 1, timeout=20, what="the first rollback to reach the hook")
    # While the first is verified (5s), a second episode is decided and waits for the target.
    [second] = decided(daemon, fired("checkout", start + timedelta(seconds=1)))
    assert second["outcome"] == "executing", "the breaker tripped before the attack began"
    waiting(daemon, second["id"])

    record = outcome_of(daemon, first["id"], {"executed", "failed"})
    assert record["outcome"] == "failed" and "not recovered" in record["reason"]
    record = outcome_of(daemon, second["id"], {"tripped", "executed", "failed"})
    assert record["outcome"] == "tripped"
    assert record["reason"] == "circuit breaker is open, when this action's turn came; not run"
    assert hook.seen(path) == 1  # the second rollback never reached the hook


def test_sigterm_never_starts_a_queued_action(daemon_factory: DaemonFactory, hook: Hook) -> None:
    daemon = daemon_factory(http_policy(hook.port), limits={"max_concurrent_actions": 1})
    daemon.start()
    running, queued_path = "/job/rollback-checkout", "/job/rollback-payments"
    hook.hold(running)
    [first] = decided(daemon, fired("checkout", datetime.now(UTC)))
    wait_for(lambda: hook.seen(running) == 1, timeout=20, what="the first rollback to run")
    [queued] = decided(daemon, fired("payments", datetime.now(UTC)))  # waits for the slot
    assert queued["outcome"] == "executing"
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    wait_for(
        lambda: daemon.events("action.interrupted"),
        timeout=20,
        what="the queued action to be recorded interrupted",
    )
    hook.release(running)  # the running one may finish within the drain bound
    assert daemon.proc.wait(30) == 0
    [interrupted] = daemon.events("action.interrupted")
    assert interrupted["reason"] == NOT_STARTED
    assert hook.seen(queued_path) == 0  # never started, during the drain or after it

    daemon.start()  # the record survives, and nothing re-runs it
    records = {d["id"]: d for d in daemon.decisions()}
    assert records[first["id"]]["outcome"] == "executed"
    assert (records[queued["id"]]["outcome"], records[queued["id"]]["reason"]) == (
        "interrupted",
        NOT_STARTED,
    )
    assert hook.seen(queued_path) == 0
