"""Runbooks 000, 001 and 003's Kubernetes steps as shipped: each policy file in policies/ loaded
as it is (durations and URLs swapped only where a test cannot wait or reach production, each
swap checked to occur), fired by an alert carrying the labels of its rule in
deploy/prometheus/rules.yml or by a notification of the Datadog monitor in deploy/datadog/,
and acting through the real Kubernetes executor and `kubernetes` client on the API stand-in
(tests/fixtures/k8s_api.py). Slack is the loopback stand-in, /health a loopback endpoint, and
the rules themselves run under the real `promtool test rules`."""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from remediator.actions.base import Executor
from remediator.actions.kubernetes import KubernetesExecutor
from tests.fixtures.datadog import SAMPLE, render
from tests.fixtures.health_endpoint import HealthEndpoint
from tests.fixtures.k8s_api import KubeAPI, Recorded
from tests.fixtures.procs import require_binary
from tests.fixtures.slack_api import SlackAPI
from tests.integration.conftest import AM_TOKEN, API_TOKEN, Harness, HarnessFactory
from tests.integration.test_runbook_004 import REPO, rule_labels, shipped
from tests.integration.test_slack_approvals import CHANNEL, click, config, eventually

WEBGUI = "vibecode-webgui"  # runbook 000's namespace and deployment
MONITOR = json.loads((REPO / "deploy" / "datadog" / "000-vibecode-webgui-latency.json").read_text())
DD_TOKEN = "dd-token-0123456789"
DD_CONFIG = f"""
auth:
  alertmanager: {{bearer_token: {AM_TOKEN}}}
  datadog: {{header: X-Remediator-Token, token: {DD_TOKEN}}}
  api: {{bearer_token: {API_TOKEN}}}
"""
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
_EVENT_IDS = itertools.count(7879709234193994156)


@pytest.fixture
async def kube(k8s_api: KubeAPI) -> AsyncIterator[dict[str, Executor]]:
    """The daemon's Kubernetes executor on the stand-in, under each kubernetes.* type."""
    executor = KubernetesExecutor(
        str(k8s_api.kubeconfig), None, frozenset({"kube-system"}), poll_interval=0.05
    )
    yield dict.fromkeys(("kubernetes.scale", "kubernetes.restart", "kubernetes.rollback"), executor)
    await executor.close()


