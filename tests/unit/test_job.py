"""Render + scope check: targets from templates, allowlists, names that cannot escape."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from remediator.core.alert import Alert
from remediator.core.job import Job, Stopped, build_job, scope_check, secret_names
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


def _http_policy(url: str, allow: str, extra: str = "") -> object:
    doc = (
        "name: p\naction: {type: http.request, "
        f"params: {{url: '{url}'{extra}}}, allow_targets: {allow}}}"
    )
    policies, problems = parse_policies(doc, "t.yaml")
    assert not problems, problems
    return policies[0]


HOOK_URL = "http://127.0.0.1:8080/job/{{ labels.job }}/build"
HOOK_ALLOW = '["http://127.0.0.1:8080/job/*/build"]'


@pytest.mark.parametrize(
    ("job", "outcome", "detail"),
    [
        ("web", None, "http://127.0.0.1:8080/job/web/build"),
        ("x/../deploy-prod", Outcome.OUT_OF_SCOPE, ". or .. path segment"),
        ("x%2F..%2Fdeploy-prod", Outcome.OUT_OF_SCOPE, "encoded / or \\"),
        ("x%5c..%5cdeploy-prod", Outcome.OUT_OF_SCOPE, "encoded / or \\"),
        ("x\\..\\deploy-prod", Outcome.OUT_OF_SCOPE, "backslash"),
        (
            "a/b",
            Outcome.OUT_OF_SCOPE,
            "is not in allow_targets [http://127.0.0.1:8080/job/*/build]",
        ),
        ("x/build?cause=1#", Outcome.OUT_OF_SCOPE, "is not in allow_targets"),
        ("x y", Outcome.OUT_OF_SCOPE, "whitespace"),
        ("${secret:ci_token}", Outcome.RENDER_ERROR, "a value from the alert contains '${'"),
    ],
)
def test_http_scope(job: str, outcome: Outcome | None, detail: str) -> None:
    policy = _http_policy(HOOK_URL, HOOK_ALLOW)
    found = build_job(policy, _alert(job=job), NOW)  # type: ignore[arg-type]
    if outcome is None:
        assert isinstance(found, Job) and found.target == detail
    else:
        assert isinstance(found, Stopped) and found.outcome is outcome and detail in found.reason


def test_http_userinfo_is_out_of_scope_and_never_shown() -> None:
    policy = _http_policy("http://{{ labels.host }}/job/a/build", HOOK_ALLOW)
    found = build_job(policy, _alert(host="u:pw@127.0.0.1:8080"), NOW)  # type: ignore[arg-type]
    assert isinstance(found, Stopped) and found.outcome is Outcome.OUT_OF_SCOPE
    assert "userinfo" in found.reason and "pw" not in found.reason + found.target


def test_http_secret_reference_stays_unexpanded_in_target_and_params() -> None:
    policy = _http_policy(
        "http://127.0.0.1:8080/job/{{ labels.job }}/build?token=${secret:ci}",
        '["http://127.0.0.1:8080/job/*/build?token=*"]',
        ", body: '{{ labels.job }} ${secret:ci}'",
    )
    found = build_job(policy, _alert(job="web"), NOW)  # type: ignore[arg-type]
    assert isinstance(found, Job)
    assert found.target == "http://127.0.0.1:8080/job/web/build?token=${secret:ci}"
    assert found.params["body"] == "web ${secret:ci}"


@pytest.mark.parametrize(
    ("extra", "labels", "detail"),
    [
        (", timeout: '{{ labels.t }}'", {"t": "0s"}, "at most 10m (MAX_ACTION_TIMEOUT)"),
        (", timeout: '{{ labels.t }}'", {"t": "1h"}, "at most 10m (MAX_ACTION_TIMEOUT)"),
        (", timeout: '{{ labels.t }}'", {"t": "99999999999999999999w"}, "longer than 10 years"),
        (", expect_status: '{{ labels.s }}'", {"s": "302"}, "a 3xx is never success"),
        (", expect_status: '{{ labels.s }}'", {"s": "ok"}, "use e.g. 2xx"),
    ],
)
def test_http_param_render_errors(extra: str, labels: dict[str, str], detail: str) -> None:
    policy = _http_policy(HOOK_URL, HOOK_ALLOW, extra)
    found = build_job(policy, _alert(job="web", **labels), NOW)  # type: ignore[arg-type]
    assert isinstance(found, Stopped) and found.outcome is Outcome.RENDER_ERROR
    assert detail in found.reason


def test_http_url_that_is_not_http_is_a_render_error() -> None:
    policy = _http_policy("{{ labels.u }}/job/a/build", HOOK_ALLOW)
    found = build_job(policy, _alert(u="ftp://127.0.0.1:8080"), NOW)  # type: ignore[arg-type]
    assert isinstance(found, Stopped) and found.outcome is Outcome.RENDER_ERROR


@pytest.mark.parametrize("timeout", ["0s", "11m", "99999999999999999999w"])
def test_docker_timeout_is_bounded_at_render(timeout: str) -> None:
    policy = _policy('{container: web-1, timeout: "{{ labels.t }}"}')
    found = build_job(policy, _alert(t=timeout), NOW)  # type: ignore[arg-type]
    assert isinstance(found, Stopped) and found.outcome is Outcome.RENDER_ERROR
    assert "param timeout" in found.reason


@pytest.mark.parametrize(
    ("policy", "target", "protected", "stopped"),
    [
        (
            lambda: _http_policy(HOOK_URL, HOOK_ALLOW),
            "http://127.0.0.1:8080/job/a/build",
            frozenset(),
            False,
        ),
        (
            lambda: _http_policy(HOOK_URL, HOOK_ALLOW),
            "http://127.0.0.1:8080/job/../build",
            frozenset(),
            True,
        ),
        (lambda: _policy("{container: x}", '["web-*"]'), "web-1", frozenset(), False),
        (lambda: _policy("{container: x}", '["web-*"]'), "db-1", frozenset(), True),
        (
            lambda: _kube_policy('{namespace: prod, deployment: w, replicas: "2"}', '["*"]'),
            "prod/w",
            frozenset(),
            False,
        ),
        (
            lambda: _kube_policy('{namespace: prod, deployment: w, replicas: "2"}', '["*"]'),
            "prod/w",
            frozenset({"prod"}),
            True,
        ),
    ],
)
def test_scope_check_alone(
    policy: Callable[[], object], target: str, protected: frozenset[str], stopped: bool
) -> None:
    found = scope_check(policy(), target, protected)  # type: ignore[arg-type]
    assert (found is not None) is stopped
    if found is not None:
        assert found.outcome is Outcome.OUT_OF_SCOPE


def test_secret_names_are_the_policy_written_references() -> None:
    policy = _http_policy(
        "http://127.0.0.1:8080/job/a/build?t=${secret:one}",
        '["http://127.0.0.1:8080/job/a/build?t=*"]',
        ", headers: {X-A: '${secret:two}', X-B: '{{ labels.x }}'}",
    )
    assert secret_names(policy) == {"one", "two"}  # type: ignore[arg-type]


def test_a_notify_text_may_quote_an_alert_dollar_brace() -> None:
    doc = "name: p\naction: {type: notify, params: {text: '{{ labels.msg }} ${HOME}'}}"
    [policy], problems = parse_policies(doc, "t.yaml")
    assert not problems
    found = build_job(policy, _alert(msg="echo ${secret:ci}"), NOW)
    assert isinstance(found, Job) and found.params["text"] == "echo ${secret:ci} ${HOME}"


_ASKING_LADDER = """
name: l
description: restart, then recreate after approval
steps:
  - action: {type: docker.restart, params: {container: "{{ labels.container }}"}, allow_targets: ["web-*"]}
  - action: {type: docker.recreate, params: {container: "{{ labels.container }}"}, allow_targets: ["web-*"]}
    approval: APPROVAL
