"""SIGTERM: stop taking webhooks, let the running action finish (bounded), exit 0."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta

from tests.e2e.test_crash_safety import POLICY
from tests.fixtures.alertmanager import container_down
from tests.fixtures.daemon import DaemonFactory
from tests.fixtures.docker_engine import DockerEngine
from tests.fixtures.procs import wait_for


def test_sigterm_drains_the_running_action_and_exits_zero(
    daemon_factory: DaemonFactory, docker_cleanup: DockerEngine
) -> None:
    docker = docker_cleanup
    docker.run("web-drain")
    before = docker.started_at_ns("web-drain")
    daemon = daemon_factory(POLICY % "2s", docker={"url": docker.url})
    daemon.start()
    assert daemon.webhook(container_down("web-drain", datetime.now(UTC)))[0] == 200
    wait_for(lambda: daemon.events("action.started"), timeout=20, what="the action to start")
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    late = container_down("web-drain", datetime.now(UTC) + timedelta(seconds=1))  # a new episode
    wait_for(lambda: daemon.webhook(late)[0] in (0, 503), timeout=10, what="intake to stop")
    assert daemon.proc.wait(30) == 0  # the running 2s restart finished first
    assert daemon.events("daemon.stopped")
    assert docker.started_at_ns("web-drain") > before
    daemon.start()
    assert [d["outcome"] for d in daemon.decisions()] == ["executed"]


def test_sigterm_drain_is_bounded(
    daemon_factory: DaemonFactory, docker_cleanup: DockerEngine
) -> None:
    docker = docker_cleanup
    docker.run("web-long")
    daemon = daemon_factory(POLICY % "30s", docker={"url": docker.url}, drain_timeout="1s")
    daemon.start()
    assert daemon.webhook(container_down("web-long", datetime.now(UTC)))[0] == 200
    wait_for(lambda: daemon.events("action.started"), timeout=20, what="the action to start")
    assert daemon.stop() == 0  # well before the 30s restart would end
    daemon.start()
    [record] = daemon.decisions()
    assert record["outcome"] == "interrupted"
