"""`remediator test FILE...` as a team runs it in CI: every shipped policy has a test file
and they all pass; a wrong expectation fails with exit 1 and a readable difference; a
malformed file exits 2 naming file and field; no state file is left anywhere."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.fixtures.procs import remediator_cli

REPO = Path(__file__).resolve().parents[2]
FOLDERS = [REPO / "policies", REPO / "policies" / "slack", REPO / "policies" / "hooks"]
SHIPPED_TESTS = sorted(f for folder in FOLDERS for f in (folder / "tests").glob("*.test.yaml"))


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return remediator_cli(*args, cwd=cwd)


def test_every_shipped_policy_has_a_test_file_beside_it_that_tests_it() -> None:
    for folder in FOLDERS:
        for policy in sorted(folder.glob("*.yaml")):
            test_file = folder / "tests" / f"{policy.stem}.test.yaml"
            assert test_file.is_file(), f"{policy} has no {test_file.relative_to(REPO)}"
            spec = yaml.safe_load(test_file.read_text())
            named = {(test_file.parent / p).resolve() for p in spec["policies"]}
            assert policy.resolve() in named, f"{test_file} does not load {policy.name}"
            [name] = [doc["name"] for doc in yaml.safe_load_all(policy.read_text())]
            expected = {e["policy"] for t in spec["tests"] for e in t["expect"]}
            assert name in expected, f"{test_file} expects no decision of {name}"


def test_every_shipped_test_file_passes() -> None:
    done = cli("test", *(str(p.relative_to(REPO)) for p in SHIPPED_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    count = sum(len(yaml.safe_load(p.read_text())["tests"]) for p in SHIPPED_TESTS)
    assert len(re.findall(r"^  PASS ", done.stdout, re.MULTILINE)) == count
    assert done.stdout.endswith(f"{count} passed, 0 failed\n")
    assert done.stderr == ""


def _copy(name: str, into: Path) -> Path:
    """A shipped test file, its policy paths made absolute so it runs from anywhere."""
    source = REPO / "policies" / "tests" / name
    text = source.read_text().replace('["../', f'["{source.parent.parent}/')
    target = into / name
    target.write_text(text)
    return target


def test_a_wrong_expectation_fails_with_exit_1_and_the_first_difference(tmp_path: Path) -> None:
    path = _copy("restart-unhealthy-container.test.yaml", tmp_path)
    right = "{at: 1m, policy: restart-unhealthy-container, target: web-1, outcome: deduplicated"
    assert right in path.read_text()
    path.write_text(path.read_text().replace(right, right.replace("deduplicated", "executed")))
    done = cli("test", str(path), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    failed = "a repeat is deduplicated, and the container's next episode waits for its cooldown"
    assert f"  FAIL {failed}\n" in done.stdout
    assert (
        "       decision 2: outcome is deduplicated, expected executed\n"
        "         expected: {at: 1m, policy: restart-unhealthy-container, target: web-1, "
        "outcome: executed, repeats: 2}\n"
        "         got:      {at: 1m, policy: restart-unhealthy-container, target: web-1, "
        "outcome: deduplicated, repeats: 2}\n"
    ) in done.stdout
    assert "       the test made these decisions:\n" in done.stdout
    assert "  PASS only web and worker containers, and never a dev or info alert\n" in done.stdout
    assert done.stdout.endswith("5 passed, 1 failed\n")


def test_a_missing_decision_is_named_with_what_was_expected(tmp_path: Path) -> None:
    path = _copy("restart-unhealthy-container.test.yaml", tmp_path)
    extra = (
        "      - {at: 20m, policy: restart-unhealthy-container, target: web-2, outcome: executed}\n"
    )
    path.write_text(path.read_text().replace(extra, extra + extra.replace("web-2", "web-3"), 1))
    done = cli("test", str(path), cwd=tmp_path)
    assert done.returncode == 1
    assert (
        "       decision 6: expected, but the test made 5 decisions (1 fewer than expected)\n"
        "         expected: {at: 20m, policy: restart-unhealthy-container, target: web-3, "
        "outcome: executed}\n"
    ) in done.stdout


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("policies: [a\n", "{file}: yaml: "),
        ("tests: []\n", "{file}: policies: Field required"),
        (
            "policies: ['{policy}']\ntests:\n  - name: t\n    alerts: [{{at: soon, labels: {{}}}}]\n"
            "    expect: []\n",
            "{file}: test 't': alerts[0].at: invalid duration 'soon'",
        ),
        (
            "policies: ['{policy}']\ntests:\n  - name: t\n    expect: [{{at: 0s, policy: "
            "restart-unhealthy-container, outcome: restarted}}]\n",
            "{file}: test 't': expect[0].outcome: unknown outcome 'restarted'",
        ),
        (
            "policies: ['nope.yaml']\ntests: [{{name: t, expect: []}}]\n",
            "{file}: policies: nope.yaml: policy ?: (file): no such file or folder",
        ),
    ],
)
def test_a_malformed_file_exits_2_naming_file_and_field(
    tmp_path: Path, text: str, problem: str
) -> None:
    policy = REPO / "policies" / "restart-unhealthy-container.yaml"
    path = tmp_path / "bad.test.yaml"
    path.write_text(text.format(policy=policy))
    done = cli("test", "bad.test.yaml", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(problem.format(file="bad.test.yaml"))
    assert "bad.test.yaml: INVALID\n" in done.stdout


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_no_state_file_is_left_behind(tmp_path: Path) -> None:
    """Not in the working folder (even with a remediator.yaml naming a SQLite file there),
    nor beside the test file, nor beside the policies."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "remediator.yaml").write_text("state: sqlite:///./remediator.db\n")
    tests = tmp_path / "tests"
    tests.mkdir()
    _copy("restart-unhealthy-container.test.yaml", tests)
    shipped = _copy("004-service-down-ladder.test.yaml", tests)
    policies = _tree(REPO / "policies")
    before = (_tree(work), _tree(tests))
    done = cli("test", str(tests / "restart-unhealthy-container.test.yaml"), str(shipped), cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (_tree(work), _tree(tests)) == before
    assert _tree(REPO / "policies") == policies


def test_the_test_files_are_not_policies() -> None:
    """`serve` and `check` load every *.yaml of a folder: the test files sit in tests/."""
    done = cli("check")
    assert done.returncode == 0, done.stderr
    assert f"{len(list((REPO / 'policies').glob('*.yaml')))} policies" in done.stdout
    assert not [f for folder in FOLDERS for f in folder.glob("*.test.yaml")]
