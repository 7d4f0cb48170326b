"""Policy models and their strict validation: matchers, templates, durations and params at load.

Loading is pure (text -> policies or problem lines); reading files lives in policy_files.py.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from remediator.core import yamlstrict
from remediator.core.durations import (
    Rate,
    format_duration,
    parse_duration,
    parse_rate,
)
from remediator.core.kinds import KINDS, PLANNED, ActionKind
from remediator.core.kinds.base import is_static
from remediator.core.kinds.http import expected_statuses
from remediator.core.matchers import Matcher, parse_matcher
from remediator.core.promql import QueryTemplate, compile_query
from remediator.core.render import (
    Template,
    compile_expression,
    compile_param,
    compile_template,
)

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


class MatchSpec(Strict):
    source: Literal["alertmanager", "datadog", "any"] = "any"
    """Which sender's alerts the policy takes."""
    status: Literal["firing", "resolved"] = "firing"
    """Which status it acts on (a resolved alert also cancels its pending approval)."""
    matchers: tuple[Matcher, ...] = ()
    """Alertmanager matchers (`name="v"`, `!=`, `=~`, `!~`; regexes are RE2, anchored); all
    must hold. A missing label matches as the empty string."""

    @field_validator("matchers", mode="before")
    @classmethod
    def _parse(cls, value: object) -> tuple[Matcher, ...]:
        if not isinstance(value, list | tuple):
            raise ValueError('expected a list of matchers such as alertname="X"')  # noqa: TRY004
        parsed = []
        for item in value:
            if not isinstance(item, str):
                raise ValueError(f"matcher {item!r} must be a string")  # noqa: TRY004
            parsed.append(parse_matcher(item))
        return tuple(parsed)


class ActionSpec(Strict):
    type: str
    """The action type (see Action params below)."""
    params: Mapping[str, Template] = Field(default_factory=dict)
    """The type's params; strings are sandboxed Jinja2 templates over `labels`, `annotations`,
    `alert` and `policy`."""
    allow_targets: tuple[str, ...] = ()
    """Globs the rendered target must match, else `out_of_scope` (required for every type but
    `notify`; for `http.request`, URLs)."""

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value in PLANNED:
            raise ValueError(f"action type {value!r} is not available in this version yet")
        if value not in KINDS:
            known = ", ".join(sorted(KINDS))
            raise ValueError(f"unknown action type {value!r}; known: {known}")
        return value

    @field_validator("params", mode="before")
    @classmethod
    def _compile(cls, value: object, info: ValidationInfo) -> dict[str, Template]:
        if not isinstance(value, dict):
            raise ValueError("expected a mapping of param name to value")  # noqa: TRY004
        value = dict(value)
        headers = value.pop("headers", None)
        if isinstance(headers, dict):  # http.request's headers: one templated param each
            value.update({f"header.{name}": v for name, v in headers.items()})
        elif headers is not None:
            raise ValueError("headers must be a mapping of header name to value")
        # Each kind compiles its own params (a notify text is escaped for Slack; the others
        # may carry ${secret:NAME}); an unknown type is reported by `_known_type`.
        kind = KINDS.get(info.data.get("type", ""))
        compile = kind.compile if kind is not None else compile_param
        for name in kind.lists if kind is not None else ():
            items = value.pop(name, None)
            if items is None:
                continue
            if not isinstance(items, list) or not items:
                raise ValueError(f"param {name!r} must be a non-empty list of strings")
            value.update({f"{name}.{i}": item for i, item in enumerate(items)})
        compiled = {}
        for key, raw in value.items():
            if isinstance(raw, dict | list) or raw is None:
                raise ValueError(f"param {key!r} must be a string or number")
            text = str(raw).lower() if isinstance(raw, bool) else str(raw)
            try:
                compiled[str(key)] = compile(text)
            except ValueError as exc:
                raise ValueError(f"param {key!r}: {exc}") from None
        return compiled

    @model_validator(mode="after")
    def _params_fit_type(self) -> ActionSpec:
        self.kind.check(self.params, self.allow_targets)
        return self

    @property
    def kind(self) -> ActionKind:
        """What this action type is: its params, target, scope and executor (core/kinds)."""
        return KINDS[self.type]


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


def _template(value: object) -> QueryTemplate:
    if isinstance(value, QueryTemplate):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a PromQL string (a template)")  # noqa: TRY004
    return _compile_query(value)  # label values are escaped for PromQL (core/promql.py)


TemplateField = Annotated[QueryTemplate, BeforeValidator(_template)]


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
