"""`remediator test` in process: a test file runs through the daemon's own parts (intake,
judgement, runner, approvals, SQLite store in memory) on virtual time, against stand-ins;
what it prints and exits with, and what makes a file invalid."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from remediator.policytest import run_files
from remediator.policytest.harness import Made, run_case
from remediator.policytest.load import InvalidTestFile, load_suite

LADDER = """
name: web-down
match: {matchers: ['alertname="WebDown"']}
guards: {cooldown: 10m, rate_limit: "5/1h"}
steps:
  - action: {type: docker.restart, params: {container: "{{ labels.name }}"}, allow_targets: ["web-*"]}
    verify: {within: 2m, http: {url: "http://{{ labels.name }}:8080/health", expect_status: "200"}}
  - action: {type: docker.recreate, params: {container: "{{ labels.name }}"}, allow_targets: ["web-*"]}
    verify: {within: 3m}
  - action: {type: notify, params: {text: "{{ labels.name }} still down"}}
"""
GATED = """
name: gated
match: {matchers: ['alertname="Gated"']}
action: {type: docker.restart, params: {container: "{{ labels.name }}"}, allow_targets: ["web-*"]}
guards: {cooldown: 10m, approval: always, approvers: ["U1", "api:alice"]}
"""
ROLLBACK = """
name: rollback
match: {matchers: ['alertname="ErrorRate"']}
condition:
  prometheus: {query: 'errors{deployment="{{ labels.deployment }}"}', above: 0.1, for: 5m}
action: {type: kubernetes.rollback, params: {namespace: prod, deployment: "{{ labels.deployment }}"}, allow_targets: ["prod/*"]}
guards: {cooldown: 1h}
verify: {within: 10m, prometheus: {query: 'errors{deployment="{{ labels.deployment }}"}', below: 0.05}}
"""


def write(folder: Path, policies: dict[str, str], test: str) -> Path:
    for name, text in policies.items():
        (folder / f"{name}.yaml").write_text(text)
    path = folder / "t.test.yaml"
    path.write_text(test)
    return path


def decisions(path: Path, index: int = 0) -> list[tuple[str, str, int | None, str]]:
    suite = load_suite(path)
    found: list[Made] = run_case(suite, suite.spec.tests[index])
    return [(str(m.at), m.outcome, m.step, m.target) for m in found]


def run(*paths: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run_files(list(paths), out, err)
    return status, out.getvalue(), err.getvalue()


def test_each_ladder_rung_is_decided_when_the_one_before_fails_its_window(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"ladder": LADDER},
        """
policies: [ladder.yaml]
tests:
  - name: t
    alerts: [{at: 0s, labels: {alertname: WebDown, name: web-1}}]
    results: {http: {web-down: [503]}, actions: {docker.recreate: failed}}
    expect: []
""",
    )
    assert decisions(path) == [
        ("0:00:00", "failed", 1, "web-1"),  # not healthy within its 2m
        ("0:02:00", "failed", 2, "web-1"),  # the recreate's own check gave up after 3m
        ("0:05:00", "executed", 3, "slack"),
    ]


def test_approvals_are_answered_and_expire_on_the_simulated_clock(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"gated": GATED},
        """
policies: [gated.yaml]
config: {limits: {approval_ttl: 10m}}
tests:
  - name: t
    alerts:
      - {at: 0s, labels: {alertname: Gated, name: web-1}}
      - {at: 0s, labels: {alertname: Gated, name: web-2}}
      - {at: 0s, labels: {alertname: Gated, name: web-3}}
      - {at: 0s, labels: &w4 {alertname: Gated, name: web-4}}
      - {at: 9m, status: resolved, labels: *w4}
      - {at: 11m, labels: {alertname: Gated, name: web-5}}
    approvals:
      - {at: 1m, approve: gated, target: web-1, by: api:alice}
      - {at: 2m, deny: gated, target: web-2}
    expect: []
""",
    )
    assert decisions(path) == [
        ("0:00:00", "executed", None, "web-1"),
        ("0:00:00", "denied", None, "web-2"),
        ("0:00:00", "expired", None, "web-3"),  # nobody answered within approval_ttl
        ("0:00:00", "cancelled", None, "web-4"),  # its alert resolved first
        ("0:11:00", "awaiting_approval", None, "web-5"),  # the test ends before its ttl
    ]


def test_an_approval_the_test_cannot_give_fails_it_saying_why(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"gated": GATED},
        """
