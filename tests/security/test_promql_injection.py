"""Finding 6: PromQL injection through a label, attacked on a running daemon with a real
Prometheus. A forged `deployment` label must not make "error rate above 10%" true for a
healthy service: the label reaches Prometheus as one escaped string literal, the condition
is not met, and nothing acts. A genuinely failing deployment still acts (the control)."""

from __future__ import annotations

import time
from typing import Any

from tests.fixtures.daemon import DaemonFactory
from tests.fixtures.http_hook import Hook
from tests.fixtures.procs import wait_for
from tests.fixtures.prometheus import ErrorApp, PrometheusFactory

RATIO = (
    'sum(rate(http_requests_total{{code=~"5..",deployment="{d}"}}[3s])) / '
    'sum(rate(http_requests_total{{deployment="{d}"}}[3s]))'
)
POLICY = """
name: rollback-on-high-error-rate
match: {matchers: ['alertname="HighErrorRate"']}
condition:
  prometheus:
    query: '%s'
    above: 0.10
    for: 4s
    step: 1s
action:
  type: http.request
  params: {url: "%s/rollback"}
  allow_targets: ["%s/rollback"]
"""
# Each payload, spliced into RATIO unescaped, tries to make the ratio 1 for "checkout".
PAYLOADS = {
    'checkout"} or vector(1) or x{a="': 'deployment="checkout\\"} or vector(1) or x{a=\\""',
    'checkout"}[3s])) * 0 + 1 #': 'deployment="checkout\\"}[3s])) * 0 + 1 #"',
    "checkout\"}[3s])) * 0 + 1\n or x{a='": 'deployment="checkout\\"}[3s])) * 0 + 1\\n or x{a=\'"',
}


def _alert(deployment: str, starts: str) -> dict[str, Any]:
    alert = {
        "labels": {"alertname": "HighErrorRate", "deployment": deployment},
        "startsAt": starts,
    }
    return {"version": "4", "status": "firing", "alerts": [alert]}


def test_a_forged_label_cannot_trigger_a_rollback(
    daemon_factory: DaemonFactory,
    prometheus_factory: PrometheusFactory,
    error_app: ErrorApp,
    http_hook: Hook,
) -> None:
    error_app.set("checkout", rate=20, error_ratio=0.0)  # healthy
    error_app.set("payments", rate=20, error_ratio=0.3)  # really failing: the control
    prom = prometheus_factory(error_app)
    prom.wait_for_series(RATIO.format(d="payments"), timeout=30)
    first = time.time()
    wait_for(lambda: time.time() > first + 6, timeout=20, what="a full 4s window of samples")
    # The payload is real: unescaped, the healthy service's "error rate" would be 1.
    spliced = RATIO.format(d='checkout"}[3s])) * 0 + 1 #')
    assert prom.values(spliced) == [1.0]

    query = RATIO.format(d="{{ labels.deployment }}")
    daemon = daemon_factory(
        POLICY % (query, http_hook.url, http_hook.url), prometheus={"url": prom.url}
    )
    daemon.start()
    for index, payload in enumerate(PAYLOADS):
        status, body = daemon.webhook(_alert(payload, f"2026-11-22T10:0{index}:00Z"))
        assert status == 200, body
    status, body = daemon.webhook(_alert("payments", "2026-11-22T10:09:00Z"))
    assert status == 200, body

    decisions = daemon.wait_decisions(
        lambda ds: len(ds) == len(PAYLOADS) + 1 and any(d["outcome"] == "executed" for d in ds),
        timeout=60,
        what="a decision for every alert, and the control's rollback executed",
    )
    not_met = [d for d in decisions if d["outcome"] == "condition_not_met"]
    assert len(not_met) == len(PAYLOADS), decisions
    for escaped in PAYLOADS.values():
        # The reason quotes the query as Prometheus received it: the label one literal,
        # which selects no series at all.
        [decision] = [d for d in not_met if escaped in d["reason"]]
        assert "no data" in decision["reason"]
    assert len(http_hook.requests) == 1  # only the genuinely failing deployment acted
