"""docs/reference.md, generated from the models: every config key and policy field with its
type, default and meaning (a field's docstring), and each action type's params (its kind's
`params_doc`). `make reference` (python -m remediator.reference > docs/reference.md) writes
it; a test fails when the file differs from what this module generates.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from remediator.config import Config
from remediator.core.durations import Rate, format_duration
from remediator.core.kinds import KINDS
from remediator.core.matchers import Matcher
from remediator.core.policy import Policy
from remediator.core.promql import QueryTemplate
from remediator.core.render import Template
from remediator.fielddocs import field_doc

_NAMES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    timedelta: "duration",
    Rate: "rate",
    SecretStr: "secret",
    Matcher: "matcher",
    Template: "template",
    QueryTemplate: "PromQL template",
}


def type_name(annotation: Any) -> str:
    """How a field's type reads in the reference (`list of strings`, `duration`, ...)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_name(args[0])
    if origin in (Union, types.UnionType):
        shown = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(shown)
    if origin is Literal:
        return " | ".join(f"`{value}`" for value in args)
    if origin is tuple:
        return f"list of {type_name(args[0])}s"
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        return f"mapping of name to {type_name(args[1])}" if args else "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _duration(value: timedelta) -> str:
    """Whole days as days (`30d`, as the SPEC writes retention), else the usual spelling."""
    if value and value % timedelta(days=1) == timedelta(0):
        return f"{value.days}d"
    return format_duration(value)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if isinstance(value, BaseModel):
        return ""  # a section: its keys follow
    if isinstance(value, timedelta):
        return f"`{_duration(value)}`"
    if isinstance(value, Rate):
        return f'`"{value}"`'
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value)}`"


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    """The models a field's type holds (a section, a union member, a list's items)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):
        yield from _models(arg)


def rows(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    """(key, type, default, meaning) of every field, depth first; a model met twice (a
    ladder step's action) is described once, where it is first met."""
    seen: dict[type[BaseModel], str] = {}

    def walk(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str, str, str]]:
        for name, field in model.model_fields.items():
            if field.exclude:
                continue
            key = f"{prefix}{field.alias or name}"
            meaning = " ".join((field.description or field_doc(model, name)).split())
            nested = list(_models(field.annotation))
            if get_origin(field.annotation) is tuple and nested:
                key += "[]"
            kind = type_name(field.annotation)
            for sub in nested:
                if sub in seen:  # its fields are listed under the key it was first met at
                    kind = kind.replace("mapping", f"mapping (as `{seen[sub]}`)", 1)
            yield key, kind, _default(field), meaning
            for sub in nested:
                if sub not in seen:
                    seen[sub] = key
                    yield from walk(sub, f"{key}.")

    return walk(model, prefix)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a bare pipe would end the cell


def _table(header: tuple[str, ...], lines: Iterator[tuple[str, ...]]) -> list[str]:
    out = [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
    out.extend(f"| {' | '.join(_cell(c) for c in cells)} |" for cells in lines)
    return out


def _config_rows() -> Iterator[tuple[str, ...]]:
    for key, kind, default, meaning in rows(Config):
        yield f"`{key}`", kind, default, meaning


def _policy_rows() -> Iterator[tuple[str, ...]]:
    for key, kind, default, meaning in rows(Policy):
        yield f"`{key}`", kind, default, meaning


def _param_rows(type_: str) -> Iterator[tuple[str, ...]]:
    kind = KINDS[type_]
    for name, doc in sorted(kind.params_doc.items()):
        required = "yes" if name in kind.required else ""
        yield f"`{name}`", required, doc


def render() -> str:
    lines = [
        "# Reference",
        "",
        "<!-- Generated by `make reference` (python -m remediator.reference) from the models",
        "     in remediator/config*.py, remediator/core/policy*.py and remediator/core/kinds/;",
        "     tests/unit/test_reference.py fails when this file is out of date. -->",
        "",
        "Types: a *duration* is `30s`, `5m`, `1h30m`, `250ms`, `30d`; a *rate* is `N/duration`",
        "(`3/1h`); a *template* is sandboxed Jinja2 over `labels`, `annotations`, `alert` and",
        "`policy`; a *secret* is never logged or shown. `key[]` is a list of mappings.",
        "",
        "## Daemon config (`remediator.yaml`)",
        "",
        "Every key has a default; unknown keys are errors. `${VAR}` and `${VAR:-default}` in a",
        "value are replaced from the environment. Any secret key `KEY` (and `state`) may be",
        "given as `KEY_file`, a file to read it from, relative to the config file. `serve`",
        "refuses an unset variable or an unreadable file; `check` and `simulate` note it and go",
        "on. `deploy/remediator.yaml` lists every key with its default.",
        "",
        *_table(("key", "type", "default", "meaning"), _config_rows()),
        "",
        "## Policy (`policies/*.yaml`, one per YAML document)",
        "",
        "`remediator schema` prints the same as a JSON Schema for editors.",
        "",
        *_table(("field", "type", "default", "meaning"), _policy_rows()),
        "",
        "## Action params",
        "",
        "Each value is a template unless said otherwise; `remediator check` validates them.",
    ]
    for type_ in sorted(KINDS):
        scoped = "" if KINDS[type_].scoped else " It needs no `allow_targets`."
        lines += ["", f"### `{type_}`", ""]
        if scoped:
            lines += [scoped.strip(), ""]
        lines += _table(("param", "required", "meaning"), _param_rows(type_))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