policies: [gated.yaml]
tests:
  - name: nothing pending
    alerts: [{at: 0s, labels: {alertname: Gated, name: web-1}}]
    approvals: [{at: 1m, approve: gated, target: web-9}]
    expect: []
  - name: not an approver
    alerts: [{at: 0s, labels: {alertname: Gated, name: web-1}}]
    approvals: [{at: 1m, approve: gated, by: U2}]
    expect: []
""",
    )
    status, out, _ = run(path)
    assert status == 1
    assert (
        "  FAIL nothing pending\n       at 1m: approve gated on web-9: no approval of it is pending"
        in out
    )
    assert (
        "  FAIL not an approver\n       at 1m: approve gated: refused for U2: U2 is not an approver of policy gated"
        in out
    )


def test_conditions_are_answered_per_evaluation_and_verify_per_verification(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        {"rollback": ROLLBACK},
        """
policies: [rollback.yaml]
tests:
  - name: t
    alerts:
      - {at: 0s, labels: {alertname: ErrorRate, deployment: api}}
      - {at: 0s, labels: {alertname: ErrorRate, deployment: web}}
      - {at: 0s, labels: {alertname: ErrorRate, deployment: worker}}
    results:
      prometheus: {rollback: {condition: [[0.3, 0.05], 0.3], verify: [0.2, [0.2, 0.01]]}}
    expect: []
""",
    )
    suite = load_suite(path)
    made = run_case(suite, suite.spec.tests[0])
    assert [(m.target, m.outcome) for m in made] == [
        ("", "condition_not_met"),  # a dip in the window: not every sample over 10%
        ("prod/web", "failed"),  # its verification saw 0.2 all along
        ("prod/worker", "executed"),  # its verification saw 0.01 after half of 10m
    ]
    assert "sample 0.05" in made[0].reason
    assert "not recovered within 10m" in made[1].reason
    assert "recovered: value 0.01 is < 0.05" in made[2].reason


def test_stand_in_results_error_and_unreachable_fail_without_waiting(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"gated": GATED.replace("approval: always, ", "")},
        """
policies: [gated.yaml]
tests:
  - name: t
    alerts:
      - {at: 0s, labels: {alertname: Gated, name: web-1}}
      - {at: 0s, labels: {alertname: Gated, name: web-2}}
    results: {actions: {gated: [error, unreachable]}}
    expect: []
""",
    )
    suite = load_suite(path)
    made = run_case(suite, suite.spec.tests[0])
    assert [(m.target, m.outcome) for m in made] == [("web-1", "failed"), ("web-2", "failed")]
    assert made[0].reason == "stand-in docker.restart on web-1: refused by the backend"
    assert made[1].reason == "stand-in docker.restart on web-2: connection refused"


def test_a_dry_run_config_decides_dry_run_and_two_policies_decide_one_alert(
    tmp_path: Path,
) -> None:
    other = GATED.replace("name: gated", "name: also").replace("approval: always, ", "")
    path = write(
        tmp_path,
        {"gated": GATED.replace("approval: always, ", ""), "also": other},
        """
policies: [gated.yaml, also.yaml]
config: {dry_run: true}
tests:
  - name: t
    alerts:
      - {at: 0s, labels: &g {alertname: Gated, name: web-1}}
      - {at: 1m, labels: *g}
    expect: []
""",
    )
    assert decisions(path) == [
        ("0:00:00", "dry_run", None, "web-1"),
        ("0:00:00", "dry_run", None, "web-1"),
        ("0:01:00", "deduplicated", None, "web-1"),
        ("0:01:00", "deduplicated", None, "web-1"),
    ]


def test_a_day_of_simulated_time_takes_moments(tmp_path: Path) -> None:
    alerts = "\n".join(
        f"      - {{at: {hour}h, labels: {{alertname: ErrorRate, deployment: d{hour}}}}}"
        for hour in range(24)
    )
    path = write(
        tmp_path,
        {"rollback": ROLLBACK},
        f"""
