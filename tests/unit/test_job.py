"""Render + scope check: targets from templates, allowlists, names that cannot escape."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from remediator.core.alert import Alert
from remediator.core.job import Job, Stopped, build_job
from remediator.core.outcomes import Outcome
from remediator.core.policy import parse_policies

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _policy(params: str, allow: str = '["web-*"]') -> object:
    doc = f"name: p\naction: {{type: docker.restart, params: {params}, allow_targets: {allow}}}"
    policies, problems = parse_policies(doc, "t.yaml")
    assert not problems, problems
    return policies[0]


def _alert(**labels: str) -> Alert:
    return Alert(
        source="alertmanager",
        status="firing",
        labels={"alertname": "X", **labels},
        annotations={"pod": "web-9"},
        starts_at=NOW,
        fingerprint="f",
        episode="am:f:1",
    )


@pytest.mark.parametrize(
    ("params", "labels", "allow", "target"),
    [
        ('{container: "{{ labels.container }}"}', {"container": "web-1"}, '["web-*"]', "web-1"),
        ('{container: "{{ annotations.pod }}"}', {}, '["web-*"]', "web-9"),
        ('{container: "  {{ labels.container }}  "}', {"container": "web-1"}, '["web-*"]', "web-1"),
        (
            '{compose_project: Shop, compose_service: "{{ labels.svc }}"}',
            {"svc": "web"},
            '["shop/*"]',
            "shop/web",
        ),
        (
            '{container: "{{ labels.container }}"}',
            {"container": "web-1"},
            '["db-*", "web-1"]',
            "web-1",
        ),
    ],
)
def test_targets(params: str, labels: dict[str, str], allow: str, target: str) -> None:
    job = build_job(_policy(params, allow), _alert(**labels), NOW)  # type: ignore[arg-type]
    assert isinstance(job, Job)
    assert job.target == target


@pytest.mark.parametrize(
    ("params", "labels", "outcome", "reason"),
    [
        (
            '{container: "{{ labels.container }}"}',
            {},
            Outcome.RENDER_ERROR,
            "has no attribute 'container'",
        ),
        (
            '{container: "{{ labels.container }}"}',
            {"container": ""},
            Outcome.RENDER_ERROR,
            "rendered empty",
        ),
        (
            '{container: "{{ labels.container }}"}',
            {"container": "db-1"},
            Outcome.OUT_OF_SCOPE,
            "'db-1' is not in allow_targets [web-*, shop/*]",
        ),
        (
            '{container: "{{ labels.container }}"}',
            {"container": "web-1/../db"},
            Outcome.RENDER_ERROR,
            "not a valid Docker container name",
        ),
        (
            '{container: "{{ labels.container }}"}',
            {"container": "web-1 db-1"},
            Outcome.RENDER_ERROR,
            "not a valid Docker container name",
        ),
        (
            '{container: x, timeout: "{{ labels.t }}"}',
            {"t": "soon"},
            Outcome.RENDER_ERROR,
            "invalid duration",
        ),
        (
            '{compose_project: shop, compose_service: "{{ labels.s }}"}',
            {"s": "../web"},
            Outcome.RENDER_ERROR,
            "not a valid Compose name",
        ),
    ],
)
def test_stops(params: str, labels: dict[str, str], outcome: Outcome, reason: str) -> None:
    job = build_job(_policy(params, '["web-*", "shop/*"]'), _alert(**labels), NOW)  # type: ignore[arg-type]
    assert isinstance(job, Stopped)
    assert job.outcome is outcome
    assert reason in job.reason


def _kube_policy(
    params: str, allow: str = '["prod/*"]', action: str = "kubernetes.scale"
) -> object:
    doc = f"name: p\naction: {{type: {action}, params: {params}, allow_targets: {allow}}}"
    policies, problems = parse_policies(doc, "t.yaml")
    assert not problems, problems
    return policies[0]


@pytest.mark.parametrize(
    ("params", "labels", "outcome", "detail"),
    [
        (
            '{namespace: "{{ labels.namespace }}", deployment: "{{ labels.deployment }}", replicas: "+2"}',
            {"namespace": "prod", "deployment": "checkout"},
            None,
            "prod/checkout",
        ),
        (
            '{namespace: "{{ labels.namespace }}", deployment: web, replicas: "+2"}',
            {"namespace": "kube-system"},
            Outcome.OUT_OF_SCOPE,
            "namespace kube-system is protected",
        ),
        (
            '{namespace: "{{ labels.namespace }}", deployment: web, replicas: "+2"}',
            {"namespace": "staging"},
            Outcome.OUT_OF_SCOPE,
            "'staging/web' is not in allow_targets",
        ),
        (
            '{namespace: prod, deployment: "{{ labels.deployment }}", replicas: "+2"}',
            {"deployment": "web/../../secrets"},
            Outcome.RENDER_ERROR,
            "is not a valid Kubernetes object name",
        ),
        (
            '{namespace: prod, deployment: web, replicas: "{{ labels.n }}"}',
            {"n": "many"},
            Outcome.RENDER_ERROR,
            "replicas must be a number",
        ),
    ],
)
def test_kubernetes_targets(
    params: str, labels: dict[str, str], outcome: Outcome | None, detail: str
) -> None:
    policy = _kube_policy(params, '["prod/*", "kube-system/*", "staging-*"]')
    job = build_job(policy, _alert(**labels), NOW, frozenset({"kube-system"}))  # type: ignore[arg-type]
    if outcome is None:
        assert isinstance(job, Job) and job.target == detail
    else:
        assert isinstance(job, Stopped) and job.outcome is outcome and detail in job.reason
