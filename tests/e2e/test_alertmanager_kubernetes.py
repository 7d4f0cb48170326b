"""A real Alertmanager alert -> the daemon -> the stand-in Deployment scaled, exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures.alertmanager import AlertmanagerFactory, firing
from tests.fixtures.daemon import AM_TOKEN, DaemonFactory
from tests.fixtures.k8s_api import KubeAPI

REPO = Path(__file__).resolve().parents[2]
# The shipped policy as it is, fired with the labels of its shipped rule.
POLICY = (REPO / "policies" / "scale-out-on-high-latency.yaml").read_text()
RULE = next(
    rule
    for group in yaml.safe_load((REPO / "deploy" / "prometheus" / "rules.yml").read_text())[
        "groups"
    ]
    for rule in group["rules"]
    if rule["alert"] == "HighLatency"
)


def _by(decisions: list[dict[str, Any]], outcome: str) -> list[dict[str, Any]]:
    return [d for d in decisions if d["outcome"] == outcome]


def test_an_alert_scales_the_deployment_once_under_repeats(
    daemon_factory: DaemonFactory, alertmanager_factory: AlertmanagerFactory, k8s_api: KubeAPI
) -> None:
    k8s_api.add_deployment("prod", "checkout", replicas=3)
    daemon = daemon_factory(POLICY, kubernetes={"kubeconfig": str(k8s_api.kubeconfig)})
    daemon.start()
    am1 = alertmanager_factory(f"{daemon.url}/webhook/alertmanager", AM_TOKEN)
    am2 = alertmanager_factory(f"{daemon.url}/webhook/alertmanager", AM_TOKEN)
    alert = firing(
        {
            "alertname": "HighLatency",
            **RULE["labels"],
            "namespace": "prod",
            "deployment": "checkout",
        },
        datetime.now(UTC) - timedelta(minutes=10),
    )
    am1.push(alert)
    am2.push(alert)
    decisions = daemon.wait_decisions(
        lambda ds: (
            bool(_by(ds, "executed")) and sum(d["repeats"] for d in _by(ds, "deduplicated")) >= 3
        ),
        timeout=60,
        what="the scale to be executed and repeats deduplicated",
    )
    [executed] = _by(decisions, "executed")
    assert executed["target"] == "prod/checkout"
    assert "from 3 to 5 replicas" in executed["reason"]
    assert k8s_api.deployment("prod", "checkout")["spec"]["replicas"] == 5  # +2 exactly once
    scale_patches = [
        r for r in k8s_api.requests if r.method == "PATCH" and r.path.endswith("/scale")
    ]
    assert len(scale_patches) == 1
    status, metrics = daemon.request("GET", "/metrics")
    assert status == 200
    assert (
        b'remediator_actions_total{action="kubernetes.scale",policy="scale-out-on-high-latency",result="executed"} 1.0'
        in metrics
    )
    status, health = daemon.request("GET", "/healthz")
    assert health["backends"]["kubernetes"] == "ok"
