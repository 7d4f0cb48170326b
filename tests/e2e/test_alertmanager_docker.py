"""A real Alertmanager delivers; the daemon restarts real containers exactly as guarded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from remediator.ingest.fingerprint import label_fingerprint
from tests.fixtures.alertmanager import AlertmanagerFactory, firing, resolved
from tests.fixtures.daemon import AM_TOKEN, API_TOKEN, DaemonFactory
from tests.fixtures.docker_engine import DockerEngine
from tests.fixtures.procs import wait_for

RESTART = """
name: restart-web
description: Service Down runbook, step 3
match:
  source: alertmanager
  matchers: ['alertname="ContainerDown"']
action:
  type: docker.restart
  params: {container: "{{ labels.container }}", timeout: 1s}
  allow_targets: ["web-*"]
guards: {cooldown: 10m, rate_limit: "%s"}
verify: {within: 30s}
"""


def _by(decisions: list[dict[str, Any]], outcome: str) -> list[dict[str, Any]]:
    return [d for d in decisions if d["outcome"] == outcome]


def _labels(container: str) -> dict[str, str]:
    return {"alertname": "ContainerDown", "container": container, "severity": "critical"}


def test_repeated_alert_from_two_alertmanagers_restarts_exactly_once(
    daemon_factory: DaemonFactory,
    alertmanager_factory: AlertmanagerFactory,
    docker_cleanup: DockerEngine,
) -> None:
    docker = docker_cleanup
    docker.run("web-1")
    before = docker.started_at_ns("web-1")
    daemon = daemon_factory(RESTART % "10/1h", docker={"url": docker.url})
    daemon.start()
    hook = f"{daemon.url}/webhook/alertmanager"
    am1 = alertmanager_factory(hook, AM_TOKEN)
    am2 = alertmanager_factory(hook, AM_TOKEN)  # an HA pair that did not dedup (split cluster)
    starts = datetime.now(UTC) - timedelta(minutes=1)  # Prometheus sets startsAt for every AM
    alert = firing(_labels("web-1"), starts, summary="web-1 is down")
    am1.push(alert)
    am2.push(alert)

    executed = daemon.wait_decisions(
        lambda ds: bool(_by(ds, "executed")), timeout=40, what="the restart to be executed"
    )
    assert len(_by(executed, "executed")) == 1
    restarted = docker.started_at_ns("web-1")
    assert restarted > before
    # keep re-sending: repeat_interval and new pushes; every one must be deduplicated
    for _ in range(2):
        am1.push(alert)
        am2.push(alert)
    decisions = daemon.wait_decisions(
        lambda ds: sum(d["repeats"] for d in _by(ds, "deduplicated")) >= 4,
        timeout=40,
        what="at least 4 repeats from the two Alertmanagers",
    )
    assert len(_by(decisions, "executed")) == 1
    assert len(_by(decisions, "deduplicated")) == 1  # one record for the episode, a count on it
    assert docker.started_at_ns("web-1") == restarted  # not restarted again
    [record] = _by(decisions, "executed")
    assert record["fingerprint"] == label_fingerprint(_labels("web-1"))  # AM's own fingerprint
    status, metrics = daemon.request("GET", "/metrics")
    assert status == 200
    assert (
        b'remediator_actions_total{action="docker.restart",policy="restart-web",result="executed"} 1.0'
        in metrics
    )
    log = daemon.log()
    assert AM_TOKEN not in log and API_TOKEN not in log
    assert daemon.events("action.executed")


def test_target_outside_allow_targets_is_out_of_scope_and_untouched(
    daemon_factory: DaemonFactory,
    alertmanager_factory: AlertmanagerFactory,
    docker_cleanup: DockerEngine,
) -> None:
    docker = docker_cleanup
    docker.run("db-1")
    before = docker.started_at_ns("db-1")
    daemon = daemon_factory(RESTART % "10/1h", docker={"url": docker.url})
    daemon.start()
    am = alertmanager_factory(f"{daemon.url}/webhook/alertmanager", AM_TOKEN)
    am.push(firing(_labels("db-1"), datetime.now(UTC)))
    decisions = daemon.wait_decisions(
        lambda ds: bool(_by(ds, "out_of_scope")), timeout=30, what="out_of_scope"
    )
    [record] = _by(decisions, "out_of_scope")
    assert record["target"] == "db-1" and "allow_targets" in record["reason"]
    assert not _by(decisions, "executed") and not _by(decisions, "executing")
    assert docker.started_at_ns("db-1") == before


def test_second_episode_after_resolve_inside_the_cooldown_is_cooldown(
    daemon_factory: DaemonFactory,
    alertmanager_factory: AlertmanagerFactory,
    docker_cleanup: DockerEngine,
) -> None:
    docker = docker_cleanup
    docker.run("web-2")
    daemon = daemon_factory(RESTART % "10/1h", docker={"url": docker.url})
    daemon.start()
    am = alertmanager_factory(f"{daemon.url}/webhook/alertmanager", AM_TOKEN)
    first = datetime.now(UTC) - timedelta(seconds=30)
    am.push(firing(_labels("web-2"), first))
    daemon.wait_decisions(lambda ds: bool(_by(ds, "executed")), timeout=40, what="first restart")
    restarted = docker.started_at_ns("web-2")
    am.push(resolved(_labels("web-2"), first))
    wait_for(
        lambda: (
            daemon.events("decision.recorded")
            and b'status="resolved"' in daemon.request("GET", "/metrics")[1]
        ),
        timeout=30,
        what="the resolved notification",
    )
    am.push(
        firing(_labels("web-2"), datetime.now(UTC))
    )  # the same alert fires again: a new episode
    decisions = daemon.wait_decisions(
        lambda ds: bool(_by(ds, "cooldown")), timeout=30, what="the second episode's cooldown"
    )
    assert "cooldown 10m" in _by(decisions, "cooldown")[0]["reason"]
    assert len(_by(decisions, "executed")) == 1
    assert docker.started_at_ns("web-2") == restarted


def test_rate_limit_and_global_rate_hold_under_a_burst(
    daemon_factory: DaemonFactory,
    alertmanager_factory: AlertmanagerFactory,
    docker_cleanup: DockerEngine,
) -> None:
    docker = docker_cleanup
    names = [f"web-b{i}" for i in range(4)] + [f"worker-b{i}" for i in range(3)]
    before = {}
    for name in names:
        docker.run(name)
        before[name] = docker.started_at_ns(name)
    workers = """
