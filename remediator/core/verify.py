"""What verifies an action once it ran, as typed data: how long to wait, and the policy's
checks (`verify.prometheus`, `verify.http`) rendered for one alert. Pure.

The rendered checks are stored beside the action's params (store/records.py), so an action
approved later, or recorded now and run when its turn comes, verifies as it was decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple


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
class HttpCheck:
    """A `verify.http` rendered for one alert: GET `url` until its status is in
    `expect_status` (`2xx`, `200`, `200,204`) and, if set, its body contains `contains`."""

    url: str
    expect_status: str = "2xx"
    contains: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "expect_status": self.expect_status, "contains": self.contains}

    @classmethod
    def from_json(cls, value: Any) -> HttpCheck | None:
        if not isinstance(value, dict) or not isinstance(value.get("url"), str):
            return None
        contains = value.get("contains")
        return cls(
            value["url"],
            str(value.get("expect_status") or "2xx"),
            str(contains) if contains is not None else None,
        )


@dataclass(frozen=True, slots=True)
class Checks:
    """The checks an action is verified by after its own (all must hold), as stored."""

    prometheus: PrometheusCheck | None = None
    http: HttpCheck | None = None

    def __bool__(self) -> bool:
        return self.prometheus is not None or self.http is not None

    def to_json(self) -> dict[str, Any] | None:
        if not self:
            return None
        return {
            "prometheus": self.prometheus.to_json() if self.prometheus is not None else None,
            "http": self.http.to_json() if self.http is not None else None,
        }

    @classmethod
    def from_json(cls, value: Any) -> Checks:
        """As `to_json` wrote it, or as schema 6 stored a lone Prometheus check."""
        if not isinstance(value, dict):
            return cls()
        if "query" in value:
            return cls(PrometheusCheck.from_json(value))
        return cls(
            PrometheusCheck.from_json(value.get("prometheus")),
            HttpCheck.from_json(value.get("http")),
        )


class VerifyPlan(NamedTuple):
    """How an action is verified after its executor's own check (containers running, the
    rollout complete): wait up to `within` for each check that is set to hold. One per
    job, so a NamedTuple (see judge_records.Verdict)."""

    within: timedelta
    prometheus: PrometheusCheck | None = None
    http: HttpCheck | None = None

    @classmethod
    def of(cls, within: timedelta, checks: Checks | None) -> VerifyPlan:
        checks = checks or Checks()
        return cls(within, checks.prometheus, checks.http)

    @property
    def checks(self) -> Checks:
        return Checks(self.prometheus, self.http)
