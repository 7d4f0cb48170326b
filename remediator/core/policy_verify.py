"""A policy's `condition` and `verify` sections: the Prometheus query re-checked before it
acts, and the Prometheus and HTTP checks that say whether its action worked.

Only what the checks are is here; running them is checks/ and core/verify.py. Pure, as all
of core/: queries and URLs are compiled at load, never sent.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator, model_validator

from remediator.core.kinds.base import is_static
from remediator.core.kinds.http import expected_statuses
from remediator.core.policy_fields import Duration, Strict, TemplateField
from remediator.core.render import Template, compile_template


class Threshold(Strict):
    """`above` or `below`, exactly one."""

    above: float | None = None
    """Holds when the value is above this."""
    below: float | None = None
    """Holds when the value is below this."""

    @model_validator(mode="after")
    def _one(self) -> Threshold:
        if (self.above is None) == (self.below is None):
            raise ValueError("set exactly one of above or below")
        return self


class PrometheusCondition(Threshold):
    query: TemplateField
    """PromQL (a template: label values are escaped for PromQL strings)."""
    window: Duration = Field(alias="for")
    """Every sample of a range query over this long must hold."""
    min_rate: TemplateField | None = None
    """A PromQL guard that must also hold (e.g. enough traffic for a rate to mean something)."""
    step: Duration | None = None
    """The range query's step; none: about 20 samples per `for`."""

    @field_validator("window")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("for must be longer than zero")
        return value


class ConditionSpec(Strict):
    prometheus: PrometheusCondition
    """A Prometheus query re-checked by the daemon before acting; not met:
    `condition_not_met`."""


class PrometheusVerify(Threshold):
    query: TemplateField
    """PromQL that must cross back (above/below) within `verify.within`."""


class HttpVerify(Strict):
    """`verify.http`: a health URL (a template over the alert) polled until it answers
    `expect_status` (and, if set, a body containing `contains`)."""

    url: Template
    """The health URL (a template), polled until it answers as expected."""
    expect_status: str = "2xx"
    """Statuses that count as healthy: `200`, `2xx`, `200,204`."""
    contains: str | None = None
    """A substring the body must contain too."""

    @field_validator("url", mode="before")
    @classmethod
    def _compile(cls, value: object) -> Template:
        if not isinstance(value, str):
            raise ValueError("expected a URL string (a template)")  # noqa: TRY004
        if "${" in value:
            raise ValueError("verify.http.url takes no ${secret:...}: the audit shows it")
        template = compile_template(value)
        if not is_static(template) or value.startswith(("http://", "https://")):
            return template
        raise ValueError("verify.http.url must be an http:// or https:// URL")

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, value: str) -> str:
        expected_statuses(value)
        return value


class VerifySpec(Strict):
    within: Duration = timedelta(minutes=2)
    """How long the action has to be verified (the action type's own check, and these);
    else `failed` and the policy's circuit breaker trips."""
    prometheus: PrometheusVerify | None = None
    """A query that must cross back within `within`."""
    http: HttpVerify | None = None
    """A health URL that must answer within `within`."""

    @field_validator("within")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("within must be longer than zero")
        return value
