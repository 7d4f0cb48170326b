"""Two daemons on one PostgreSQL store, as replicas behind one Service: whichever replica a
webhook, an approval or a crash reaches, a real container is restarted exactly as guarded."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from tests.fixtures.alertmanager import container_down
from tests.fixtures.daemon import AM_TOKEN, API_TOKEN, Daemon, DaemonFactory
from tests.fixtures.docker_engine import DockerEngine
from tests.fixtures.postgres import Postgres
from tests.fixtures.procs import wait_for

T = TypeVar("T")

POLICY = """
name: restart-web
match: {matchers: ['alertname="ContainerDown"']}
action:
  type: docker.restart
  params: {container: "{{ labels.container }}", timeout: "%s"}
  allow_targets: ["web-*"]
guards: %s
"""
LEASE = "3s"


def _by(decisions: list[dict[str, Any]], outcome: str) -> list[dict[str, Any]]:
    return [d for d in decisions if d["outcome"] == outcome]


def _pair(
    daemon_factory: DaemonFactory, state: str, policies: str, docker: DockerEngine
) -> tuple[Daemon, Daemon]:
    """Two replicas: same policies, same database, own ports; started together."""
    auth = {"alertmanager": {"bearer_token": AM_TOKEN}, "api": {"tokens": TOKENS}}
    replicas = [
        daemon_factory(
            policies, state=state, docker={"url": docker.url}, action_lease=LEASE, auth=auth
        )
        for _ in range(2)
    ]
    for replica in replicas:
        replica.start(wait_ready=False)  # both migrate at once: one waits on the other's lock
    for replica in replicas:
        wait_for(replica.ready, timeout=30, what=f"replica ready on {replica.url}\n{replica.log()}")
    # Warm pools, as in production: concurrent requests then race in the store, instead of
    # queueing behind the one connection a fresh pool holds.
    assert all(_at_once([partial(_readyz_is, r, 200) for r in replicas for _ in range(8)]))
    return replicas[0], replicas[1]


def _at_once(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Every call in its own thread, all released by one barrier; the results in call order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result(timeout=60) for future in futures]


def _container(docker: DockerEngine, name: str) -> str:
    """A running container whose sleep ignores SIGTERM: a restart takes its whole timeout."""
    container_id = docker.run(name).id
    assert container_id is not None
    return container_id


def _engine_time(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def _events(docker: DockerEngine, container: str, action: str, since_ns: int) -> int:
    """How many `action` events (restart, start, kill) the engine logged for `container`."""
    return len(_event_list(docker, container, action, since_ns))


def _sigterms(docker: DockerEngine, container: str, since_ns: int) -> int:
    """Restarts begun: each one's first step is a SIGTERM, long before it is done."""
    found = _event_list(docker, container, "kill", since_ns)
    return sum(1 for event in found if event["Actor"]["Attributes"].get("signal") == "15")


def _event_list(
    docker: DockerEngine, container: str, action: str, since_ns: int
) -> list[dict[str, Any]]:
    # The stubs allow whole seconds only; the engine takes "seconds.nanoseconds" too.
    api: Any = docker.client.api
    stream = api.events(
        since=_engine_time(since_ns),
        until=_engine_time(time.time_ns()),
        filters={"type": "container", "container": container, "event": action},
        decode=True,
    )
    try:
        return list(stream)
    finally:
        stream.close()


def _restarts(docker: DockerEngine, container: str, since_ns: int) -> tuple[int, int]:
    """(begun, finished): a duplicate restart still under way shows in the first already."""
    return _sigterms(docker, container, since_ns), _events(docker, container, "restart", since_ns)


def _logged(replicas: Sequence[Daemon], event: str, count: int) -> None:
    """Exactly `count` `event` lines across the replicas. A result is committed before it
    is logged, so the lines are waited for; then none more may be there."""

    def total() -> int:
        return sum(len(replica.events(event)) for replica in replicas)

    wait_for(lambda: total() >= count, timeout=10, what=f"{count} {event} log lines")
    assert total() == count


def _readyz_is(daemon: Daemon, status: int) -> bool:
    return daemon.request("GET", "/readyz")[0] == status


# Each person has a token of their own: the approver is the token's identity, api:NAME.
TOKENS = {"api": API_TOKEN, "ana": "ana-token-0123456", "bob": "bob-token-0123456"}


