"""Escalation ladders (`steps`): the rungs after the first, rendered for one alert when its
episode is decided, and kept with the first rung's action (or its approval) until the
runner needs them. Pure.

Rendering them all up front means the policy's guards judge the ladder as a whole when it
starts: a later rung that does not render, or whose target is out of scope, stops the
ladder before its first rung runs (`render_error`, `out_of_scope`, naming the step), and
the runner never needs the alert again. A rung runs only when the one before it failed or
was not verified; each is its own decision (`step`), at most once per episode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from remediator.core.outcomes import Outcome
from remediator.core.policy import Policy
from remediator.core.verify import Checks


@dataclass(frozen=True, slots=True)
class Rung:
    """A later step as rendered for one alert: what it runs and how it is verified."""

    step: int
    action: str
    target: str
    params: Mapping[str, str]
    within: timedelta
    checks: Checks | None = None
    # The step's own approval asked for this alert: what its request shows a person (the
    # alert as it fired, rendered with the ladder), or None when the step needs none.
    ask: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        shaped: dict[str, Any] = {
            "step": self.step,
            "action": self.action,
            "target": self.target,
            "params": dict(self.params),
            "within": self.within.total_seconds(),
            "verify": self.checks.to_json() if self.checks is not None else None,
        }
        if self.ask is not None:
            shaped["ask"] = dict(self.ask)
        return shaped

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Rung:
        return cls(
            int(value["step"]),
            str(value["action"]),
            str(value["target"]),
            {str(k): str(v) for k, v in value["params"].items()},
            timedelta(seconds=float(value["within"])),
            Checks.from_json(value.get("verify")) or None,
            dict(value["ask"]) if isinstance(value.get("ask"), dict) else None,
        )


def ladder_json(rungs: Sequence[Rung]) -> list[dict[str, Any]]:
    return [rung.to_json() for rung in rungs]


def ladder_from_json(value: Any) -> tuple[Rung, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(Rung.from_json(item) for item in value if isinstance(item, dict))


def ladder_scope(
    policy: Policy, rungs: Sequence[Rung], protected: frozenset[str]
) -> tuple[Outcome, str, str] | None:
    """(out_of_scope, reason, shown target) for the first later rung outside its step's
    allow_targets, else None."""
    for rung in rungs:
        action = policy.steps[rung.step - 1].action
        refused = action.kind.scope(rung.target, action.allow_targets, protected)
        if refused is not None:
            return Outcome.OUT_OF_SCOPE, f"step {rung.step}: {refused.reason}", refused.shown
    return None
