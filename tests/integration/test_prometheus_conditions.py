"""Conditions judged against a real Prometheus scraping an app whose 5xx ratio the test
controls: sustained -> met; only lately, 2%, no traffic, too little traffic, Prometheus
down -> not met. One Prometheus for all cases: it holds new targets back 5s at start."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import yaml

from remediator.checks.prometheus import PrometheusChecker, check_condition
from remediator.config import parse_config
from remediator.core.policy import parse_policies
from remediator.ingest.alertmanager import parse_alertmanager
from remediator.simulate import simulate
from tests.fixtures.procs import wait_for
from tests.fixtures.prometheus import ErrorApp, PrometheusFactory

WINDOW, STEP = timedelta(seconds=6), timedelta(seconds=1)


def ratio(deployment: str) -> str:
    return (
        f'sum(rate(http_requests_total{{code=~"5..",deployment="{deployment}"}}[3s])) / '
        f'sum(rate(http_requests_total{{deployment="{deployment}"}}[3s]))'
    )


def traffic(deployment: str) -> str:
    return f'sum(rate(http_requests_total{{deployment="{deployment}"}}[3s])) > 1'


async def _simulate_shows_the_condition(url: str) -> None:
    policy = yaml.safe_dump(
        {
            "name": "rollback",
            "match": {"matchers": ['alertname="HighErrorRate"']},
            "condition": {
                "prometheus": {
                    "query": ratio("{{ labels.deployment }}"),
                    "above": 0.1,
                    "for": "6s",
                    "step": "1s",
                }
            },
            "action": {
                "type": "docker.restart",
                "params": {"container": "web-{{ labels.deployment }}"},
                "allow_targets": ["web-*"],
            },
        }
    )
    [rollback], problems = parse_policies(policy, "p.yaml")
    assert not problems, problems
    config = parse_config(
        f"prometheus: {{url: '{url}'}}\nstate: 'sqlite:///:memory:'", "c.yaml", {}
    )
    body = (
        b'{"alerts": ['
        + b",".join(
            b'{"labels": {"alertname": "HighErrorRate", "deployment": "%s"}, "startsAt": "2026-11-22T10:00:00Z"}'
            % d
            for d in (b"sustained", b"low")
        )
        + b"]}"
    )
    report = await simulate(
        config, [rollback], parse_alertmanager(body), datetime.now(UTC), ":memory:"
    )
    guards = [{g["guard"]: g for g in entry["policies"][0]["guards"]} for entry in report]
    sustained, low = (g["condition"] for g in guards)
    assert sustained["ok"] and "all 7 samples over 6s are > 0.1" in sustained["detail"]
    assert 'deployment="sustained"' in sustained["detail"]  # the rendered query is shown
    assert not low["ok"] and "is not > 0.1" in low["detail"]
    assert [entry["policies"][0]["outcome"] for entry in report] == [
        "executed",
        "condition_not_met",
    ]


async def test_conditions_against_real_prometheus(
    error_app: ErrorApp, prometheus_factory: PrometheusFactory
) -> None:
    error_app.set("sustained", rate=20, error_ratio=0.3)
    error_app.set("late", rate=20, error_ratio=0.02)
    error_app.set("low", rate=20, error_ratio=0.02)
    error_app.set("idle", rate=0, error_ratio=0.0)
    error_app.set("trickle", rate=0.5, error_ratio=0.3)  # 1 failure in 3 requests: not an outage
    prom = prometheus_factory(error_app)
    prom.wait_for_series(ratio("sustained"), timeout=30)
    first = time.time()
    # enough history for the whole window, then the "late" deployment goes bad for 3s only
    wait_for(
        lambda: time.time() > first + WINDOW.total_seconds() + 1, timeout=20, what="a full window"
    )
    error_app.set("late", error_ratio=0.3)
    wait_for(
        lambda: time.time() > first + WINDOW.total_seconds() + 5, timeout=20, what="the late blip"
    )
    checker = PrometheusChecker(prom.url, attempts=2, wait=0.1)
    now = datetime.now(UTC)
    try:

        async def check(deployment: str, *, guard: bool = False) -> tuple[bool, str]:
            verdict = await check_condition(
                checker,
                ratio(deployment),
                above=0.10,
                below=None,
                window=WINDOW,
                step=STEP,
                min_rate=traffic(deployment) if guard else None,
                now=now,
            )
            return verdict.ok, verdict.reason

        met, reason = await check("sustained", guard=True)
        assert met, reason
        assert "all 7 samples over 6s are > 0.1" in reason
        met, reason = await check("late")
        assert not met and "is not > 0.1" in reason  # bad only for the last part of the window
        met, reason = await check("low")
        assert not met and "0.02" in reason
        met, reason = await check("idle")
        assert not met and "NaN" in reason  # Prometheus answers NaN for 0/0, never "met"
        met, reason = await check("trickle", guard=True)
        assert not met and "min_rate not reached" in reason
        met, reason = await check("trickle")
        assert met, reason  # the same data without the guard would have rolled back
        await _simulate_shows_the_condition(prom.url)
        prom.stop()
        met, reason = await check("sustained", guard=True)
        assert not met and reason.startswith("prometheus unavailable")
    finally:
        await checker.close()
