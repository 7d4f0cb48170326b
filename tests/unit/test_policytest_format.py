"""The policy test file format (remediator/policytest/spec.py, load.parse_test_file): what is
accepted, and every refusal naming the file, the test and the field."""

from __future__ import annotations

from datetime import timedelta

import pytest

from remediator.policytest.load import InvalidTestFile, parse_test_file
from remediator.policytest.spec import ApprovalEvent, Expected

MINIMAL = """
policies: ["../p.yaml"]
tests:
  - name: t
    alerts: [{at: 0s, labels: {alertname: A}}]
    expect: [{at: 0s, policy: p, outcome: executed}]
"""


def test_a_minimal_file_takes_every_default() -> None:
    spec = parse_test_file(MINIMAL, "f.test.yaml")
    [case] = spec.tests
    [alert] = case.alerts
    assert (alert.at, alert.source, alert.status, alert.starts_at) == (
        timedelta(0),
        "alertmanager",
        "firing",
        None,
    )
    assert spec.config == {} and case.approvals == [] and case.results.actions == {}
    assert case.expect == [Expected(at=timedelta(0), policy="p", outcome="executed")]


def test_offsets_read_as_prometheus_durations() -> None:
    text = MINIMAL.replace("{at: 0s, labels", "{at: 1h30m, starts_at: 90s, labels")
    [alert] = parse_test_file(text, "f").tests[0].alerts
    assert alert.at == timedelta(hours=1, minutes=30)
    assert alert.starts_at == timedelta(seconds=90)


def test_answers_take_their_short_forms() -> None:
    text = MINIMAL.replace(
        "    expect:",
        "    results:\n"
        "      prometheus: {p: {condition: [0.2, [0.3, 0.05], null, .nan], verify: [0.01]}}\n"
        "      actions: {docker.restart: failed, p: [error, executed]}\n"
        "      http: {p: [503, [503, 200], {status: 200, body: ok}]}\n"
        "    expect:",
    )
    results = parse_test_file(text, "f").tests[0].results
    condition = results.prometheus["p"].condition
    assert condition[:3] == [0.2, [0.3, 0.05], None] and condition[3] != condition[3]  # NaN
    assert results.actions == {"docker.restart": "failed", "p": ["error", "executed"]}
    first, spread, full = results.http["p"]
    assert not isinstance(first, list) and first.status == 503 and first.body is None
    assert isinstance(spread, list) and [a.status for a in spread] == [503, 200]
    assert not isinstance(full, list) and (full.status, full.body) == (200, "ok")


def test_an_approval_event_names_one_verb() -> None:
    event = ApprovalEvent.model_validate({"at": "2m", "deny": "p", "target": "web-1"})
    assert (event.policy, event.approve, event.target) == ("p", None, "web-1")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            ("at: 0s, labels", "at: 5, labels"),
            "f: test 't': alerts[0].at: expected an offset such as 0s, 90s or 5m",
        ),
        (
            ("at: 0s, labels", "at: 5 minutes, labels"),
            "f: test 't': alerts[0].at: invalid duration '5 minutes'",
        ),
        (
            ("{alertname: A}", "{alertname: A, port: 5432}"),
            "f: test 't': alerts[0].labels: port: expected a string; quote it: '5432'",
        ),
        (
            ("labels: {alertname: A}", "source: datadog, labels: {name: x}"),
            "f: test 't': alerts[0]: labels.alertname: a Datadog alert needs its monitor's name",
        ),
        (
            ("labels: {alertname: A}", "source: datadog, labels: {alertname: A, tags: 'a,b'}"),
            "f: test 't': alerts[0]: labels.tags: a Datadog tag cannot carry this label",
        ),
        (
            (
                "labels: {alertname: A}",
                "source: datadog, labels: {alertname: A}, annotations: {summary: s}",
            ),
            "f: test 't': alerts[0]: annotations.summary: not a field of a Datadog notification",
        ),
        (
            (
                "labels: {alertname: A}",
                "source: datadog, status: resolved, labels: {alertname: A}, "
                "annotations: {transition: Triggered}",
            ),
            "f: test 't': alerts[0]: annotations.transition: 'Triggered' is not a resolved "
            "transition; one of Recovered",
        ),
        (
            ("outcome: executed", "outcome: executd"),
            "f: test 't': expect[0].outcome: unknown outcome 'executd'; one of awaiting_approval",
        ),
        (
            ("outcome: executed}", "outcome: executed, target: 5}"),
            "f: test 't': expect[0].target: Input should be a valid string",
        ),
        (
            ("    expect:", "    approvals: [{at: 1m, approve: p, deny: p}]\n    expect:"),
            "f: test 't': approvals[0]: give exactly one of approve: POLICY or deny: POLICY",
        ),
        (
            ("    expect:", "    results: {actions: {docker.restart: exploded}}\n    expect:"),
            "f: test 't': results.actions.docker.restart: Input should be 'executed', "
            "'failed', 'error' or 'unreachable'",
        ),
        (
            ("    expect:", "    result: {}\n    expect:"),
            "f: test 't': result: Extra inputs are not permitted",
        ),
        (
            ("    expect: [{at: 0s, policy: p, outcome: executed}]\n", ""),
            "f: test 't': expect: Field required",
        ),
        (
            ('policies: ["../p.yaml"]', 'policies: ["../p.yaml"]\nconfig: {state: x}'),
            "f: config: state: a test always uses its own in-memory store",
        ),
        (
            ('policies: ["../p.yaml"]', "policies: []"),
            "f: policies: List should have at least 1 item",
        ),
        (("  - name: t\n", "  - name: ''\n"), "f: tests[0]: name: String should have at least"),
    ],
)
def test_a_malformed_file_names_the_file_the_test_and_the_field(
    change: tuple[str, str], problem: str
) -> None:
    text = MINIMAL.replace(*change)
    assert text != MINIMAL
    with pytest.raises(InvalidTestFile) as caught:
        parse_test_file(text, "f")
    assert any(line.startswith(problem) for line in caught.value.problems), caught.value.problems


def test_two_tests_of_one_name_and_yaml_errors_are_refused() -> None:
    twice = MINIMAL + "  - {name: t, expect: []}\n"
    with pytest.raises(InvalidTestFile) as caught:
        parse_test_file(twice, "f")
    assert caught.value.problems == ["f: tests: two tests are named 't'"]
    with pytest.raises(InvalidTestFile, match=r"^f: yaml: "):
        parse_test_file("policies: [a\n", "f")
    with pytest.raises(InvalidTestFile, match=r"^f: yaml: .*duplicate key"):
        parse_test_file(MINIMAL + "policies: []\n", "f")
    with pytest.raises(InvalidTestFile, match=r"^f: \(file\): expected a mapping"):
        parse_test_file("- a\n", "f")
