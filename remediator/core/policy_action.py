"""A policy's `match` and `action` sections: which alerts it takes and what it does with them.

An action's params are compiled here, each by its kind (core/kinds/), so every template,
secret reference and target scope a policy names is checked when it loads, never when it
runs. Pure, as all of core/.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from remediator.core.kinds import KINDS, PLANNED, ActionKind
from remediator.core.matchers import Matcher, parse_matcher
from remediator.core.policy_fields import Strict
from remediator.core.render import Template, compile_param


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
