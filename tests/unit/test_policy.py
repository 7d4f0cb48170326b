"""Policy loading: valid policies parse; every problem is reported as FILE: policy NAME: field: message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remediator.config_file import parse_config
from remediator.core.policy import ApprovalWhen, parse_policies
from remediator.errors import PolicyError
from remediator.policy_files import load_policies

REPO = Path(__file__).resolve().parents[2]

VALID = """
name: restart-web
description: Service Down runbook step 3
match:
  source: alertmanager
  matchers: ['alertname="ContainerDown"', 'severity=~"critical|warning"', 'env!="dev"']
action:
  type: docker.restart
  params: {container: "{{ labels.container }}", timeout: 10s}
  allow_targets: ["web-*", "worker-*"]
guards:
  cooldown: 10m
  rate_limit: 3/1h
  approval: {when: 'labels.env == "prod"'}
  approvers: [U111]
  approvals_required: 2
verify: {within: 2m}
---
name: restart-compose
action:
  type: docker.restart
  params: {compose_project: shop, compose_service: "{{ labels.service }}"}
  allow_targets: ["shop/*"]
"""


def test_valid_policies_parse_with_defaults() -> None:
    policies, problems = parse_policies(VALID, "p.yaml")
    assert problems == []
    first, second = policies
    assert first.guards.cooldown == timedelta(minutes=10)
    assert str(first.guards.rate_limit) == "3/1h"
    assert isinstance(first.guards.approval, ApprovalWhen)
    assert first.guards.approvals_required == 2
    assert [str(m) for m in first.match.matchers][1] == 'severity=~"critical|warning"'
    assert second.match.source == "any"
    assert second.match.status == "firing"
    assert second.guards.approval == "never"
    assert second.guards.cooldown == timedelta(0)


def _one(doc: str) -> list[str]:
    policies, problems = parse_policies(doc, "bad.yaml")
    assert policies == []
    return problems


BASE_ACTION = 'action: {type: docker.restart, params: {container: "x"}, allow_targets: ["*"]}'


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            f"name: Bad_Name\n{BASE_ACTION}",
            "bad.yaml: policy Bad_Name: name: name must match [a-z0-9-]+",
        ),
        (
            f"name: p\nmatch: {{sorce: x}}\n{BASE_ACTION}",
            "bad.yaml: policy p: match.sorce: Extra inputs are not permitted",
        ),
        (
            f"name: p\nmatch: {{source: prometheus}}\n{BASE_ACTION}",
            "bad.yaml: policy p: match.source: Input should be 'alertmanager', 'datadog' or 'any'",
        ),
        (
            f"name: p\nmatch: {{matchers: ['a=~\"(\"']}}\n{BASE_ACTION}",
            "bad.yaml: policy p: match.matchers: invalid regex in matcher",
        ),
        (
            'name: p\naction: {type: docker.restart, params: {container: "{{ lables.c }}"}, allow_targets: ["*"]}',
            "bad.yaml: policy p: action.params: param 'container': template names lables",
        ),
        (
            'name: p\naction: {type: docker.restart, params: {container: "{{ labels.c "}, allow_targets: ["*"]}',
            "bad.yaml: policy p: action.params: param 'container': template does not parse",
        ),
        (
            "name: p\naction: {type: docker.restart, params: {container: x}}",
            "bad.yaml: policy p: action: allow_targets is required",
        ),
        (
            'name: p\naction: {type: docker.restart, params: {}, allow_targets: ["*"]}',
            "bad.yaml: policy p: action: docker.restart needs either container",
        ),
        (
            'name: p\naction: {type: docker.restart, params: {container: x, compose_service: y}, allow_targets: ["*"]}',
            "docker.restart needs either container",
        ),
        (
            'name: p\naction: {type: docker.restart, params: {compose_service: y}, allow_targets: ["*"]}',
            "needs both compose_project and compose_service",
        ),
        (
            'name: p\naction: {type: docker.restart, params: {container: x, timeout: soon}, allow_targets: ["*"]}',
            "invalid duration 'soon'",
        ),
        (
            'name: p\naction: {type: docker.restart, params: {container: x, signal: KILL}, allow_targets: ["*"]}',
            "unknown param(s) signal for docker.restart",
        ),
        (
            'name: p\naction: {type: docker.rm, params: {}, allow_targets: ["*"]}',
            "bad.yaml: policy p: action.type: unknown action type 'docker.rm'",
        ),
        (
            'name: p\naction: {type: http.request, params: {}, allow_targets: ["*"]}',
            "missing param(s) url for http.request",
        ),
        (
            "name: p\naction: {type: http.request, params: {url: 'https://ci/x', method: FETCH}, allow_targets: ['*']}",
            "method must be one of DELETE, GET, PATCH, POST, PUT",
        ),
        (
            "name: p\naction: {type: http.request, params: {url: 'ftp://ci/x'}, allow_targets: ['*']}",
            "url must start with http:// or https://",
        ),
        (
            "name: p\naction: {type: http.request, params: {url: 'https://ci/x', expect_status: ok}, allow_targets: ['*']}",
            "expect_status 'ok': use e.g. 2xx, 200 or 200,202",
        ),
        (
            "name: p\naction: {type: http.request, params: {url: 'https://ci/x', headers: [a]}, allow_targets: ['*']}",
            "headers must be a mapping",
        ),
        (
            "name: p\naction: {type: http.request, params: {url: 'https://ci/x'}}",
            "allow_targets is required",
        ),
        (
            "name: p\naction: {type: notify, params: {}}",
            "missing param(s) text for notify",
        ),
        (
            'name: p\naction: {type: kubernetes.scale, params: {}, allow_targets: ["*"]}',
            "missing param(s) deployment, namespace, replicas for kubernetes.scale",
        ),
        (
            "name: p\naction: {type: kubernetes.scale, params: {namespace: prod, deployment: web, replicas: lots}, allow_targets: ['*']}",
            "replicas must be a number such as 5, +2 or -1",
        ),
        (
            "name: p\naction: {type: kubernetes.scale, params: {namespace: prod, deployment: web, replicas: '+2', min: 5, max: 2}, allow_targets: ['*']}",
            "min (5) is greater than max (2)",
        ),
        (
            "name: p\naction: {type: kubernetes.scale, params: {namespace: prod, deployment: web, replicas: 3, override_hpa: maybe}, allow_targets: ['*']}",
            "override_hpa must be true or false",
        ),
        (
            "name: p\naction: {type: kubernetes.restart, params: {namespace: Kube_System, deployment: web}, allow_targets: ['*']}",
            "namespace 'Kube_System' is not a valid Kubernetes namespace name",
        ),
        (
            "name: p\naction: {type: kubernetes.rollback, params: {namespace: prod, deployment: web, to_revision: 0}, allow_targets: ['*']}",
            "param to_revision must be a whole number >= 1",
        ),
        (
            "name: p\naction: {type: kubernetes.restart, params: {namespace: prod, deployment: web, replicas: 2}, allow_targets: ['*']}",
            "unknown param(s) replicas for kubernetes.restart",
        ),
        (
            f"name: p\n{BASE_ACTION}\nguards: {{cooldown: 5 minutes}}",
            "bad.yaml: policy p: guards.cooldown: invalid duration '5 minutes'",
        ),
        (
            f"name: p\n{BASE_ACTION}\nguards: {{rate_limit: often}}",
            "bad.yaml: policy p: guards.rate_limit: invalid rate 'often'",
        ),
        (
            f"name: p\n{BASE_ACTION}\nguards: {{approval: sometimes}}",
            "bad.yaml: policy p: guards.approval",
        ),
        (
            f"name: p\n{BASE_ACTION}\nguards: {{approval: {{when: 'lables.x'}}}}",
            "template names lables",
        ),
        (
            f"name: p\n{BASE_ACTION}\nguards: {{approvals_required: 0}}",
            "guards.approvals_required: Input should be greater than or equal to 1",
        ),
        (
            f"name: p\n{BASE_ACTION}\ncondition: {{prometheus: {{query: up, for: 5m}}}}",
            "bad.yaml: policy p: condition.prometheus: set exactly one of above or below",
        ),
        (
            f"name: p\n{BASE_ACTION}\nverify: {{within: 0s}}",
            "bad.yaml: policy p: verify.within: within must be longer than zero",
        ),
        (BASE_ACTION, "bad.yaml: policy #1: name: Field required"),
        ("- just\n- a list", "bad.yaml: policy #1: (policy): expected a mapping"),
        ("name: p\nname: q", "bad.yaml: policy ?: yaml: duplicate key 'name' at line 2"),
        ("name: [unclosed", "bad.yaml: policy ?: yaml:"),
    ],
)
def test_problems_name_file_policy_and_field(doc: str, expected: str) -> None:
    problems = _one(doc)
    assert any(line.startswith(expected) or expected in line for line in problems), problems
    assert all(line.startswith("bad.yaml: policy ") for line in problems)


def test_every_problem_in_a_file_is_reported() -> None:
    doc = f"name: A\n{BASE_ACTION}\n---\nname: b\nguards: {{cooldown: x}}\n{BASE_ACTION}\n"
    problems = _one(doc)
    assert len(problems) == 2
    assert problems[0].startswith("bad.yaml: policy A: name:")
    assert problems[1].startswith("bad.yaml: policy b: guards.cooldown:")


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    body = f"name: same\n{BASE_ACTION}\n"
    (tmp_path / "a.yaml").write_text(body)
    (tmp_path / "b.yml").write_text(body)
    (tmp_path / "notes.txt").write_text("ignored")
    with pytest.raises(PolicyError) as caught:
        load_policies([tmp_path])
    assert caught.value.problems == [
        f"{tmp_path / 'b.yml'}: policy same: name: duplicate name, first defined in {tmp_path / 'a.yaml'}"
    ]


def test_missing_policy_path_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such file or folder"):
        load_policies([tmp_path / "nope"])


def test_shipped_example_policies_are_valid() -> None:
    # Every folder of policies, not the `remediator test` files in their tests/ folders.
    folders = [d for d in (REPO / "policies").glob("*/") if d.name != "tests"]
    policies = load_policies([REPO / "policies", *folders])
    assert {p.name for p in policies} >= {"start-incident-response", "open-incident-ticket"}
    assert len(policies) >= 6
    for policy in policies:
        assert policy.description, f"{policy.name} should say which runbook step it is"
        assert policy.guards.cooldown > timedelta(0)
        assert policy.guards.rate_limit is not None


def test_the_default_policy_folder_may_be_absent(tmp_path: Path) -> None:
    assert load_policies([tmp_path / "policies"], must_exist=False) == []


def test_a_configured_policy_path_must_exist(tmp_path: Path) -> None:
    assert parse_config("{}", "c.yaml", {}).policies_configured is False
    configured = parse_config("policies: ['./mine']", "c.yaml", {}, tmp_path)
    assert configured.policies_configured is True
    with pytest.raises(PolicyError, match=r"mine: policy \?: \(file\): no such file or folder"):
        load_policies(configured.policy_paths(), must_exist=configured.policies_configured)


def test_the_shipped_unhealthy_container_restart_asks_a_person_in_production_only() -> None:
    from remediator.core.alert import Alert  # noqa: PLC0415  # this test only
    from remediator.core.job import needs_approval, render_job  # noqa: PLC0415

    [policy] = load_policies([REPO / "policies" / "restart-unhealthy-container.yaml"])
    now = datetime(2026, 12, 1, tzinfo=UTC)

    def asks(**labels: str) -> bool:
        alert = Alert("alertmanager", "firing", {"name": "web-1", **labels}, {}, now, "f", "e")
        return needs_approval(render_job(policy, alert, now))

    assert asks(env="prod") is True
    assert asks(env="staging") is False
    assert asks() is False  # no env label: not production