def alert(labels: dict[str, str], starts: datetime | None = None) -> dict[str, Any]:
    """An Alertmanager webhook body with one firing alert; `starts` sets its episode."""
    began = (starts or datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    one = {"status": "firing", "labels": labels, "annotations": {}, "startsAt": began}
    return {"version": "4", "status": "firing", "alerts": [one]}


def notification(
    transition: str, cycle: str, namespace: str = WEBGUI, deployment: str = WEBGUI
) -> bytes:
    """The shipped monitor's notification for one group, as Datadog renders the webhook
    payload in deploy/datadog-webhook-payload.json: its name, query, priority and tags, plus
    the group's tags (a multi-alert by kube_namespace, kube_deployment)."""
    scope = f"kube_deployment:{deployment},kube_namespace:{namespace}"
    values = {k: v for k, v in SAMPLE.items() if k != "HOSTNAME"}  # no host: grouped by tags
    values.update(
        ID=str(next(_EVENT_IDS)),  # unique per notification
        ALERT_ID="170001234",
        ALERT_CYCLE_KEY=cycle,
        ALERT_TRANSITION=transition,
        ALERT_TYPE={"Warn": "warning", "Recovered": "success"}.get(transition, "error"),
        ALERT_TITLE=MONITOR["name"],
        EVENT_TITLE=f"[P{MONITOR['priority']}] [{transition} on {{{scope}}}] {MONITOR['name']}",
        EVENT_MSG=f"%%%\np95 latency of {namespace}/{deployment} is 1.42 s\n%%%",
        TAGS=",".join(
            [*MONITOR["tags"], f"kube_namespace:{namespace}", f"kube_deployment:{deployment}"]
        ),
        ALERT_SCOPE=scope,
        ALERT_QUERY=MONITOR["query"],
        ALERT_METRIC="http.request.duration",
        ALERT_PRIORITY=f"P{MONITOR['priority']}",
        ALERT_STATUS=f"p95:http.request.duration over {scope} was > 1.0 on average during the last 5m.",
    )
    return render(values)


async def post_datadog(h: Harness, body: bytes) -> list[dict[str, Any]]:
    headers = {"X-Remediator-Token": DD_TOKEN, "Content-Type": "application/json"}
    resp = await h.client.post("/webhook/datadog", data=body, headers=headers)
    answer = await resp.json()
    assert resp.status == 200, answer
    decisions: list[dict[str, Any]] = answer["decisions"]
    return decisions


async def post(h: Harness, body: dict[str, Any]) -> list[dict[str, Any]]:
    status, answer = await h.post(body)
    assert status == 200, answer
    decisions: list[dict[str, Any]] = answer["decisions"]
    return decisions


def patches(api: KubeAPI, suffix: str = "/scale") -> list[Recorded]:
    return [r for r in api.requests if r.method == "PATCH" and r.path.endswith(suffix)]


def replicas(api: KubeAPI, namespace: str = WEBGUI, name: str = WEBGUI) -> int:
    return int(api.deployment(namespace, name)["spec"]["replicas"])


def template(obj: dict[str, Any]) -> dict[str, Any]:
    """A pod template as a rollback compares it: without the controller's pod-template-hash."""
    found = json.loads(json.dumps(obj["spec"]["template"]))
    found.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
    return dict(found)


# --- R0-1: Datadog latency over 1 s -> `kubectl scale --replicas=5` ---------------------------


async def test_datadog_latency_over_1s_scales_to_5_replicas_once(
    harness: HarnessFactory, k8s_api: KubeAPI, kube: dict[str, Executor]
) -> None:
    k8s_api.add_deployment(WEBGUI, WEBGUI, replicas=2)
    h = await harness(shipped("000-scale-out-on-datadog-latency"), DD_CONFIG, executors=kube)
    [decision] = await post_datadog(h, notification("Triggered", "c1"))
    assert (decision["policy"], decision["target"]) == (
        "scale-out-on-datadog-latency",
        "vibecode-webgui/vibecode-webgui",
    )
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    assert "scaled vibecode-webgui/vibecode-webgui from 2 to 5 replicas" in record["reason"]
    assert replicas(k8s_api) == 5
    assert [p.json() for p in patches(k8s_api)] == [{"spec": {"replicas": 5}}]
    # Datadog's Re-Triggered and Renotify of the same incident never scale again.
    for repeat in ("Re-Triggered", "Renotify"):
        [again] = await post_datadog(h, notification(repeat, "c1"))
        assert again["outcome"] == "deduplicated"
    # The same monitor's group for another namespace or deployment is not this policy's to scale.
    for cycle, namespace, deployment in (("c2", "vibecode-staging", WEBGUI), ("c3", WEBGUI, "db")):
        k8s_api.add_deployment(namespace, deployment, replicas=2)
        [other] = await post_datadog(h, notification("Triggered", cycle, namespace, deployment))
        assert other["outcome"] == "out_of_scope", other
        assert replicas(k8s_api, namespace, deployment) == 2
    assert len(patches(k8s_api)) == 1


async def test_a_latency_warning_only_asks_a_person(
    harness: HarnessFactory, k8s_api: KubeAPI, kube: dict[str, Executor]
) -> None:
    k8s_api.add_deployment(WEBGUI, WEBGUI, replicas=2)
    h = await harness(shipped("000-scale-out-on-datadog-latency"), DD_CONFIG, executors=kube)
    [decision] = await post_datadog(h, notification("Warn", "c1"))
    assert decision["outcome"] == "awaiting_approval"
    assert replicas(k8s_api) == 2 and patches(k8s_api) == []
    # Recovered ends the incident and cancels the request: still nothing scaled.
    assert await post_datadog(h, notification("Recovered", "c1")) == []
    record = await h.wait_outcome(decision["id"], {"cancelled"})
    assert record["outcome"] == "cancelled"
    assert replicas(k8s_api) == 2 and patches(k8s_api) == []


async def test_a_deployment_already_over_5_replicas_is_never_scaled_down(
    harness: HarnessFactory, k8s_api: KubeAPI, kube: dict[str, Executor]
) -> None:
    k8s_api.add_deployment(WEBGUI, WEBGUI, replicas=8)
    h = await harness(shipped("000-scale-out-on-datadog-latency"), DD_CONFIG, executors=kube)
    [decision] = await post_datadog(h, notification("Triggered", "c1"))
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    assert "vibecode-webgui/vibecode-webgui already at 8 replicas" in record["reason"]
    assert replicas(k8s_api) == 8 and patches(k8s_api) == []


# --- R0-4: complete outage -> scale up, after approval ----------------------------------------


async def test_an_outage_is_scaled_up_only_once_a_person_approves_in_slack(
    harness: HarnessFactory, k8s_api: KubeAPI, kube: dict[str, Executor], slack_api: SlackAPI
) -> None:
    k8s_api.add_deployment(WEBGUI, WEBGUI, replicas=0)  # scaled to zero: nothing serves
    h = await harness(
        shipped("000-scale-up-on-outage-after-approval"), config(slack_api), executors=kube
    )
    labels = {**rule_labels("VibecodeWebguiDown"), "namespace": WEBGUI, "deployment": WEBGUI}
    [decision] = await post(h, alert(labels))
    assert decision["outcome"] == "awaiting_approval"
    [message] = await eventually(lambda: slack_api.messages(CHANNEL), "the approval request")
    shown = str(message["blocks"])
    for expected in ("VibecodeWebguiDown", "kubernetes.scale", "vibecode-webgui/vibecode-webgui"):
        assert expected in shown, expected
    assert replicas(k8s_api) == 0 and patches(k8s_api) == []
    # Someone who is not an approver clicks Approve: refused, nothing scaled.
    assert await click(h, message, "U999") == 200
    [note] = await eventually(lambda: slack_api.ephemerals, "the refusal")
    assert note["user"] == "U999" and "not an approver" in note["text"]
    assert replicas(k8s_api) == 0 and patches(k8s_api) == []
    # The on-call engineer approves: +2, clamped up to the policy's min of 3.
    assert await click(h, message, "U111") == 200
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    assert "from 0 to 3 replicas" in record["reason"]
    assert replicas(k8s_api) == 3
    assert [p.json() for p in patches(k8s_api)] == [{"spec": {"replicas": 3}}]


# --- R0-6: latency or memory over 80% -> scale out, clamped ----------------------------------


async def test_degradation_adds_two_replicas_up_to_10_once_per_cooldown(
    harness: HarnessFactory, k8s_api: KubeAPI, kube: dict[str, Executor]
) -> None:
    k8s_api.add_deployment(WEBGUI, WEBGUI, replicas=9)
    h = await harness(shipped("000-scale-out-on-degradation"), executors=kube)
    target = {"namespace": WEBGUI, "deployment": WEBGUI}
    [decision] = await post(h, alert({**rule_labels("VibecodeWebguiSlow"), **target}))
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    assert "from 9 to 10 replicas" in record["reason"]  # +2, clamped to max 10
    assert replicas(k8s_api) == 10
    # Memory over 80% on the same deployment minutes later: one scale per 15m, whatever fired.
    [memory] = await post(h, alert({**rule_labels("VibecodeWebguiMemoryHigh"), **target}))
    assert memory["outcome"] == "cooldown"
    # Forged labels naming another deployment, or kube-system's DNS: refused before any call.
    for namespace, deployment in (("kube-system", "coredns"), (WEBGUI, "postgres")):
        labels = {**rule_labels("VibecodeWebguiSlow"), "namespace": namespace}
        [refused] = await post(h, alert({**labels, "deployment": deployment}))
        assert refused["outcome"] == "out_of_scope", refused
    assert [p.json() for p in patches(k8s_api)] == [{"spec": {"replicas": 10}}]


async def test_an_hpa_owned_deployment_is_refused_unless_override_hpa(
    harness: HarnessFactory, k8s_api: KubeAPI, kube: dict[str, Executor]
) -> None:
    k8s_api.add_deployment(WEBGUI, WEBGUI, replicas=3)
    k8s_api.add_hpa(WEBGUI, "webgui-hpa", target=WEBGUI, min_replicas=3, max_replicas=10)
    text = shipped("000-scale-out-on-degradation")
    labels = {**rule_labels("VibecodeWebguiSlow"), "namespace": WEBGUI, "deployment": WEBGUI}
    h = await harness(text, executors=kube)
    [decision] = await post(h, alert(labels))
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "failed", record
    assert "hpa_managed: HorizontalPodAutoscaler webgui-hpa" in record["reason"]
    assert replicas(k8s_api) == 3 and patches(k8s_api) == []
    # The same policy with override_hpa: true scales anyway, and says the HPA may undo it.
    assert "override_hpa: false" in text
    h = await harness(text.replace("override_hpa: false", "override_hpa: true"), executors=kube)
    [decision] = await post(h, alert(labels))
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    assert "HorizontalPodAutoscaler webgui-hpa manages it and may undo this" in record["reason"]
    assert replicas(k8s_api) == 5


# --- R1-3 and R1-5: health checks failing 5+ min -> roll back, then check /health's version ---

HEALTH_URL = 'url: "https://vibesheets.com/health"'


def _rollback_policy(health: HealthEndpoint, *, within: str | None = None) -> str:
    text = shipped("001-rollback-on-failing-health-checks")
    assert HEALTH_URL in text
    text = text.replace(HEALTH_URL, f'url: "{health.url}/health"')
    if within is not None:
        assert "  within: 5m\n" in text
        text = text.replace("  within: 5m\n", f"  within: {within}\n")
    return text


def _bad_deploy(api: KubeAPI) -> dict[str, Any]:
    """vibesheets-app at 1.4.1, then a deploy of 1.5.0; the good revision's template."""
    api.add_deployment("vibesheets", "vibesheets-app", replicas=2, image="vibesheets:1.4.1")
    [good] = api.replicasets("vibesheets")
    api.set_image("vibesheets", "vibesheets-app", "vibesheets:1.5.0")
    return template(good)


def _health_labels(**more: str) -> dict[str, str]:
    labels = rule_labels("VibesheetsHealthCheckFailing")
    return {
        **labels,
        "job": "vibesheets-health",
        "instance": "https://vibesheets.com/health",
        **more,
    }


async def test_failing_health_checks_roll_back_and_wait_for_health_with_a_version(
    harness: HarnessFactory,
    k8s_api: KubeAPI,
    kube: dict[str, Executor],
    health_endpoint: HealthEndpoint,
) -> None:
    good = _bad_deploy(k8s_api)
    health_endpoint.fail()  # 1.5.0 is broken: /health answers 503
    h = await harness(_rollback_policy(health_endpoint), executors=kube)
    [decision] = await post(h, alert(_health_labels()))
    assert decision["target"] == "vibesheets/vibesheets-app"

    def rolled_back() -> bool:
        return template(k8s_api.deployment("vibesheets", "vibesheets-app")) == good

    await eventually(rolled_back, "the 1.4.1 template restored")
    await eventually(lambda: health_endpoint.asked >= 1, "/health asked after the rollout")
    # The rollout is complete, but /health still fails: the rollback is not verified yet.
    [pending] = [d for d in await h.decisions() if d["id"] == decision["id"]]
    assert pending["outcome"] not in {"executed", "failed"}, pending
    health_endpoint.body = '{"status": "ok", "version": "1.4.1"}'
    health_endpoint.fail(False)
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    assert "rolled back vibesheets/vibesheets-app to revision 1" in record["reason"]
    assert set(health_endpoint.paths) == {"/health"}
    [undo] = patches(k8s_api, "/deployments/vibesheets-app")
    assert undo.content_type == "application/json-patch+json"
    # Forged alerts naming another deployment or namespace are refused before any call.
    for namespace, deployment in (("kube-system", "coredns"), ("vibesheets", "postgres")):
        labels = _health_labels(namespace=namespace, deployment=deployment)
        [refused] = await post(h, alert(labels))
        assert refused["outcome"] == "out_of_scope", refused
    assert len([r for r in k8s_api.requests if r.method == "PATCH"]) == 1


async def test_a_health_answer_without_a_version_fails_the_rollback_and_trips_the_breaker(
    harness: HarnessFactory,
    k8s_api: KubeAPI,
    kube: dict[str, Executor],
    health_endpoint: HealthEndpoint,
) -> None:
    good = _bad_deploy(k8s_api)
    health_endpoint.body = "OK"  # a load balancer's or maintenance page's 200, not the app
    h = await harness(_rollback_policy(health_endpoint, within="3s"), executors=kube)
    [decision] = await post(h, alert(_health_labels()))
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "failed", record
    assert "body does not contain '\"version\":'" in record["reason"]
    assert template(k8s_api.deployment("vibesheets", "vibesheets-app")) == good
    # The failure is recorded before the breaker trips (the runner's order): wait for it.
    await eventually(
        lambda: (
            h.metric("remediator_policy_tripped", policy="rollback-on-failing-health-checks") == 1
        ),
        "the breaker to trip",
    )


# --- R3-4: database connection issues (pods crash-looping) -> restart the application pods --


async def test_a_crash_looping_deployment_is_rollout_restarted(
    harness: HarnessFactory, k8s_api: KubeAPI, kube: dict[str, Executor]
) -> None:
    k8s_api.add_deployment("prod", "orders", replicas=3)
    k8s_api.add_deployment("prod", "payments", replicas=2)
    h = await harness(shipped("restart-crashlooping-deployment"), executors=kube)
    labels = {**rule_labels("KubePodCrashLooping"), "namespace": "prod", "deployment": "orders"}
    began = datetime.now(UTC) - timedelta(minutes=20)
    [decision] = await post(h, alert(labels, began))
    assert decision["target"] == "prod/orders"
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    annotations = k8s_api.deployment("prod", "orders")["spec"]["template"]["metadata"][
        "annotations"
    ]
    stamp = datetime.fromisoformat(annotations[RESTARTED_AT])
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=1)
    assert f"{RESTARTED_AT}={annotations[RESTARTED_AT]}" in record["reason"]
    revisions = [
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        for rs in k8s_api.replicasets("prod")
        if rs["metadata"]["name"].startswith("orders-")
    ]
    assert revisions == ["1", "2"]  # a new rollout: every pod replaced
    [restart] = patches(k8s_api, "/deployments/orders")
    assert restart.content_type == "application/strategic-merge-patch+json"
    # It crash-loops again right after: within 30 minutes that is a person's, not a restart.
    [again] = await post(h, alert(labels, began + timedelta(minutes=5)))
    assert again["outcome"] == "cooldown"
    # A hostile deployment label is never rendered into a target; kube-system never matches.
    [hostile] = await post(h, alert({**labels, "deployment": "orders,payments"}))
    assert hostile["outcome"] == "render_error", hostile
    assert await post(h, alert({**labels, "namespace": "kube-system"})) == []
    assert (
        "annotations" not in k8s_api.deployment("prod", "payments")["spec"]["template"]["metadata"]
    )
    assert len([r for r in k8s_api.requests if r.method == "PATCH"]) == 1