---
name: restart-worker
match: {matchers: ['alertname="ContainerDown"']}
action:
  type: docker.restart
  params: {container: "{{ labels.container }}", timeout: 1s}
  allow_targets: ["worker-*"]
guards: {cooldown: 10m}
"""
    daemon = daemon_factory(
        RESTART % "2/1h" + workers, docker={"url": docker.url}, limits={"global_rate": "3/1h"}
    )
    daemon.start()
    am = alertmanager_factory(f"{daemon.url}/webhook/alertmanager", AM_TOKEN)
    now = datetime.now(UTC)
    am.push(*(firing(_labels(name), now) for name in names))

    def settled(ds: list[dict[str, Any]]) -> bool:
        final = [
            d for d in ds if d["outcome"] in ("executed", "failed", "rate_limited", "out_of_scope")
        ]
        return len(final) >= 2 * len(names)  # every alert meets both policies once

    decisions = daemon.wait_decisions(settled, timeout=60, what="every alert decided")
    executed = _by(decisions, "executed")
    assert len(executed) == 3  # global_rate 3/1h across both policies
    assert sum(d["policy"] == "restart-web" for d in executed) <= 2  # the policy's own 2/1h
    limited = _by(decisions, "rate_limited")
    assert len(limited) == len(names) - 3
    changed = {n for n in names if docker.started_at_ns(n) != before[n]}
    assert changed == {d["target"] for d in executed}
