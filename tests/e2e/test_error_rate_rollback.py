"""The headline runbook end to end: a real Prometheus rule -> a real Alertmanager ->
remediator re-checks the error ratio -> rollback on the Kubernetes stand-in, once ->
verified by the ratio falling back, or the policy's breaker trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fixtures.alertmanager import AlertmanagerFactory
from tests.fixtures.daemon import Daemon, DaemonFactory
from tests.fixtures.k8s_api import KubeAPI
from tests.fixtures.procs import wait_for
from tests.fixtures.prometheus import ErrorApp, Prometheus, PrometheusFactory

REPO = Path(__file__).resolve().parents[2]


def _compressed(text: str, swaps: dict[str, tuple[str, int]]) -> str:
    """A shipped file with its minutes made seconds, so the chain runs in a test: each swap
    (old -> (new, how many times old must occur)) is checked, so the rest of the file,
    queries, labels, matchers, params and guards, is exactly what ships."""
    for old, (new, times) in swaps.items():
        assert text.count(old) == times, (old, text.count(old))
        text = text.replace(old, new)
    return text


# policies/rollback-on-high-error-rate.yaml and its rule in deploy/prometheus/rules.yml, with
# 1m rate windows as 3s, `for: 5m` as 4s (3s for the rule) and the 10m verify window as the
# test's. The deployments live in `staging`: in `prod` the shipped policy asks a person first.
POLICY = _compressed(
    (REPO / "policies" / "rollback-on-high-error-rate.yaml").read_text(),
    {
        "[1m]": ("[3s]", 5),
        "    for: 5m": ("    for: 4s\n    step: 1s", 1),
        "  within: 10m": ("  within: %s", 1),
    },
)
RULES = _compressed(
    (REPO / "deploy" / "prometheus" / "rules.yml").read_text(),
    {
        'rate(http_requests_total{code=~"5.."}[1m])': (
            'rate(http_requests_total{code=~"5.."}[3s])',
            1,
        ),
        "rate(http_requests_total[1m])": ("rate(http_requests_total[3s])", 1),
        "        for: 5m\n        keep_firing_for: 2m": (
            "        for: 3s\n        keep_firing_for: 2s",
            1,
        ),
    },
)
NS = "staging"


def _by(decisions: list[dict[str, Any]], outcome: str) -> list[dict[str, Any]]:
    return [d for d in decisions if d["outcome"] == outcome]


def _received(daemon: Daemon, status: str) -> float:
    _, metrics = daemon.request("GET", "/metrics")
    prefix = (
        f'remediator_alerts_received_total{{source="alertmanager",status="{status}"}} '.encode()
    )
    lines = [line for line in bytes(metrics).splitlines() if line.startswith(prefix)]
    return float(lines[0].rsplit(b" ", 1)[1]) if lines else 0.0


def _rollbacks(api: KubeAPI, name: str) -> list[Any]:
    return [
        r for r in api.requests if r.method == "PATCH" and r.path.endswith(f"/deployments/{name}")
    ]


def _chain(
    within: str,
    daemon_factory: DaemonFactory,
    alertmanager_factory: AlertmanagerFactory,
    prometheus_factory: PrometheusFactory,
    error_app: ErrorApp,
    k8s_api: KubeAPI,
) -> tuple[Daemon, Prometheus]:
    policy = POLICY.replace("within: %s", f"within: {within}")
    daemon = daemon_factory(policy, kubernetes={"kubeconfig": str(k8s_api.kubeconfig)})
    am = alertmanager_factory(
        f"{daemon.url}/webhook/alertmanager",
        daemon.config["auth"]["alertmanager"]["bearer_token"],
        group_by=("alertname", "deployment"),
    )
    prom = prometheus_factory(
        error_app,
        rules=RULES,
        alertmanagers=[am.url],
        flags=["--rules.alert.resend-delay=1s"],
    )
    daemon.config["prometheus"] = {"url": prom.url}
    daemon.start()
    return daemon, prom


def test_error_rate_rolls_back_once_and_verifies_recovery(
    daemon_factory: DaemonFactory,
    alertmanager_factory: AlertmanagerFactory,
    prometheus_factory: PrometheusFactory,
    error_app: ErrorApp,
    k8s_api: KubeAPI,
) -> None:
    k8s_api.add_deployment(NS, "checkout", image="web:1")
    k8s_api.set_image(NS, "checkout", "web:2")  # the bad deploy
    error_app.set("checkout", rate=20, error_ratio=0.3, namespace=NS)
    daemon, _ = _chain(
        "30s", daemon_factory, alertmanager_factory, prometheus_factory, error_app, k8s_api
    )
    wait_for(lambda: _rollbacks(k8s_api, "checkout"), timeout=90, what="the rollback")
    # Alertmanager re-sends the still-firing alert; let repeats arrive before it recovers.
    wait_for(lambda: _received(daemon, "firing") >= 3, timeout=30, what="repeated notifications")
    error_app.set("checkout", error_ratio=0.0, namespace=NS)  # the previous revision is clean
    decisions = daemon.wait_decisions(
        lambda ds: bool(_by(ds, "executed") or _by(ds, "failed")),
        timeout=60,
        what="the verified result",
    )
    [executed] = _by(decisions, "executed")
    assert f"rolled back {NS}/checkout to revision 1" in executed["reason"]
    assert "recovered: value" in executed["reason"]
    assert (
        k8s_api.deployment(NS, "checkout")["spec"]["template"]["spec"]["containers"][0]["image"]
        == "web:1"
    )
    wait_for(lambda: _received(daemon, "resolved") >= 1, timeout=60, what="the incident to resolve")
    assert len(_rollbacks(k8s_api, "checkout")) == 1  # one rollback for the whole incident
    _status, metrics = daemon.request("GET", "/metrics")
    assert b'remediator_policy_tripped{policy="rollback-on-high-error-rate"} 0.0' in metrics


def test_no_recovery_trips_the_breaker_until_reset(
    daemon_factory: DaemonFactory,
    alertmanager_factory: AlertmanagerFactory,
    prometheus_factory: PrometheusFactory,
    error_app: ErrorApp,
    k8s_api: KubeAPI,
) -> None:
    for name in ("checkout", "payments"):
        k8s_api.add_deployment(NS, name, image="web:1")
        k8s_api.set_image(NS, name, "web:2")
    error_app.set("checkout", rate=20, error_ratio=0.3, namespace=NS)  # stays bad after
    error_app.set("payments", rate=20, error_ratio=0.0, namespace=NS)
    daemon, _ = _chain(
        "5s", daemon_factory, alertmanager_factory, prometheus_factory, error_app, k8s_api
    )
    decisions = daemon.wait_decisions(
        lambda ds: bool(_by(ds, "failed")), timeout=90, what="not recovered"
    )
    [failed] = _by(decisions, "failed")
    assert "not recovered within 5s" in failed["reason"]
    wait_for(
        lambda: (
            b'remediator_policy_tripped{policy="rollback-on-high-error-rate"} 1.0'
            in daemon.request("GET", "/metrics")[1]
        ),
        timeout=10,
        what="the breaker",
    )
    error_app.set("payments", error_ratio=0.3, namespace=NS)  # while the breaker is open
    decisions = daemon.wait_decisions(
        lambda ds: any(d["outcome"] == "tripped" and "payments" in d["target"] for d in ds),
        timeout=60,
        what="the next alert to be held",
    )
    assert _rollbacks(k8s_api, "payments") == []
    status, _ = daemon.api("POST", "/api/v1/policies/rollback-on-high-error-rate/reset")
    assert status == 200
    # the still-firing payments episode is decided afresh once the breaker is closed
    wait_for(lambda: _rollbacks(k8s_api, "payments"), timeout=60, what="the rollback after reset")
