"""Sandboxed Jinja2 templates for policy params: compiled and name-checked at load.

Templates see exactly `labels`, `annotations`, `alert` and `policy`; anything else is a
load error, and a label missing at run time is a RenderError (never an empty target).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from remediator.errors import RenderError

TEMPLATE_NAMES = frozenset({"labels", "annotations", "alert", "policy"})

# Immutable sandbox: templates may read alert data but never call mutating methods on it.
_ENV = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False
)


@dataclass(frozen=True, slots=True)
class Template:
    source: str
    _compiled: jinja2.Template

    def render(self, context: Mapping[str, Any]) -> str:
        try:
            return self._compiled.render(context)
        except jinja2.UndefinedError as exc:
            raise RenderError(f"template {self.source!r}: {exc.message}") from None
        except Exception as exc:  # noqa: BLE001  # sandbox violations, type errors in filters...
            raise RenderError(f"template {self.source!r}: {type(exc).__name__}: {exc}") from None


def compile_template(source: str) -> Template:
    """Parse and name-check a template. ValueError names the problem."""
    try:
        ast = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"template does not parse: {exc.message} (line {exc.lineno})") from None
    unknown = sorted(meta.find_undeclared_variables(ast) - TEMPLATE_NAMES)
    if unknown:
        allowed = ", ".join(sorted(TEMPLATE_NAMES))
        raise ValueError(f"template names {', '.join(unknown)}; templates may only use {allowed}")
    return Template(source, _ENV.from_string(ast))


def compile_expression(source: str) -> Template:
    """A bare Jinja2 expression (approval `when:`) compiled as `{{ (EXPR) and 'true' or '' }}`."""
    return compile_template(f"{{{{ 'true' if ({source}) else '' }}}}")


def render_context(
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    alert: Mapping[str, object],
    policy_name: str,
) -> dict[str, Any]:
    return {
        "labels": dict(labels),
        "annotations": dict(annotations),
        "alert": dict(alert),
        "policy": {"name": policy_name},
    }