"""


@pytest.mark.parametrize(
    ("approval", "labels", "asked"),
    [
        ("always", {}, True),
        ("never", {}, False),
        ("{when: \"labels.env == 'prod'\"}", {"env": "prod"}, True),
        ("{when: \"labels.env == 'prod'\"}", {"env": "staging"}, False),
    ],
)
def test_a_later_steps_own_approval_is_judged_for_the_alert_when_the_ladder_renders(
    approval: str, labels: dict[str, str], asked: bool
) -> None:
    [policy], problems = parse_policies(_ASKING_LADDER.replace("APPROVAL", approval), "t.yaml")
    assert problems == []
    job = build_job(policy, _alert(container="web-1", **labels), NOW)
    assert isinstance(job, Job) and job.policy.guards.approval == "never"
    [rung] = job.ladder
    if not asked:
        assert rung.ask is None
        return
    assert rung.ask is not None
    assert rung.ask["step"] == "step 2 of 2" and rung.ask["alertname"] == "X"
    assert rung.ask["description"] == "restart, then recreate after approval"
    assert type(rung).from_json(rung.to_json()) == rung  # kept with the first rung's action


def test_a_later_steps_approval_that_does_not_render_names_the_step() -> None:
    [policy], problems = parse_policies(
        _ASKING_LADDER.replace("APPROVAL", '{when: "labels.env.missing.deeper == 1"}'), "t.yaml"
    )
    assert problems == []
    stopped = build_job(policy, _alert(container="web-1"), NOW)
    assert isinstance(stopped, Stopped) and stopped.outcome is Outcome.RENDER_ERROR
    assert stopped.reason.startswith("step 2: approval: ")
