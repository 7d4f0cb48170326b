"""A rollback that is a CI job: a real Alertmanager alert -> the daemon -> http.request to a
loopback hook, once, with the secret header filled in only on the wire."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.fixtures.alertmanager import AlertmanagerFactory, firing
from tests.fixtures.daemon import AM_TOKEN, DaemonFactory
from tests.fixtures.http_hook import Hook
from tests.fixtures.procs import wait_for

CI_TOKEN = "ci-secret-token-abcdef123456"
POLICY = """
name: rollback-via-ci
match: {matchers: ['alertname="HighErrorRate"']}
action:
  type: http.request
  params:
    method: POST
    url: "http://127.0.0.1:%d/job/rollback-{{ labels.deployment }}/build"
    headers: {Authorization: "Bearer ${secret:ci_token}", Content-Type: application/json}
    body: '{"deployment": "{{ labels.deployment }}", "reason": "{{ annotations.summary }}"}'
    expect_status: "201"
    timeout: 5s
  allow_targets: ["http://127.0.0.1:%d/job/rollback-*/build"]
guards: {cooldown: 1h}
"""


@pytest.fixture
def hook() -> Iterator[Hook]:
    found = Hook(status=201, body=b'{"queued": true}')
    yield found
    found.close()


def test_http_rollback_runs_once_with_the_secret_only_on_the_wire(
    daemon_factory: DaemonFactory, alertmanager_factory: AlertmanagerFactory, hook: Hook
) -> None:
    daemon = daemon_factory(
        POLICY % (hook.port, hook.port), http={"secrets": {"ci_token": CI_TOKEN}}
    )
    daemon.start()
    am = alertmanager_factory(f"{daemon.url}/webhook/alertmanager", AM_TOKEN)
    labels = {"alertname": "HighErrorRate", "deployment": "checkout", "namespace": "prod"}
    alert = firing(labels, datetime.now(UTC), summary="checkout 14% 5xx")
    am.push(alert)
    decisions = daemon.wait_decisions(
        lambda ds: any(d["outcome"] == "executed" for d in ds), timeout=40, what="the CI rollback"
    )
    am.push(alert)  # repeats: never a second job
    daemon.wait_decisions(
        lambda ds: any(d["outcome"] == "deduplicated" for d in ds), timeout=30, what="a repeat"
    )
    [sent] = hook.requests
    assert sent.path == "/job/rollback-checkout/build"
    assert sent.headers["Authorization"] == f"Bearer {CI_TOKEN}"
    assert json.loads(sent.body) == {"deployment": "checkout", "reason": "checkout 14% 5xx"}
    [executed] = [d for d in decisions if d["outcome"] == "executed"]
    assert "answered 201" in executed["reason"]
    everything = json.dumps(daemon.decisions()) + daemon.log()
    assert CI_TOKEN not in everything  # not in the audit log, not in the logs


def test_an_unexpected_status_is_failed(daemon_factory: DaemonFactory, hook: Hook) -> None:
    hook.status = 500
    daemon = daemon_factory(
        POLICY % (hook.port, hook.port), http={"secrets": {"ci_token": CI_TOKEN}}
    )
    daemon.start()
    body = {
        "alerts": [
            {
                "labels": {"alertname": "HighErrorRate", "deployment": "web"},
                "annotations": {"summary": "x"},
                "startsAt": "2026-11-22T10:00:00Z",
            }
        ]
    }
    assert daemon.webhook(body)[0] == 200
    [record] = daemon.wait_decisions(
        lambda ds: bool(ds) and ds[0]["outcome"] in ("executed", "failed"),
        timeout=30,
        what="the result",
    )
    assert record["outcome"] == "failed" and "answered 500, expected 201" in record["reason"]
    assert len(hook.requests) == 1  # a 500 after the request reached the hook is not retried
    wait_for(lambda: daemon.events("action.failed"), timeout=10, what="the failure log")