# --- the rules themselves, under promtool -----------------------------------------------------

_SERIES: list[tuple[str, str]] = [
    # orders in prod: a pod of its current ReplicaSet crash-looping; a DaemonSet pod too
    (
        'kube_pod_container_status_waiting_reason{namespace="prod",pod="orders-5d9c7b6f4-x7k2p",'
        'container="orders",reason="CrashLoopBackOff"}',
        "1x30",
    ),
    (
        'kube_pod_owner{namespace="prod",pod="orders-5d9c7b6f4-x7k2p",owner_kind="ReplicaSet",'
        'owner_name="orders-5d9c7b6f4",owner_is_controller="true"}',
        "1x30",
    ),
    (
        'kube_replicaset_owner{namespace="prod",replicaset="orders-5d9c7b6f4",'
        'owner_kind="Deployment",owner_name="orders",owner_is_controller="true"}',
        "1x30",
    ),
    (
        'kube_pod_container_status_waiting_reason{namespace="prod",pod="node-exporter-x7k2p",'
        'container="node-exporter",reason="CrashLoopBackOff"}',
        "1x30",
    ),
    (
        'kube_pod_owner{namespace="prod",pod="node-exporter-x7k2p",owner_kind="DaemonSet",'
        'owner_name="node-exporter",owner_is_controller="true"}',
        "1x30",
    ),
    # vibecode-webgui: two pods at 85% and 90% of their memory limit; no replica available;
    # its p95 latency at 0.975 s (every request between 0.5 s and 1 s, interpolated)
    *(
        series
        for pod, used in (("aaaaa", "850"), ("bbbbb", "900"))
        for series in (
            (
                'container_memory_working_set_bytes{namespace="vibecode-webgui",'
                f'pod="vibecode-webgui-7c9f8d6b5-{pod}",container="web"}}',
                f"{used}x30",
            ),
            (
                'kube_pod_container_resource_limits{namespace="vibecode-webgui",'
                f'pod="vibecode-webgui-7c9f8d6b5-{pod}",container="web",resource="memory",'
                'unit="byte"}',
                "1000x30",
            ),
            (
                'kube_pod_owner{namespace="vibecode-webgui",'
                f'pod="vibecode-webgui-7c9f8d6b5-{pod}",owner_kind="ReplicaSet",'
                'owner_name="vibecode-webgui-7c9f8d6b5",owner_is_controller="true"}',
                "1x30",
            ),
        )
    ),
    (
        'kube_replicaset_owner{namespace="vibecode-webgui",replicaset="vibecode-webgui-7c9f8d6b5",'
        'owner_kind="Deployment",owner_name="vibecode-webgui",owner_is_controller="true"}',
        "1x30",
    ),
    (
        'kube_deployment_status_replicas_available{namespace="vibecode-webgui",'
        'deployment="vibecode-webgui"}',
        "0x30",
    ),
    *(
        (
            'http_request_duration_seconds_bucket{namespace="vibecode-webgui",'
            f'deployment="vibecode-webgui",le="{le}"}}',
            f"0+{per_minute}x30",
        )
        for le, per_minute in (("0.5", "0"), ("1", "60"), ("+Inf", "60"))
    ),
    ('probe_success{job="vibesheets-health",instance="https://vibesheets.com/health"}', "0x30"),
]
_EXPECTED = {
    # alert: (eval_time, labels the policy reads, summary)
    "KubePodCrashLooping": (
        "25m",
        {"namespace": "prod", "deployment": "orders"},
        "prod/orders is crash-looping",
    ),
    "VibecodeWebguiMemoryHigh": (
        "15m",
        {"namespace": WEBGUI, "deployment": WEBGUI},
        "vibecode-webgui/vibecode-webgui uses 87.5% of its memory limit",
    ),
    "VibecodeWebguiDown": (
        "5m",
        {"namespace": WEBGUI, "deployment": WEBGUI},
        "vibecode-webgui/vibecode-webgui has no available replica",
    ),
    "VibecodeWebguiSlow": (
        "15m",
        {"namespace": WEBGUI, "deployment": WEBGUI},
        "vibecode-webgui/vibecode-webgui: p95 975ms",
    ),
    "VibesheetsHealthCheckFailing": (
        "10m",
        {"job": "vibesheets-health", "instance": "https://vibesheets.com/health"},
        "https://vibesheets.com/health has failed its health check for 5 minutes",
    ),
}


def test_the_rules_fire_with_the_labels_their_policies_read(tmp_path: Path) -> None:
    """Each rule, evaluated by promtool on kube-state-metrics, cAdvisor, blackbox and app
    series, fires with exactly the labels its policy matches and renders its target from."""
    promtool = require_binary("promtool", "Debian package prometheus")
    tests = [
        {
            "eval_time": at,
            "alertname": name,
            "exp_alerts": [
                {
                    "exp_labels": {
                        **{k: v for k, v in rule_labels(name).items() if k != "alertname"},
                        **labels,
                    },
                    "exp_annotations": {"summary": summary},
                }
            ],
        }
        for name, (at, labels, summary) in _EXPECTED.items()
    ]
    spec = {
        "rule_files": [str(REPO / "deploy" / "prometheus" / "rules.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in _SERIES],
                "alert_rule_test": tests,
            }
        ],
    }
    path = tmp_path / "rules_test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    done = subprocess.run(
        [promtool, "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