def _approve(daemon: Daemon, approval_id: str, who: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {TOKENS[who]}", "Content-Type": "application/json"}
    body = json.dumps({"by": f"{who} on call"}).encode()
    return daemon.request("POST", f"/api/v1/approvals/{approval_id}/approve", body, headers)


def test_one_alert_sent_to_both_replicas_30_times_restarts_once(
    daemon_factory: DaemonFactory, docker_cleanup: DockerEngine, postgres: Postgres
) -> None:
    docker = docker_cleanup
    web = _container(docker, "web-r1")
    since = time.time_ns()
    a, b = _pair(daemon_factory, postgres.database(), POLICY % ("1s", "{cooldown: 10m}"), docker)
    body = container_down("web-r1", datetime.now(UTC) - timedelta(minutes=1))

    # Two HA Alertmanagers, each delivering to a different replica, all at once.
    answers = _at_once([partial((a, b)[i % 2].webhook, body) for i in range(30)])
    assert [status for status, _ in answers] == [200] * 30, answers
    outcomes = sorted(answer["decisions"][0]["outcome"] for _, answer in answers)
    assert outcomes == ["deduplicated"] * 29 + ["executing"]

    decisions = a.wait_decisions(
        lambda ds: bool(_by(ds, "executed")) and sum(d["repeats"] for d in ds) >= 29,
        timeout=30,
        what="the restart executed and the 29 repeats flushed",
    )
    [executed] = _by(decisions, "executed")
    [repeats] = _by(decisions, "deduplicated")
    assert len(decisions) == 2
    assert repeats["repeats"] == 29
    assert f"decided by decision {executed['id']}" in repeats["reason"]
    assert b.decisions() == decisions  # one audit log, whichever replica is asked
    assert _restarts(docker, web, since) == (1, 1)
    _logged((a, b), "action.executed", 1)


def test_a_burst_across_both_replicas_executes_exactly_the_rate_limit(
    daemon_factory: DaemonFactory, docker_cleanup: DockerEngine, postgres: Postgres
) -> None:
    docker = docker_cleanup
    names = [f"web-b{i}" for i in range(12)]
    with ThreadPoolExecutor(4) as pool:
        ids = dict(zip(names, pool.map(partial(_container, docker), names), strict=True))
    since = time.time_ns()
    a, b = _pair(daemon_factory, postgres.database(), POLICY % ("1s", "{rate_limit: 2/1h}"), docker)
    starts = datetime.now(UTC) - timedelta(minutes=1)

    answers = _at_once(
        [
            partial((a, b)[i % 2].webhook, container_down(name, starts))
            for i, name in enumerate(names)
        ]
    )
    assert [status for status, _ in answers] == [200] * len(names), answers
    outcomes = sorted(answer["decisions"][0]["outcome"] for _, answer in answers)
    assert outcomes == ["executing"] * 2 + ["rate_limited"] * 10

    decisions = b.wait_decisions(
        lambda ds: len(_by(ds, "executed")) == 2, timeout=30, what="both restarts executed"
    )
    assert len(decisions) == len(names)
    limited = _by(decisions, "rate_limited")
    assert len(limited) == 10
    assert all("policy rate_limit" in d["reason"] for d in limited)
    assert a.decisions() == decisions
    restarted = {name: _restarts(docker, ids[name], since) for name in names}
    assert sorted(restarted.values()) == [(0, 0)] * 10 + [(1, 1)] * 2
    assert {n for n, count in restarted.items() if count != (0, 0)} == {
        d["target"] for d in _by(decisions, "executed")
    }


def test_an_approval_requested_on_one_replica_is_approved_on_the_other_once(
    daemon_factory: DaemonFactory, docker_cleanup: DockerEngine, postgres: Postgres
) -> None:
    docker = docker_cleanup
    first, second = _container(docker, "web-a1"), _container(docker, "web-a2")
    since = time.time_ns()
    a, b = _pair(daemon_factory, postgres.database(), POLICY % ("1s", "{approval: always}"), docker)
    starts = datetime.now(UTC) - timedelta(minutes=1)

    # Requested on A, approved through B: B takes it and runs it.
    status, answer = a.webhook(container_down("web-a1", starts))
    [requested] = answer["decisions"]
    assert status == 200 and requested["outcome"] == "awaiting_approval"
    approval = requested["approval_id"]
    status, approved = _approve(b, approval, "ana")
    assert status == 200, approved
    assert approved["state"] == "approved" and approved["approved_by"] == ["api:ana"]
    a.wait_decisions(
        lambda ds: any(d["id"] == requested["id"] and d["outcome"] == "executed" for d in ds),
        timeout=30,
        what="the approved restart executed",
    )
    status, refused = _approve(a, approval, "ana")
    assert status == 409 and "already approved" in refused["error"]
    assert _restarts(docker, first, since) == (1, 1)
    _logged([b], "action.executed", 1)
    assert not a.events("action.started")

    # Two approvers click at the same moment on different replicas: the first one wins.
    status, answer = b.webhook(container_down("web-a2", starts))
    [requested] = answer["decisions"]
    assert status == 200 and requested["outcome"] == "awaiting_approval"
    approval = requested["approval_id"]
    answers = _at_once(
        [partial(_approve, a, approval, "ana"), partial(_approve, b, approval, "bob")]
    )
    assert sorted(status for status, _ in answers) == [200, 409], answers
    winner = 0 if answers[0][0] == 200 else 1
    won, lost = answers[winner][1], answers[1 - winner][1]
    assert won["state"] == "approved" and "already approved" in lost["error"]
    decisions = a.wait_decisions(
        lambda ds: any(d["id"] == requested["id"] and d["outcome"] == "executed" for d in ds),
        timeout=30,
        what="the concurrently approved restart executed",
    )
    assert [d["outcome"] for d in decisions] == ["executed", "executed"]
    status, detail = b.request("GET", f"/api/v1/approvals/{approval}")
    assert status == 200 and detail["state"] == "approved"
    assert detail["approved_by"] == won["approved_by"] == [("api:ana", "api:bob")[winner]]
    assert _restarts(docker, second, since) == (1, 1)
    assert _restarts(docker, first, since) == (1, 1)
    # The replica whose click won took the approval and ran it; the other ran nothing new.
    _logged([(a, b)[winner]], "action.executed", 1 + winner)
    _logged((a, b), "action.executed", 2)


def test_postgres_down_answers_503_and_back_up_recovers_without_a_restart(
    daemon_factory: DaemonFactory,
    docker_cleanup: DockerEngine,
    postgres_factory: Callable[[], Postgres],
) -> None:
    docker = docker_cleanup
    web = _container(docker, "web-p1")
    since = time.time_ns()
    server = postgres_factory()
    a, b = _pair(daemon_factory, server.database(), POLICY % ("1s", "{cooldown: 10m}"), docker)
    body = container_down("web-p1", datetime.now(UTC) - timedelta(minutes=1))

    server.stop()
    for replica in (a, b):
        wait_for(
            partial(_readyz_is, replica, 503),
            timeout=15,
            what=f"{replica.url}/readyz to fail",
        )
    answers = _at_once([partial((a, b)[i % 2].webhook, body) for i in range(4)])
    assert [status for status, _ in answers] == [503] * 4, answers
    assert all("nothing was decided" in answer["error"] for _, answer in answers)
    for replica in (a, b):
        # The background loops meet the outage too, and the process lives through it.
        wait_for(
            partial(replica.events, "background.store_error"),
            timeout=15,
            what=f"{replica.url}'s background loops to hit the outage",
        )
        status, health = replica.request("GET", "/healthz")
        assert status == 200 and health["status"] == "ok"
        assert replica.request("GET", "/readyz")[0] == 503
        assert replica.proc is not None and replica.proc.poll() is None
    assert _restarts(docker, web, since) == (0, 0)

    server.start()
    for replica in (a, b):
        wait_for(
            partial(_readyz_is, replica, 200),
            timeout=30,
            what=f"{replica.url}/readyz to recover by itself",
        )
        assert len(replica.runs) == 1 and replica.proc is not None and replica.proc.poll() is None
    answers = _at_once([partial(a.webhook, body), partial(b.webhook, body)])
    assert [status for status, _ in answers] == [200, 200], answers
    outcomes = sorted(answer["decisions"][0]["outcome"] for _, answer in answers)
    assert outcomes == ["deduplicated", "executing"]
    decisions = a.wait_decisions(
        lambda ds: bool(_by(ds, "executed")), timeout=30, what="the restart after the outage"
    )
    assert sorted(d["outcome"] for d in decisions) == ["deduplicated", "executed"]
    assert _restarts(docker, web, since) == (1, 1)


def test_a_replica_killed_mid_action_is_recorded_interrupted_by_the_other_never_rerun(
    daemon_factory: DaemonFactory, docker_cleanup: DockerEngine, postgres: Postgres
) -> None:
    docker = docker_cleanup
    web = _container(docker, "web-k1")  # A's: A dies while the engine restarts it
    live = _container(docker, "web-k2")  # B's: outlives the lease while B lives
    since = time.time_ns()
    a, b = _pair(daemon_factory, postgres.database(), POLICY % ("4s", "{cooldown: 10m}"), docker)
    starts = datetime.now(UTC) - timedelta(minutes=1)
    body = container_down("web-k1", starts)

    answers = _at_once(
        [partial(a.webhook, body), partial(b.webhook, container_down("web-k2", starts))]
    )
    assert [(s, answer["decisions"][0]["outcome"]) for s, answer in answers] == [
        (200, "executing"),
        (200, "executing"),
    ]
    wait_for(
        lambda: _sigterms(docker, web, since) >= 1,
        timeout=20,
        what="A's restart to reach the engine (SIGTERM sent)",
    )
    # A's lease holds while A runs.
    assert [d["outcome"] for d in b.decisions() if d["target"] == "web-k1"] == ["executing"]
    assert a.proc is not None
    killed = a.proc.pid
    a.kill9()
    killed_at = time.monotonic()

    decisions = b.wait_decisions(
        lambda ds: bool(_by(ds, "interrupted")),
        timeout=4 * 3 + 5,
        what="B to record A's action interrupted once its lease ran out",
    )
    # A renewed at most ~1s (lease/3) before it died: the lease runs out 2s after, not sooner.
    assert time.monotonic() - killed_at >= 1.5
    interrupted = _by(decisions, "interrupted")
    assert [d["target"] for d in interrupted] == ["web-k1"]  # B's own action holds its lease
    record = interrupted[0]
    assert f":{killed} did not renew its lease for 3s (action_lease)" in record["reason"]
    assert "not re-run" in record["reason"]
    # B's own 4s action outlives the 3s lease: B renews it, and it is never interrupted.
    decisions = b.wait_decisions(
        lambda ds: bool(_by(ds, "executed")), timeout=30, what="B's own long restart executed"
    )
    assert [d["target"] for d in _by(decisions, "executed")] == ["web-k2"]
    _logged([b], "action.interrupted", 1)  # A's action only
    assert b.events("action.interrupted")[0]["reason"] == record["reason"]
    assert _restarts(docker, live, since) == (1, 1)
    # The engine finishes the restart A had started: once. Nobody starts it again.
    wait_for(
        lambda: _events(docker, web, "restart", since) >= 1,
        timeout=20,
        what="the engine's own restart",
    )
    status, answer = b.webhook(body)
    assert status == 200 and answer["decisions"][0]["outcome"] == "deduplicated"
    a.start()  # A comes back on the same store: its startup sweep finds nothing to run
    status, answer = a.webhook(body)
    assert status == 200 and answer["decisions"][0]["outcome"] == "deduplicated"
    for replica in (a, b):
        status, health = replica.request("GET", "/healthz")
        assert status == 200 and health["running_actions"] == 0
    assert len(b.events("action.started")) == 1  # web-k2's
    assert len(a.events("action.started")) == 1  # the killed run's; none since
    assert _restarts(docker, web, since) == (1, 1)  # a re-run begins with its own SIGTERM
    assert _events(docker, web, "start", since) == 1
    decisions = a.wait_decisions(
        lambda ds: sum(d["repeats"] for d in ds if d["target"] == "web-k1") >= 2,
        timeout=10,
        what="A's repeat flushed",
    )
    mine = [d for d in decisions if d["target"] == "web-k1"]
    assert [d["outcome"] for d in mine] == ["deduplicated", "interrupted"]
    assert mine[0]["repeats"] == 2
