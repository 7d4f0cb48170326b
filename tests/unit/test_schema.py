"""`remediator schema`: a valid JSON Schema (2020-12) that every shipped policy satisfies,
that refuses what `check` refuses for its shape, and documents each action type's params."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from remediator.cli import main
from remediator.core.kinds import KINDS
from remediator.core.policy import parse_policies
from remediator.schema import policy_schema

REPO = Path(__file__).resolve().parents[2]


def _is_policy_file(path: Path) -> bool:
    """Policy files, not the `remediator test` files beside them (`policies:` and `tests:`)."""
    first = next(iter(yaml.safe_load_all(path.read_text())), None)
    return not (isinstance(first, dict) and "tests" in first)


SHIPPED = sorted(p for p in (REPO / "policies").rglob("*.y*ml") if _is_policy_file(p))


@functools.cache
def validator() -> jsonschema.protocols.Validator:
    schema = policy_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=None)


def test_the_schema_is_valid_json_schema_2020_12() -> None:
    schema = policy_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_the_command_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == policy_schema()


def test_there_are_shipped_policies_in_subfolders_too() -> None:
    assert {p.parent.name for p in SHIPPED} >= {"policies", "slack", "hooks"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_policy_validates(path: Path) -> None:
    check = validator()
    text = path.read_text()
    policies, problems = parse_policies(text, str(path))
    assert problems == [] and policies  # check accepts it...
    for document in yaml.safe_load_all(text):
        if document is not None:  # ...so must the schema
            errors = [e.message for e in check.iter_errors(document)]
            assert errors == [], f"{path}: {document.get('name')}: {errors}"


GOOD: dict[str, Any] = {
    "name": "restart-web",
    "match": {"matchers": ['alertname="ContainerDown"']},
    "action": {
        "type": "docker.restart",
        "params": {"container": "{{ labels.container }}", "timeout": "10s"},
        "allow_targets": ["web-*"],
    },
    "guards": {"cooldown": "10m", "rate_limit": "3/1h", "approval": {"when": "true"}},
}


def variant(path: str, value: Any) -> dict[str, Any]:
    """GOOD with the dotted `path` set to `value` (None: removed)."""
    document: dict[str, Any] = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    node = document
    for part in parents:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return document


STEPS = [{"action": GOOD["action"]}, {"action": {"type": "notify", "params": {"text": "x"}}}]
REFUSED = [
    ("unknown key", variant("guards.cooldwon", "10m")),
    ("bad name", variant("name", "Restart_Web")),
    ("no action nor steps", variant("action", None)),
    ("both action and steps", variant("steps", STEPS)),
    ("steps and verify", {**variant("action", None), "steps": STEPS, "verify": {"within": "1m"}}),
    ("empty steps", {**variant("action", None), "steps": []}),
    ("unknown action type", variant("action.type", "docker.kill")),
    ("param of another type", variant("action.params.replicas", 3)),
    ("missing required param", variant("action", {"type": "notify", "params": {}})),
    ("bad duration", variant("guards.cooldown", "10 minutes")),
    ("bad rate", variant("guards.rate_limit", "3 per hour")),
    ("bad source", variant("match.source", "grafana")),
    ("approval word", variant("guards.approval", "sometimes")),
    ("a matcher that is no matcher", variant("match.matchers", ["alertname"])),
    (
        "headers as a list",
        variant(
            "action", {"type": "http.request", "params": {"url": "https://x/", "headers": ["a"]}}
        ),
    ),
]


@pytest.mark.parametrize(("case", "document"), REFUSED, ids=[c for c, _ in REFUSED])
def test_the_schema_refuses_what_check_refuses(case: str, document: dict[str, Any]) -> None:
    assert list(validator().iter_errors(document)), case
    _, problems = parse_policies(yaml.safe_dump(document), "p.yaml")
    assert problems, f"check accepts {case}: the schema must not be stricter than check"


ACCEPTED = [
    ("good", GOOD),
    ("ladder", {**variant("action", None), "steps": STEPS}),
    (
        "lists and mappings",
        variant(
            "action",
            {
                "type": "http.request",
                "params": {"url": "https://ci.example/x", "headers": {"X-A": "1"}, "timeout": "5s"},
                "allow_targets": ["https://ci.example/x"],
            },
        ),
    ),
    (
        "exec command",
        variant(
            "action",
            {
                "type": "docker.exec",
                "params": {"container": "web-1", "command": ["sh", "-c", "true"]},
                "allow_targets": ["web-*"],
            },
        ),
    ),
    (
        "condition with for",
        {
            **GOOD,
            "condition": {"prometheus": {"query": "up", "below": 1, "for": "5m", "step": "15s"}},
        },
    ),
]


@pytest.mark.parametrize(("case", "document"), ACCEPTED, ids=[c for c, _ in ACCEPTED])
def test_the_schema_accepts_what_check_accepts(case: str, document: dict[str, Any]) -> None:
    _, problems = parse_policies(yaml.safe_dump(document), "p.yaml")
    assert problems == [], case
    assert [e.message for e in validator().iter_errors(document)] == []


def test_each_action_types_params_are_documented() -> None:
    branches = policy_schema()["$defs"]["ActionSpec"]["allOf"]
    by_type = {
        b["if"]["properties"]["type"]["const"]: b["then"]["properties"]["params"] for b in branches
    }
    assert set(by_type) == set(KINDS)
    for type_, params in by_type.items():
        kind = KINDS[type_]
        assert set(params["properties"]) == set(kind.params_doc)
        assert set(params["required"]) == kind.required
        assert all(p["description"] for p in params["properties"].values())


def test_every_field_has_a_description() -> None:
    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for name, field in node.get("properties", {}).items():
                assert field.get("description"), f"{where}.{name} has no description"
            for key, value in node.items():
                if key not in ("if", "default"):  # a condition's or a default's shape
                    walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(policy_schema(), "policy")
