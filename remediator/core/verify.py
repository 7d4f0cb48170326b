"""What verifies an action once it ran, as typed data: how long to wait, and the policy's
Prometheus check rendered for one alert. Pure.

The rendered check is stored beside the action's params (store/records.py), so an action
approved later, or recorded now and run when its turn comes, verifies as it was decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class PrometheusCheck:
    """A `verify.prometheus` query rendered for one alert; recovered once the value is
    `above` or `below` (exactly one is set) the bound."""

    query: str
    above: float | None = None
    below: float | None = None

    def to_json(self) -> dict[str, Any]:
        bound = {"above": self.above} if self.above is not None else {"below": self.below}
        return {"query": self.query, **bound}

    @classmethod
    def from_json(cls, value: Any) -> PrometheusCheck | None:
        if not isinstance(value, dict) or not isinstance(value.get("query"), str):
            return None
        above, below = value.get("above"), value.get("below")
        return cls(
            value["query"],
            float(above) if above is not None else None,
            float(below) if below is not None else None,
        )


@dataclass(frozen=True, slots=True)
class VerifyPlan:
    """How an action is verified after its executor's own check (containers running, the
    rollout complete): wait up to `within`, and for `prometheus` to recover, if set."""

    within: timedelta
    prometheus: PrometheusCheck | None = None
