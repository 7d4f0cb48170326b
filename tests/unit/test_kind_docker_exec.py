"""docker.exec as a policy writes it and as an alert renders it: the command list becomes one
templated param per argument, each rendered to exactly one literal argument; the static
check and the rendered reading refuse what `docker exec` could not take as meant."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from remediator.core.alert import Alert
from remediator.core.job import render_job
from remediator.core.kinds.docker import RestartTarget
from remediator.core.kinds.docker_exec import DOCKER_EXEC, ExecSpec, exec_spec
from remediator.core.policy import parse_policies

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def policy_text(params: str, allow: str = '["cache-*"]') -> str:
    return (
        "name: flush-cache\n"
        "match: {matchers: ['alertname=\"SlowResponses\"']}\n"
        f"action: {{type: docker.exec, allow_targets: {allow}, params: {params}}}\n"
    )


def problems(params: str) -> list[str]:
    _, found = parse_policies(policy_text(params), "p.yaml")
    return found


def alert(**labels: str) -> Alert:
    return Alert(
        "alertmanager", "firing", {"alertname": "SlowResponses", **labels}, {}, NOW, "f1", "e1"
    )


def test_the_command_list_becomes_one_templated_param_per_argument() -> None:
    [policy], found = parse_policies(
        policy_text(
            '{container: "{{ labels.container }}", '
            'command: [redis-cli, -n, "{{ labels.db }}", FLUSHDB], timeout: 10s, user: "999"}'
        ),
        "p.yaml",
    )
    assert found == []
    assert [name for name in policy.action.params if name.startswith("command.")] == [
        "command.0",
        "command.1",
        "command.2",
        "command.3",
    ]
    job = render_job(policy, alert(container="cache-1", db="3"), NOW)
    assert job.error is None and job.target == "cache-1"
    assert exec_spec(job.params) == ExecSpec(
        RestartTarget("cache-1", None, None), ("redis-cli", "-n", "3", "FLUSHDB"), "999", 10.0, 0
    )


@pytest.mark.parametrize(
    "value",
    ["x; rm -rf /", "$(id)", "`id`", "a && b", "a | b", "'\"", "*", "a b c", "--help"],
)
def test_a_label_value_is_one_literal_argument(value: str) -> None:
    [policy], _ = parse_policies(
        policy_text('{container: cache-1, command: [redis-cli, DEL, "{{ labels.key }}"]}'),
        "p.yaml",
    )
    job = render_job(policy, alert(key=value), NOW)
    assert job.error is None
    assert exec_spec(job.params).command == ("redis-cli", "DEL", value)


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ("{container: c, command: redis-cli}", "param 'command' must be a non-empty list"),
        ("{container: c, command: []}", "param 'command' must be a non-empty list"),
        ("{container: c, command: [a, {b: c}]}", "must be a string or number"),
        ("{container: c}", "missing param command"),
        ("{command: [x]}", "docker.exec needs either container"),
        ("{container: c, compose_service: s, command: [x]}", "needs either container"),
        ("{compose_project: p, command: [x]}", "needs both compose_project"),
        ("{container: c, command: [x], timeout: soon}", "invalid duration 'soon'"),
        ("{container: c, command: [x], expect_exit: 256}", "is not an exit code"),
        ("{container: c, command: [x], expect_exit: ok}", "is not an exit code"),
        ("{container: c, command: [x], user: 'root; id'}", "is not a user or user:group"),
        ("{container: c, command: [x], shell: 'true'}", "unknown param(s) shell"),
        ("{container: c, command: [x, '${secret:REDIS}']}", "does not fill in ${secret:"),
    ],
)
def test_what_the_static_check_refuses(params: str, problem: str) -> None:
    found = problems(params)
    assert len(found) == 1 and problem in found[0], found


def test_allow_targets_is_required() -> None:
    _, found = parse_policies(policy_text("{container: c, command: [x]}", allow="[]"), "p.yaml")
    assert len(found) == 1 and "allow_targets is required" in found[0]


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ({"key": "a\x00b"}, "contains a NUL character"),
        ({"key": "${secret:X}"}, "${"),
        ({"user": "root; id"}, "is not a user or user:group name"),
        ({"container": "../db"}, "is not a valid Docker container name"),
    ],
)
def test_a_rendered_value_that_cannot_be_taken_as_meant_is_a_render_error(
    labels: dict[str, str], problem: str
) -> None:
    [policy], _ = parse_policies(
        policy_text(
            '{container: "{{ labels.container }}", user: "{{ labels.user }}", '
            'command: [redis-cli, DEL, "{{ labels.key }}"]}',
            allow='["*"]',
        ),
        "p.yaml",
    )
    values = {"container": "cache-1", "user": "999", "key": "k"} | labels
    job = render_job(policy, alert(**values), NOW)
    assert job.error is not None and problem in job.error.reason, job.error


def test_compose_service_target_and_defaults() -> None:
    spec = exec_spec(
        {"compose_project": "Shop", "compose_service": "cache", "command.0": "redis-cli"}
    )
    assert spec.where.describe() == "shop/cache"
    assert (spec.user, spec.timeout, spec.expect_exit) == (None, 30.0, 0)
    assert DOCKER_EXEC.target({"container": "cache-1", "command.0": "x"}) == "cache-1"
