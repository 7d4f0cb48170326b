"""Security review finding 8: two actions on one target at once (two episodes, or two policies
on one target, cooldown 0) could run together, so two rollbacks swap the revision back.

Attacked against the running daemon (`remediator serve`): the target is a loopback deploy hook
that records when each request entered and left, the plainest honest witness of an overlap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from tests.fixtures.daemon import Daemon, DaemonFactory
from tests.fixtures.http_hook import Hook as BaseHook
from tests.fixtures.http_hook import Received
from tests.fixtures.procs import wait_for
from tests.fixtures.prometheus import ErrorApp, PrometheusFactory

# Prometheus answers 1 for this forever: a verification that waits its whole `within`.
NEVER_RECOVERS = "{within: %s, prometheus: {query: 'vector(1)', below: 0.5}}"


class Hook(BaseHook):
    """A loopback deploy hook (a CI job's trigger). Records when each request entered and left;
    a request to a held path waits until the test lets it go, as a slow job would."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []  # (path, entered, left), monotonic
        self.inside: list[str] = []
        self._held: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        super().__init__(status=201, body=b'{"queued": true}')

    def answer(self, received: Received) -> tuple[int, dict[str, str], bytes]:
        path = received.path
        entered = time.monotonic()
        with self._lock:
            self.inside.append(path)
            gate = self._held.get(path)
        if gate is not None:
            gate.wait(60)
        with self._lock:
            self.inside.remove(path)
            self.spans.append((path, entered, time.monotonic()))
        return super().answer(received)

    def hold(self, path: str) -> None:
        with self._lock:
            self._held[path] = threading.Event()

    def release(self, path: str) -> None:
        with self._lock:
            self._held[path].set()

    def seen(self, path: str) -> int:
        with self._lock:
            return self.inside.count(path) + sum(1 for p, _, _ in self.spans if p == path)

    def close(self) -> None:
        with self._lock:
            for gate in self._held.values():
                gate.set()
        super().close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    found = Hook()
    yield found
    found.close()


def http_policy(
    port: int,
    *,
    name: str = "rollback-via-ci",
    alertname: str = "HighErrorRate",
    job: str = "rollback",
    guards: str = "{}",
    verify: str = "",
) -> str:
    return f"""
name: {name}
match: {{matchers: ['alertname="{alertname}"']}}
action:
  type: http.request
  params:
    method: POST
    url: "http://127.0.0.1:{port}/job/{job}-{{{{ labels.deployment }}}}"
    expect_status: "201"
    timeout: 60s
  allow_targets: ["http://127.0.0.1:{port}/job/*"]
guards: {guards}
{"verify: " + verify if verify else ""}
"""


def fired(deployment: str, starts: datetime, alertname: str = "HighErrorRate") -> dict[str, Any]:
    """One firing alert as Alertmanager sends it; a new `starts` is a new episode."""
    return {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": alertname, "deployment": deployment},
                "annotations": {},
                "startsAt": starts.isoformat().replace("+00:00", "Z"),
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
    }


def decided(daemon: Daemon, body: dict[str, Any]) -> list[dict[str, Any]]:
    status, answer = daemon.webhook(body)
    assert status == 200, answer
    found: list[dict[str, Any]] = answer["decisions"]
    return found


def outcome_of(daemon: Daemon, decision_id: int, outcomes: set[str], timeout: float = 40) -> Any:
    def probe() -> dict[str, Any] | None:
        found = {d["id"]: d for d in daemon.decisions()}.get(decision_id)
        return found if found is not None and found["outcome"] in outcomes else None

    return wait_for(probe, timeout=timeout, what=f"decision {decision_id} to reach {outcomes}")


def waiting(daemon: Daemon, decision_id: int) -> None:
    """The daemon says the action of this decision waits for its target (action.waiting)."""
    decisions = {d["id"]: d for d in daemon.decisions()}
    target = decisions[decision_id]["target"]
    wait_for(
        lambda: any(e.get("target") == target for e in daemon.events("action.waiting")),
        timeout=20,
        what=f"the action on {target} to wait for its target",
    )


def assert_no_overlap(hook: Hook, path: str, count: int) -> None:
    spans = sorted((entered, left) for p, entered, left in hook.spans if p == path)
    assert len(spans) == count, hook.spans
    for (_, left), (entered, _) in pairwise(spans):
        assert entered >= left, f"two requests to {path} overlapped: {spans}"


def test_two_episodes_on_one_target_never_overlap(
    daemon_factory: DaemonFactory, hook: Hook
) -> None:
    daemon = daemon_factory(http_policy(hook.port))  # cooldown 0: both episodes act
    daemon.start()
    path = "/job/rollback-checkout"
    hook.hold(path)
    start = datetime.now(UTC)
    [first] = decided(daemon, fired("checkout", start))
    wait_for(lambda: hook.seen(path) == 1, timeout=20, what="the first rollback to reach the hook")
    [second] = decided(daemon, fired("checkout", start + timedelta(seconds=1)))  # new episode
    assert (first["outcome"], second["outcome"]) == ("executing", "executing")
    waiting(daemon, second["id"])
    assert hook.seen(path) == 1
    hook.release(path)
    for one in (first, second):
        assert outcome_of(daemon, one["id"], {"executed", "failed"})["outcome"] == "executed"
    assert_no_overlap(hook, path, 2)


def test_two_policies_on_one_target_never_overlap(
    daemon_factory: DaemonFactory, hook: Hook
) -> None:
    policies = (
        http_policy(hook.port, name="rollback-a")
        + "---"
        + http_policy(hook.port, name="rollback-b")
    )
    daemon = daemon_factory(policies)
    daemon.start()
    path = "/job/rollback-checkout"
    hook.hold(path)
    both = decided(daemon, fired("checkout", datetime.now(UTC)))  # one alert, two policies
    assert sorted((d["policy"], d["outcome"]) for d in both) == [
        ("rollback-a", "executing"),
        ("rollback-b", "executing"),
    ]
    wait_for(lambda: hook.seen(path) >= 1, timeout=20, what="a rollback to reach the hook")
    wait_for(lambda: daemon.events("action.waiting"), timeout=20, what="the other one to wait")
    assert hook.seen(path) == 1
    hook.release(path)
    for one in both:
        assert outcome_of(daemon, one["id"], {"executed", "failed"})["outcome"] == "executed"
    assert_no_overlap(hook, path, 2)


def test_the_waiting_action_has_its_cooldown_checked_when_it_starts(
    daemon_factory: DaemonFactory, hook: Hook
) -> None:
    daemon = daemon_factory(http_policy(hook.port, guards="{cooldown: 2s}"))
    daemon.start()
    path = "/job/rollback-checkout"
    hook.hold(path)
    start = datetime.now(UTC)
    [first] = decided(daemon, fired("checkout", start))
    wait_for(lambda: hook.seen(path) == 1, timeout=20, what="the first rollback to reach the hook")
    # Within the cooldown of the first decision: held when decided.
    [early] = decided(daemon, fired("checkout", start + timedelta(seconds=1)))
    assert early["outcome"] == "cooldown"
    # Past it while the first still runs: decided to act, then held when its turn comes,
    # because the first rollback on its target has only just ended.
    time.sleep(2.5)  # the cooldown of the first decision passes; the first still runs
    [late] = decided(daemon, fired("checkout", start + timedelta(seconds=2)))
    assert late["outcome"] == "executing"
    waiting(daemon, late["id"])
    hook.release(path)
    assert outcome_of(daemon, first["id"], {"executed", "failed"})["outcome"] == "executed"
    record = outcome_of(daemon, late["id"], {"cooldown", "executed", "failed"})
    assert record["outcome"] == "cooldown"
    assert record["reason"].startswith("cooldown 2s: last action at ")
    assert record["reason"].endswith("when this action's turn came; not run")
    assert hook.seen(path) == 1


def test_a_slow_verification_does_not_block_other_targets(
    daemon_factory: DaemonFactory,
    hook: Hook,
    error_app: ErrorApp,
    prometheus_factory: PrometheusFactory,
) -> None:
    prometheus = prometheus_factory(error_app)
    verified = http_policy(hook.port, verify=NEVER_RECOVERS % "15s")
    other = http_policy(hook.port, name="page-on-call", alertname="Paging", job="page")
    daemon = daemon_factory(
        verified + "---" + other,
        limits={"max_concurrent_actions": 1},
        prometheus={"url": prometheus.url},
    )
    daemon.start()
    [rollback] = decided(daemon, fired("checkout", datetime.now(UTC)))
    wait_for(
        lambda: hook.seen("/job/rollback-checkout") == 1,
        timeout=20,
        what="the rollback to run (its verification then waits up to 15s)",
    )
    [page] = decided(daemon, fired("payments", datetime.now(UTC), alertname="Paging"))
    assert page["outcome"] == "executing"
    # The one slot is free while the rollback only waits for Prometheus.
    assert outcome_of(daemon, page["id"], {"executed", "failed"}, timeout=10)["outcome"] == (
        "executed"
    )
    assert hook.seen("/job/page-payments") == 1
    still = {d["id"]: d for d in daemon.decisions()}[rollback["id"]]
    assert still["outcome"] == "executing", still  # still verifying
    record = outcome_of(daemon, rollback["id"], {"executed", "failed"}, timeout=40)
    assert record["outcome"] == "failed" and "not recovered" in record["reason"]
