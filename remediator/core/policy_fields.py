"""The base model and the field types the policy sections are written in (durations, rates,
PromQL templates, approval expressions), with `guards`, the section built of them alone.

They sit below the section modules (policy_action.py, policy_verify.py, policy.py) so each
imports them without importing the others; config.py's models take Duration and RateSpec
too. Pure, as all of core/: text in, values or ValueError out.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
)

from remediator.core.durations import (
    Rate,
    format_duration,
    parse_duration,
    parse_rate,
)
from remediator.core.promql import QueryTemplate, compile_query
from remediator.core.render import Template, compile_expression

# Thousands of policies repeat a few texts (`10m`, `3/1h`, one PromQL query): each is
# parsed once. The results (timedelta, Rate, QueryTemplate) are immutable, so sharing them is
# safe; failures are not cached and raise each time. (An action's `timeout`: core/kinds.)
_parse_duration = functools.lru_cache(maxsize=1024)(parse_duration)
_parse_rate = functools.lru_cache(maxsize=1024)(parse_rate)
_compile_query = functools.lru_cache(maxsize=16_384)(compile_query)


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a duration string such as 30s, 5m or 1h")  # noqa: TRY004  # pydantic wants ValueError
    return _parse_duration(value)


def _rate(value: object) -> Rate:
    if isinstance(value, Rate):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a rate such as 3/1h")  # noqa: TRY004  # pydantic wants ValueError
    return _parse_rate(value)


Duration = Annotated[
    timedelta, BeforeValidator(_duration), PlainSerializer(format_duration, return_type=str)
]
RateSpec = Annotated[Rate, BeforeValidator(_rate), PlainSerializer(str, return_type=str)]


class Strict(BaseModel):
    # A field's docstring is its description in docs/reference.md and `remediator schema`,
    # read by remediator/fielddocs.py when they are made, not at every start.
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


def _template(value: object) -> QueryTemplate:
    if isinstance(value, QueryTemplate):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a PromQL string (a template)")  # noqa: TRY004
    return _compile_query(value)  # label values are escaped for PromQL (core/promql.py)


TemplateField = Annotated[QueryTemplate, BeforeValidator(_template)]


class ApprovalWhen(Strict):
    when: Template
    """A Jinja2 expression over the alert: approval is asked when it is true."""

    @field_validator("when", mode="before")
    @classmethod
    def _compile(cls, value: object) -> Template:
        if not isinstance(value, str):
            raise ValueError("expected a Jinja2 expression string")  # noqa: TRY004
        return compile_expression(value)


class Guards(Strict):
    cooldown: Duration = timedelta(0)
    """No second action on the same target within this long after one (per policy and
    target); 0: none."""
    rate_limit: RateSpec | None = None
    """At most N actions of this policy in the window (`N/duration`); none: no limit."""
    approval: Literal["never", "always"] | ApprovalWhen = "never"
    """`never`, `always`, or `{when: EXPRESSION}`: ask a person before acting."""
    approvers: tuple[str, ...] | None = None
    """Who may approve: Slack user IDs and `api:NAME`; none: `slack.approvers`."""
    approvals_required: int = Field(default=1, ge=1, le=10)
    """Distinct approvers needed (2: the two-person rule)."""
    dry_run: bool = False
    """true: this policy decides and records, never executes."""