policies: [rollback.yaml]
tests:
  - name: t
    alerts:
{alerts}
    results: {{prometheus: {{rollback: {{condition: [0.5], verify: [0.5]}}}}}}
    expect: []
""",
    )
    started = time.monotonic()
    found = decisions(path)
    assert len(found) == 24 and found[-1][0] == "23:00:00"
    assert found[0][1] == "failed" and found[1][1] == "tripped"  # 10m verify windows ran out
    assert time.monotonic() - started < 20


@pytest.mark.parametrize(
    ("test", "problem"),
    [
        (
            "expect: [{at: 0s, policy: gatd, outcome: executed}]",
            "test 't': expect[0].policy: 'gatd' is not one of this file's policies",
        ),
        (
            "approvals: [{at: 0s, deny: gatd}]\n    expect: []",
            "test 't': approvals[0]: 'gatd' is not one of this file's policies",
        ),
        (
            "results: {actions: {kubernetes.scale: failed}}\n    expect: []",
            "test 't': results.actions.kubernetes.scale: neither a policy of this file nor an "
            "action type one of them takes (docker.restart)",
        ),
        (
            "results: {prometheus: {gated: {condition: [0.2]}}}\n    expect: []",
            "test 't': results.prometheus.gated.condition: the policy asks Prometheus no "
            "condition query",
        ),
        (
            "results: {http: {gated: [200]}}\n    expect: []",
            "test 't': results.http.gated: the policy has no verify.http",
        ),
    ],
)
def test_a_name_no_policy_of_the_file_answers_to_makes_it_invalid(
    tmp_path: Path, test: str, problem: str
) -> None:
    path = write(
        tmp_path,
        {"gated": GATED},
        f"policies: [gated.yaml]\ntests:\n  - name: t\n    {test}\n",
    )
    with pytest.raises(InvalidTestFile) as caught:
        load_suite(path)
    assert caught.value.problems == [f"{path}: {problem}"]


def test_policies_and_config_that_do_not_load_make_the_file_invalid(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"bad": "name: Bad\naction: {type: docker.restart, params: {container: x}}\n"},
        "policies: [bad.yaml, gone.yaml]\nconfig: {limits: {global_rate: lots}}\n"
        "tests: [{name: t, expect: []}]\n",
    )
    with pytest.raises(InvalidTestFile) as caught:
        load_suite(path)
    problems = "\n".join(caught.value.problems)
    assert f"{path}: policies: {tmp_path / 'bad.yaml'}: policy Bad: name: " in problems
    assert f"{path}: policies: {tmp_path / 'gone.yaml'}: policy ?: (file): no such file" in problems
    assert f"{path}: config: limits.global_rate: invalid rate 'lots'" in problems


def test_exit_codes_pass_fail_and_invalid_and_other_files_still_run(tmp_path: Path) -> None:
    good = write(
        tmp_path,
        {"gated": GATED},
        """
policies: [gated.yaml]
tests:
  - name: asks first
    alerts: [{at: 0s, labels: {alertname: Gated, name: web-1}}]
    expect: [{at: 0s, policy: gated, target: web-1, outcome: awaiting_approval}]
""",
    )
    wrong = tmp_path / "wrong.test.yaml"
    wrong.write_text(good.read_text().replace("awaiting_approval", "executed"))
    invalid = tmp_path / "invalid.test.yaml"
    invalid.write_text("policies: [gated.yaml]\ntests: [{name: t}]\n")
    assert run(good)[0] == 0
    status, out, _ = run(good, wrong)
    assert status == 1 and "1 passed, 1 failed" in out
    status, out, err = run(invalid, good, wrong)
    assert status == 2
    assert f"{invalid}: INVALID" in out and "  PASS asks first" in out
    assert err == f"{invalid}: test 't': expect: Field required\n"


def test_the_readme_example_passes(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    marker = "# policies/tests/restart-unhealthy-container.test.yaml, abridged\n"
    example = readme.split(marker, 1)[1].split("```", 1)[0]
    policies = Path(__file__).resolve().parents[2] / "policies"
    path = tmp_path / "readme.test.yaml"
    path.write_text(example.replace('["../', f'["{policies}/'))
    status, out, err = run(path)
    assert (status, err) == (0, ""), out
    assert out.count("  PASS ") == 2
