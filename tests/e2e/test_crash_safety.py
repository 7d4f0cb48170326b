"""kill -9 at the two worst moments: during an action, and before a webhook's commit."""

from __future__ import annotations

import sqlite3
import time
import urllib.request
from datetime import UTC, datetime, timedelta

from tests.fixtures.alertmanager import AlertmanagerFactory, container_down, firing
from tests.fixtures.daemon import AM_TOKEN, DaemonFactory
from tests.fixtures.docker_engine import DockerEngine, healthcheck
from tests.fixtures.procs import wait_for

POLICY = """
name: restart-web
match: {matchers: ['alertname="ContainerDown"']}
action:
  type: docker.restart
  params: {container: "{{ labels.container }}", timeout: "%s"}
  allow_targets: ["web-*"]
guards: {cooldown: 10m}
"""


def test_kill_during_an_action_records_interrupted_and_never_reruns(
    daemon_factory: DaemonFactory, docker_cleanup: DockerEngine
) -> None:
    docker = docker_cleanup
    docker.run("web-slow")  # sleep ignores SIGTERM: the restart takes the whole timeout
    before = docker.started_at_ns("web-slow")
    started = time.time()
    daemon = daemon_factory(POLICY % "4s", docker={"url": docker.url})
    daemon.start()
    body = container_down("web-slow", datetime.now(UTC))
    assert daemon.webhook(body)[0] == 200
    wait_for(lambda: daemon.events("action.started"), timeout=20, what="the action to start")
    # Kill only once the engine has the restart (its stop sent SIGTERM): a kill before the
    # request reached it would leave no restart for the engine to finish.
    wait_for(
        lambda: docker.events("web-slow", "kill", since=started - 1),
        timeout=20,
        what="the engine to begin the restart",
    )
    daemon.kill9()

    daemon.start()  # same folder, same state store
    [record] = daemon.decisions()
    assert record["outcome"] == "interrupted"
    assert "not re-run" in record["reason"]
    assert daemon.events("action.interrupted")
    # Alertmanager keeps re-sending the episode: it is a repeat, never a second action.
    status, answer = daemon.webhook(body)
    assert status == 200 and answer["decisions"][0]["outcome"] == "deduplicated"
    status, health = daemon.request("GET", "/healthz")
    assert health["running_actions"] == 0
    # The engine finishes the restart it had started (detached from our request); once.
    wait_for(
        lambda: docker.started_at_ns("web-slow") > before,
        timeout=60,  # a stop timeout then a start, on an engine that may be busy
        what="the engine's own restart",
    )
    assert [d["outcome"] for d in daemon.decisions()] == ["deduplicated", "interrupted"]


def _am_requests(url: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:  # loopback
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("alertmanager_notification_requests_total{")
            and 'integration="webhook"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_kill_before_commit_then_alertmanagers_retry_acts_exactly_once(
    daemon_factory: DaemonFactory,
    alertmanager_factory: AlertmanagerFactory,
    docker_cleanup: DockerEngine,
) -> None:
    docker = docker_cleanup
    docker.run("web-3")
    before = docker.started_at_ns("web-3")
    daemon = daemon_factory(POLICY % "1s", docker={"url": docker.url})
    daemon.start()
    # Hold the store's write lock so the daemon blocks before it can commit anything.
    blocker = sqlite3.connect(daemon.folder / "state.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    am = alertmanager_factory(f"{daemon.url}/webhook/alertmanager", AM_TOKEN, repeat_interval="1h")
    am.push(
        firing(
            {"alertname": "ContainerDown", "container": "web-3"},
            datetime.now(UTC) - timedelta(seconds=5),
        )
    )
    wait_for(lambda: _am_requests(am.url) >= 1, timeout=30, what="Alertmanager's first delivery")
    daemon.kill9()  # the delivery is in flight and nothing is committed
    blocker.execute("ROLLBACK")
    blocker.close()
    assert docker.started_at_ns("web-3") == before

    daemon.start()  # Alertmanager retries the failed flush until it is acknowledged
    decisions = daemon.wait_decisions(
        lambda ds: any(d["outcome"] == "executed" for d in ds),
        timeout=60,
        what="the retried delivery",
    )
    assert [d["outcome"] for d in decisions] in (["executed"], ["deduplicated", "executed"])
    assert docker.started_at_ns("web-3") > before


LADDER = """
name: web-ladder
match: {matchers: ['alertname="ContainerDown"']}
steps:
  - action: {type: docker.restart, params: {container: "{{ labels.container }}", timeout: 1s}, allow_targets: ["web-*"]}
    verify: {within: 2s}
  - action: {type: docker.restart, params: {container: "{{ labels.container }}", timeout: 6s}, allow_targets: ["web-*"]}
    verify: {within: 10s}
"""


def test_kill_between_rungs_records_the_rung_interrupted_and_never_reruns(
    daemon_factory: DaemonFactory, docker_cleanup: DockerEngine
) -> None:
    docker = docker_cleanup
    # Never healthy: the first rung's restart is not verified, so the ladder goes on.
    docker.run("web-lad", healthcheck=healthcheck("test -e /tmp/never"))
    daemon = daemon_factory(LADDER, docker={"url": docker.url})
    daemon.start()
    body = container_down("web-lad", datetime.now(UTC))
    assert daemon.webhook(body)[0] == 200
    wait_for(lambda: daemon.events("action.escalated"), timeout=30, what="the ladder's second rung")
    wait_for(
        lambda: len(daemon.events("action.started")) >= 2,
        timeout=20,
        what="the second rung to start",
    )
    daemon.kill9()

    daemon.start()  # same folder, same state store
    second, first = daemon.decisions()
    assert first["outcome"] == "failed"
    assert (second["outcome"], second["action"]) == ("interrupted", "docker.restart")
    assert "not re-run" in second["reason"]
    with sqlite3.connect(daemon.folder / "state.db") as db:  # the audit's step column
        steps = db.execute("SELECT id, step FROM decisions ORDER BY id").fetchall()
    assert steps == [(first["id"], 1), (second["id"], 2)]
    status, answer = daemon.webhook(body)
    assert status == 200 and answer["decisions"][0]["outcome"] == "deduplicated"
    assert len(daemon.events("action.started")) == 2  # over both lives: no rung ran again
