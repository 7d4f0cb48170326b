"""The policy model and its strict validation: the top-level Policy with its ladder steps,
and loading one YAML stream of them into policies or problem lines.

Loading is pure (text -> policies or problem lines); reading files lives in policy_files.py.
The sections are modules of their own (policy_fields.py: the base, field types and guards;
policy_action.py: match and action; policy_verify.py: condition and verify); their names are
imported from here, so this stays the one place the rest of the code takes a policy from.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ValidationError, field_validator, model_validator

from remediator.core import yamlstrict
from remediator.core.policy_action import ActionSpec, MatchSpec
from remediator.core.policy_fields import (
    ApprovalWhen,
    Duration,
    Guards,
    RateSpec,
    Strict,
    TemplateField,
)
from remediator.core.policy_verify import (
    ConditionSpec,
    HttpVerify,
    PrometheusCondition,
    PrometheusVerify,
    Threshold,
    VerifySpec,
)

__all__ = [
    "ActionSpec",
    "ApprovalWhen",
    "ConditionSpec",
    "Duration",
    "Guards",
    "HttpVerify",
    "MatchSpec",
    "Policy",
    "PrometheusCondition",
    "PrometheusVerify",
    "RateSpec",
    "StepSpec",
    "Strict",
    "TemplateField",
    "Threshold",
    "VerifySpec",
    "check_unique",
    "parse_policies",
]

_NAME = re.compile(r"^[a-z0-9-]+\Z")


class StepSpec(Strict):
    """One rung of an escalation ladder: an action, how it is verified, and optionally its
    own approval (the first rung's approval is the policy's guard, when it has none)."""

    action: ActionSpec
    """The step's action, as the policy's `action`."""
    verify: VerifySpec = VerifySpec()
    """How the step is verified; failed or not verified: the next step runs."""
    approval: Literal["never", "always"] | ApprovalWhen | None = None
    """The step's own approval (the first step's is the policy's `guards.approval`)."""


class Policy(Strict):
    name: str
    """Unique, `[a-z0-9-]+`; the metric label and the audit log's policy."""
    description: str = ""
    """What the policy is for (a runbook step)."""
    match: MatchSpec = MatchSpec()
    """Which alerts the policy takes."""
    action: ActionSpec
    """What it does (required unless `steps`)."""
    guards: Guards = Guards()
    """What must pass before it acts."""
    verify: VerifySpec = VerifySpec()
    """How the action is verified after it ran."""
    condition: ConditionSpec | None = None
    """Re-checked by the daemon before acting."""
    # An escalation ladder (`steps` instead of `action` and `verify`): `action`, `verify`
    # and an approval of the first rung are then the first rung's, so everything that
    # decides an episode sees a policy like any other; the runner takes the later rungs.
    steps: tuple[StepSpec, ...] = ()
    """An escalation ladder instead of `action` and `verify`: each step runs when the one
    before failed or was not verified, at most once per episode."""

    @model_validator(mode="before")
    @classmethod
    def _ladder(cls, data: object) -> object:
        if not isinstance(data, dict) or "steps" not in data:
            return data
        steps = data["steps"]
        if "action" in data or "verify" in data:
            raise ValueError("give either action (and verify) or steps, not both")
        if not isinstance(steps, list) or not steps:
            raise ValueError("steps must be a non-empty list of {action, verify, approval}")
        first = steps[0]
        if not isinstance(first, dict):
            return data  # the steps field reports it
        shaped = dict(data)
        shaped["action"] = first.get("action")
        if "verify" in first:
            shaped["verify"] = first["verify"]
        if first.get("approval") is not None:
            guards = shaped.get("guards")
            if isinstance(guards, dict):
                if "approval" in guards:
                    raise ValueError(
                        "the first step's approval and guards.approval say the same thing: give one"
                    )
                shaped["guards"] = {**guards, "approval": first["approval"]}
            elif guards is None:
                shaped["guards"] = {"approval": first["approval"]}
        return shaped

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("name must match [a-z0-9-]+")
        return value

    def matches_source(self, source: str) -> bool:
        return self.match.source in ("any", source)

    @property
    def actions(self) -> tuple[ActionSpec, ...]:
        """Every action the policy may take: its one action, or each rung of its ladder."""
        return tuple(step.action for step in self.steps) or (self.action,)

    @property
    def verifies(self) -> tuple[VerifySpec, ...]:
        """How each of `actions` is verified."""
        return tuple(step.verify for step in self.steps) or (self.verify,)


def _field_path(loc: tuple[int | str, ...]) -> str:
    # pydantic reports the failing validator of a tagged union member as an extra loc part.
    parts = [str(p) for p in loc if not (isinstance(p, str) and p.startswith("function-"))]
    return ".".join(parts) or "(policy)"


def parse_policies(text: str, filename: str) -> tuple[list[Policy], list[str]]:
    """Every policy in one YAML stream, or problem lines `FILE: policy NAME: field: message`."""
    policies: list[Policy] = []
    problems: list[str] = []
    try:
        documents = [d for d in yamlstrict.load_all(text) if d is not None]
    except Exception as exc:  # noqa: BLE001  # any YAML error is one reported problem
        return [], [f"{filename}: policy ?: yaml: {yamlstrict.describe(exc)}"]
    for index, document in enumerate(documents, start=1):
        label = f"#{index}"
        if isinstance(document, dict) and isinstance(document.get("name"), str):
            label = document["name"]
        if not isinstance(document, dict):
            problems.append(f"{filename}: policy {label}: (policy): expected a mapping")
            continue
        try:
            policies.append(Policy.model_validate(document))
        except ValidationError as exc:
            for error in exc.errors():
                message = error["msg"].removeprefix("Value error, ")
                problems.append(
                    f"{filename}: policy {label}: {_field_path(error['loc'])}: {message}"
                )
    return policies, problems


def check_unique(located: list[tuple[str, Policy]]) -> list[str]:
    """Duplicate names across all files, reported at each later occurrence."""
    seen: dict[str, str] = {}
    problems = []
    for filename, policy in located:
        if policy.name in seen:
            problems.append(
                f"{filename}: policy {policy.name}: name: duplicate name, "
                f"first defined in {seen[policy.name]}"
            )
        else:
            seen[policy.name] = filename
    return problems
