"""The policy test file format (SPEC "Policy test files") as strict models. Pure: text in,
a validated file or `FILE: where: message` problems out; reading files is load.py's.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from remediator.core.durations import format_duration, parse_duration
from remediator.core.outcomes import FINAL
from remediator.ingest.datadog import FIRING, RESOLVED

OUTCOMES = sorted(o.value for o in FINAL)
# What an action's stand-in answers (results.actions), default `executed`:
#   executed     done, and its own check passed (containers running, rollout complete)
#   failed       done, but it did not take effect within verify.within: not verified
#   error        the backend refused it at once (an HTTP 500, no such container)
#   unreachable  the connection was refused before anything was sent: retried, then failed
ActionAnswer = Literal["executed", "failed", "error", "unreachable"]
# The fields of a Datadog notification a test may set through `annotations`.
DATADOG_FIELDS = frozenset(
    {"text", "query", "metric", "status", "link", "event_id", "org_id", "alert_type"}
    | {"transition", "scope"}
)
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*\Z")
_UNION_MEMBER = re.compile(r"^(function-|literal\[|list\[|float$|int$|str$|none$|bool$)")


def _offset(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("expected an offset such as 0s, 90s or 5m")  # noqa: TRY004  # pydantic wants ValueError
    return parse_duration(value)


def _strings(value: object) -> object:
    """Label and annotation values are strings: YAML's 5432 or true would not be."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(item, str):
                # pydantic reports a ValueError with its location; a TypeError it would not
                raise ValueError(f"{key}: expected a string; quote it: {str(item)!r}")  # noqa: TRY004
    return value


Offset = Annotated[timedelta, BeforeValidator(_offset)]
Strings = Annotated[dict[str, str], BeforeValidator(_strings)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertEvent(Strict):
    """One webhook of one alert, `at` an offset from the test's start."""

    at: Offset
    source: Literal["alertmanager", "datadog"] = "alertmanager"
    status: Literal["firing", "resolved"] = "firing"
    starts_at: Offset | None = None  # default: when the same label set began firing
    labels: Strings
    annotations: Strings = Field(default_factory=dict)

    @model_validator(mode="after")
    def _datadog(self) -> AlertEvent:
        if self.source != "datadog":
            return self
        if not self.labels.get("alertname"):
            raise ValueError("labels.alertname: a Datadog alert needs its monitor's name")
        for name, value in self.labels.items():
            if name == "alertname":  # the monitor's name, in the title: not a tag
                continue
            if not _LABEL.match(name) or "," in value or value != value.strip():
                raise ValueError(
                    f"labels.{name}: a Datadog tag cannot carry this label (names are letters, "
                    "digits and _; values have no comma and no surrounding spaces)"
                )
        unknown = sorted(set(self.annotations) - DATADOG_FIELDS)
        if unknown:
            raise ValueError(
                f"annotations.{unknown[0]}: not a field of a Datadog notification; "
                f"one of {', '.join(sorted(DATADOG_FIELDS))}"
            )
        transition = self.annotations.get("transition")
        allowed = RESOLVED if self.status == "resolved" else FIRING
        if transition is not None and transition not in allowed:
            raise ValueError(
                f"annotations.transition: {transition!r} is not a {self.status} transition; "
                f"one of {', '.join(allowed)}"
            )
        return self


class ApprovalEvent(Strict):
    """A person's answer to a pending approval of `approve`/`deny` (a policy name)."""

    at: Offset
    approve: str | None = None
    deny: str | None = None
    target: str | None = None  # which of the policy's pending approvals (default: oldest)
    by: str | None = None  # the approver's identity (default: the first allowed one)

    @model_validator(mode="after")
    def _one(self) -> ApprovalEvent:
        if (self.approve is None) == (self.deny is None):
            raise ValueError("give exactly one of approve: POLICY or deny: POLICY")
        return self

    @property
    def policy(self) -> str:
        return self.approve if self.approve is not None else self.deny or ""


class HttpAnswer(Strict):
    """What a verify.http URL answers; with no body, the one the check looks for."""

    status: int = Field(ge=100, le=599)
    body: str | None = None


def _http(value: object) -> object:
    return {"status": value} if isinstance(value, int) and not isinstance(value, bool) else value


HttpValue = Annotated[HttpAnswer, BeforeValidator(_http)]
# One entry per evaluation (a condition) or per verification (of one action, or one rung of
# a ladder); the last entry is repeated, and none given is no data. An entry is one value
# held all along the condition's `for` window or the verification's `within`, or a list of
# values spread evenly over it ([0.3, 0.01]: recovered halfway through `within`).
Entry = float | list[float] | None


class PrometheusAnswers(Strict):
    condition: list[Entry] = Field(default_factory=list)
    min_rate: list[float | None] = Field(default_factory=list)  # default: traffic (1.0)
    verify: list[Entry] = Field(default_factory=list)


class Results(Strict):
    """What the world answers a test: Prometheus and verify.http by policy name, actions by
    policy name or action type (a policy's entry wins; a list: one per action)."""

    prometheus: dict[str, PrometheusAnswers] = Field(default_factory=dict)
    actions: dict[str, ActionAnswer | list[ActionAnswer]] = Field(default_factory=dict)
    http: dict[str, list[HttpValue | list[HttpValue]]] = Field(default_factory=dict)


class Expected(Strict):
    at: Offset
    policy: str
    outcome: str
    target: str | None = None
    step: int | None = None
    repeats: int | None = None
    reason: str | None = None  # a part of the reason

    @field_validator("outcome")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in OUTCOMES:
            raise ValueError(f"unknown outcome {value!r}; one of {', '.join(OUTCOMES)}")
        return value


class Case(Strict):
    name: str = Field(min_length=1)
    alerts: list[AlertEvent] = Field(default_factory=list)
    approvals: list[ApprovalEvent] = Field(default_factory=list)
    results: Results = Results()
    expect: list[Expected]


class TestFile(Strict):
    policies: list[str] = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict)
    tests: list[Case] = Field(min_length=1)

    @field_validator("config")
    @classmethod
    def _own_store(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "state" in value:
            raise ValueError("state: a test always uses its own in-memory store")
        if "policies" in value:
            raise ValueError("policies: list them in `policies` at the top of the file")
        return value

    @field_validator("tests")
    @classmethod
    def _unique(cls, value: list[Case]) -> list[Case]:
        seen: set[str] = set()
        for case in value:
            if case.name in seen:
                raise ValueError(f"two tests are named {case.name!r}")
            seen.add(case.name)
        return value


def where(loc: tuple[int | str, ...], raw: object) -> str:
    """A pydantic location as the file reads: `test 'NAME': alerts[1].at`."""
    head, items = "", list(loc)
    if len(items) >= 2 and items[0] == "tests" and isinstance(items[1], int):
        head, items = _test_label(raw, items[1]), items[2:]
    parts: list[str] = []
    for part in items:
        if isinstance(part, int):
            if parts:
                parts[-1] += f"[{part}]"
        elif not _UNION_MEMBER.match(part):  # a union member's name is no field of the file
            parts.append(part)
    field = ".".join(parts)
    if head and field:
        return f"{head}: {field}"
    return head or field or "(file)"


def _test_label(raw: object, index: int) -> str:
    tests = raw.get("tests") if isinstance(raw, dict) else None
    if isinstance(tests, list) and index < len(tests) and isinstance(tests[index], dict):
        name = tests[index].get("name")
        if isinstance(name, str) and name:
            return f"test {name!r}"
    return f"tests[{index}]"


def offset(value: timedelta) -> str:
    return format_duration(value)
