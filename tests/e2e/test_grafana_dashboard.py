"""Every query of the shipped Grafana dashboard returns data from a real Prometheus scraping a
real daemon after a day in miniature: actions executed and failed (a breaker trips), a repeat,
a guard stopping one, an unmatched alert, a refused webhook, an approval granted through the
API, a reload. Grafana cannot run here; its variables are substituted as Grafana would."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any

from tests.fixtures.daemon import Daemon, DaemonFactory
from tests.fixtures.http_hook import Hook
from tests.fixtures.prometheus import Prometheus, PrometheusFactory
from tests.unit.test_grafana_dashboard import dashboard, panels

HOOK_POLICY = """---
name: %(name)s
match: {matchers: ['alertname="%(alertname)s"']}
action:
  type: http.request
  params: {method: POST, url: "http://127.0.0.1:%(port)d/%(path)s", expect_status: "%(expect)s"}
  allow_targets: ["http://127.0.0.1:%(port)d/*"]
guards: %(guards)s
%(verify)s"""
# Its action works, its check never passes: failed, and its circuit breaker trips.
NEVER_HEALTHY = (
    'verify: {within: 1s, http: {url: "http://127.0.0.1:%d/health", expect_status: "201"}}\n'
)
# What Grafana puts in for its own variables: a rate window well over 4 scrapes (1 s here),
# and a range covering the whole test.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "10m"}


@dataclass
class Target:
    targets: list[str]


def hook_policy(name: str, alertname: str, port: int, path: str, **kw: str) -> str:
    fields = {"expect": "2xx", "guards": "{}", "verify": "", **kw}
    return HOOK_POLICY % {
        "name": name,
        "alertname": alertname,
        "port": port,
        "path": path,
        **fields,
    }


def alert(alertname: str, starts: str = "2026-12-01T10:00:00Z") -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": alertname},
                "annotations": {},
                "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
    }


def decide(daemon: Daemon, alertname: str, starts: str = "2026-12-01T10:00:00Z") -> str:
    status, answer = daemon.webhook(alert(alertname, starts))
    assert status == 200, answer
    outcomes = [d["outcome"] for d in answer["decisions"]]
    return outcomes[0] if outcomes else "unmatched"


def settled(daemon: Daemon, policy: str, outcome: str) -> None:
    daemon.wait_decisions(
        lambda ds: any(d["policy"] == policy and d["outcome"] == outcome for d in ds),
        timeout=20,
        what=f"{policy} {outcome}",
    )


def job_values(prometheus: Prometheus, definition: str) -> list[str]:
    """Grafana's `label_values(METRIC, LABEL)` variable query, as PromQL."""
    found = re.fullmatch(r"label_values\((\w+), (\w+)\)", definition)
    assert found, definition
    metric, label = found.groups()
    return sorted(s["metric"][label] for s in prometheus.vector(f"group by ({label}) ({metric})"))


def has_data(prometheus: Prometheus, expr: str) -> list[dict[str, Any]] | None:
    """The samples of `expr` when at least one is a number (a quantile of nothing is NaN)."""
    result = prometheus.vector(expr)
    return result if any(not math.isnan(float(s["value"][1])) for s in result) else None


def run_scenario(daemon: Daemon, prometheus: Prometheus, hook: Hook) -> None:
    assert decide(daemon, "HookOk") == "executing"
    settled(daemon, "hook-ok", "executed")
    # Histogram children appear with their first observation: once Prometheus has that
    # sample, the rest of the scenario makes the increase a rate() sees.
    prometheus.wait_for_series('remediator_action_duration_seconds_count{action="http.request"}')
    prometheus.wait_for_series("remediator_webhook_request_duration_seconds_count")
    assert decide(daemon, "HookOk") == "deduplicated"
    assert decide(daemon, "HookFails") == "executing"
    settled(daemon, "hook-fails", "failed")
    assert decide(daemon, "HookFails", "2026-12-01T11:00:00Z") == "tripped"
    assert decide(daemon, "NobodyTakesThis") == "unmatched"
    assert daemon.webhook(alert("HookOk"), token="wrong")[0] == 401
    status, answer = daemon.webhook(alert("NeedsApproval"))
    assert status == 200, answer
    [asked] = answer["decisions"]
    assert asked["outcome"] == "awaiting_approval", asked
    status, answer = daemon.api("POST", f"/api/v1/approvals/{asked['approval_id']}/approve", {})
    assert status == 200, answer
    settled(daemon, "approve-first", "executed")
    posted = [r.path for r in hook.requests if r.method == "POST"]
    assert posted == ["/ok", "/fail", "/approved"]
    policies = daemon.folder / "policies" / "policies.yaml"
    policies.write_text(
        policies.read_text() + hook_policy("added-later", "Later", hook.port, "later")
    )
    status, answer = daemon.api("POST", "/-/reload")
    assert status == 200 and answer["added"] == ["added-later"], answer


def test_every_panel_query_returns_data_after_a_scenario(
    daemon_factory: DaemonFactory, prometheus_factory: PrometheusFactory, http_hook: Hook
) -> None:
    port = http_hook.port
    daemon = daemon_factory(
        hook_policy("hook-ok", "HookOk", port, "ok")
        + hook_policy("hook-fails", "HookFails", port, "fail", verify=NEVER_HEALTHY % port)
        + hook_policy(
            "approve-first",
            "NeedsApproval",
            port,
            "approved",
            guards="{approval: always, approvers: ['api:api']}",
        )
    )
    daemon.start()
    prometheus = prometheus_factory(Target([f"127.0.0.1:{daemon.port}"]))
    prometheus.wait_for_series("remediator_policies_loaded")
    run_scenario(daemon, prometheus, http_hook)

    # The daemon process itself exports no `_created` series, and the reloaded policy's.
    status, raw = daemon.request("GET", "/metrics")
    assert status == 200
    text = raw.decode()
    assert not re.search(r"_created[{ ]", text)
    assert (
        'remediator_actions_total{action="http.request",policy="added-later",result="failed"} 0.0'
        in text
    )
    prometheus.wait_for_series("remediator_policies_loaded == 4")
    prometheus.wait_for_series("remediator_approval_latency_seconds_count > 0")

    [job_variable] = [v for v in dashboard()["templating"]["list"] if v["name"] == "job"]
    jobs = job_values(prometheus, job_variable["definition"])
    assert len(jobs) == 1, jobs
    variables = {**GRAFANA_VARIABLES, "$job": re.escape(jobs[0])}
    missing = []
    for panel in panels():
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in variables.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, expr
            missing.append(f"{panel['title']} ({target['refId']}): {expr}")
    # A rate needs two scrapes after the scenario's last event: polled, with one deadline.
    deadline = time.monotonic() + 20
    while missing := [q for q in missing if not has_data(prometheus, q.split(": ", 1)[1])]:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert missing == [], "panels without data:\n" + "\n".join(missing)
