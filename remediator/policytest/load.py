"""Reads one policy test file: its format (spec.py), the policies it names (relative to the
file, loaded as `serve` loads them), its config, and whether every name in it is one of
those policies. Any problem makes the file invalid: InvalidTestFile lists them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from remediator.config import Config
from remediator.config_file import parse_config
from remediator.core import yamlstrict
from remediator.core.policy import Policy
from remediator.errors import ConfigError, PolicyError
from remediator.policy_files import load_policies, retention_problems
from remediator.policytest.spec import Case, TestFile, where


class InvalidTestFile(Exception):  # noqa: N818  # a verdict on a file, named as it is shown
    """`problems`: `FILE: where: message` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Suite:
    path: Path
    spec: TestFile
    policies: list[Policy]
    config: Config


def load_suite(path: Path) -> Suite:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidTestFile([f"{path}: (file): cannot read: {exc}"]) from None
    spec = parse_test_file(text, str(path))
    problems: list[str] = []
    policies: list[Policy] = []
    try:
        # Secrets are not checked: no action leaves a test, so none is ever expanded.
        policies = load_policies([path.parent / p for p in spec.policies])
    except PolicyError as exc:
        problems += [f"{path}: policies: {line}" for line in exc.problems]
    config = None
    try:
        config = parse_config(
            yaml.safe_dump(spec.config), f"{path}: config", os.environ, path.parent
        )
    except ConfigError as exc:
        problems += str(exc).splitlines()
    if config is not None and policies:
        window = config.limits.global_rate.window
        too_long = retention_problems(config.retention, window, policies)
        problems += [f"{path}: config: {line}" for line in too_long]
        problems += [f"{path}: {line}" for line in name_problems(spec, policies)]
    if problems or config is None:
        raise InvalidTestFile(problems)
    return Suite(path, spec, policies, config)


def parse_test_file(text: str, filename: str) -> TestFile:
    try:
        raw = yamlstrict.load(text)
    except Exception as exc:  # noqa: BLE001  # any YAML error is one reported problem
        raise InvalidTestFile([f"{filename}: yaml: {yamlstrict.describe(exc)}"]) from None
    if not isinstance(raw, dict):
        raise InvalidTestFile([f"{filename}: (file): expected a mapping with policies and tests"])
    try:
        return TestFile.model_validate(raw)
    except ValidationError as exc:
        found: dict[str, str] = {}  # a union reports each member's error: the first says it
        for error in exc.errors():
            found.setdefault(where(error["loc"], raw), error["msg"].removeprefix("Value error, "))
        raise InvalidTestFile([f"{filename}: {at}: {msg}" for at, msg in found.items()]) from None


def name_problems(spec: TestFile, policies: list[Policy]) -> list[str]:
    """Every policy a test names is one of the file's policies (a typo would pass unseen),
    and every answer it gives is to a question that policy asks."""
    by_name = {p.name: p for p in policies}
    problems = []
    for case in spec.tests:
        named = [(f"expect[{i}].policy", e.policy) for i, e in enumerate(case.expect)]
        named += [(f"approvals[{i}]", e.policy) for i, e in enumerate(case.approvals)]
        named += [("results.prometheus", name) for name in case.results.prometheus]
        named += [("results.http", name) for name in case.results.http]
        found = [
            f"{field}: {name!r} is not one of this file's policies"
            for field, name in named
            if name not in by_name
        ]
        found += _answer_problems(case, by_name)
        problems += [f"test {case.name!r}: {line}" for line in found]
    return problems


def _answer_problems(case: Case, by_name: dict[str, Policy]) -> list[str]:
    types = {a.type for p in by_name.values() for a in p.actions}
    found = [
        f"results.actions.{name}: neither a policy of this file nor an action type one of "
        f"them takes ({', '.join(sorted(types))})"
        for name in case.results.actions
        if name not in by_name and name not in types
    ]
    for name, answers in case.results.prometheus.items():
        policy = by_name.get(name)
        if policy is None:
            continue
        condition = policy.condition.prometheus if policy.condition is not None else None
        asks = {
            "condition": condition is not None,
            "min_rate": condition is not None and condition.min_rate is not None,
            "verify": any(v.prometheus is not None for v in policy.verifies),
        }
        found += [
            f"results.prometheus.{name}.{field}: the policy asks Prometheus no "
            f"{field.replace('_', ' ')} query"
            for field, given in answers.model_dump().items()
            if given and not asks[field]
        ]
    found += [
        f"results.http.{name}: the policy has no verify.http"
        for name in case.results.http
        if name in by_name and not any(v.http is not None for v in by_name[name].verifies)
    ]
    return found
