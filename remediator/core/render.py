"""Sandboxed Jinja2 templates for policy params: compiled and name-checked at load.

Templates see exactly `labels`, `annotations`, `alert` and `policy`; anything else is a
load error, and a label missing at run time is a RenderError (never an empty target).
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from remediator.core.mrkdwn import inline_mrkdwn
from remediator.errors import RenderError

TEMPLATE_NAMES = frozenset({"labels", "annotations", "alert", "policy"})
# `${secret:NAME}` in an action param: filled in by the executor, only when it acts.
SECRET_REF = re.compile(r"\$\{secret:([A-Za-z0-9_]+)\}")
# While an action param renders, each reference the policy itself wrote stands as this
# marker. Its per-process random nonce is never shown, so no alert value can forge one; any
# `${` left in the output came from the alert and is refused (see `compile_param`).
_NONCE = secrets.token_hex(16)
_MARK = re.compile(rf"\x1f{_NONCE}:([A-Za-z0-9_]+)\x1f")

# Immutable sandbox: templates may read alert data but never call mutating methods on it.
_ENV = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False
)
# For Slack text (notify): every `{{ }}` output is escaped for mrkdwn, the policy's own text
# is not, so a policy may write `<!here>` while an alert value never can.
_MRKDWN_ENV = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=False,
    finalize=lambda value: inline_mrkdwn(str(value)),
)
# Compiling a template (parse, name check, Jinja2 code generation, Python `compile`) takes
# over half a millisecond, and policy sets repeat the same few texts (`{{ labels.container }}`
# in thousands of policies): each text compiles once per kind. Sharing is safe because a
# Template is immutable and a compiled jinja2.Template keeps no state between renders. A
# text that fails raises each time (lru_cache keeps only results). Bounded: a process that
# parses many distinct texts (tests, repeated `check`) keeps only the most recent ones.
_CACHE_SIZE = 16_384


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template; `secret_names` are the `${secret:NAME}` its policy text wrote."""

    source: str
    _compiled: jinja2.Template
    secret_names: frozenset[str] = frozenset()
    _guarded: bool = False

    @property
    def escapes(self) -> bool:
        """True when rendering transforms each value (Slack text: escaped for mrkdwn)."""
        return self._compiled.environment.finalize is not None

    def render(self, context: Mapping[str, Any]) -> str:
        try:
            text = self._compiled.render(context)
        except jinja2.UndefinedError as exc:
            raise RenderError(f"template {self.source!r}: {exc.message}") from None
        except Exception as exc:  # noqa: BLE001  # sandbox violations, type errors in filters...
            raise RenderError(f"template {self.source!r}: {type(exc).__name__}: {exc}") from None
        return self.finish(text)

    def finish(self, text: str) -> str:
        """What render does to the template's raw output (the secret-reference guard); for
        the render shortcut (core/fastrender.py), so both give the same text or error."""
        return self._restore(text) if self._guarded else text

    def _restore(self, text: str) -> str:
        # The whole output is checked, not each expression: labels a="$" and b="{secret:x}"
        # rendered side by side must not become a reference either.
        if "${" in text:
            raise RenderError(
                f"template {self.source!r}: a value from the alert contains '${{' "
                "(only the policy's own text may reference ${secret:NAME})"
            )
        text = _MARK.sub(lambda m: f"${{secret:{m[1]}}}", text)
        if _NONCE in text.lower():  # a filter (upper, urlencode...) changed a reference
            raise RenderError(
                f"template {self.source!r}: a filter changed a ${{secret:NAME}} reference; "
                "write the reference outside {{ }}"
            )
        return text


def parse_checked(env: jinja2.Environment, source: str) -> nodes.Template:
    """Parse a template and check it names only TEMPLATE_NAMES. ValueError names the problem."""
    try:
        ast = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"template does not parse: {exc.message} (line {exc.lineno})") from None
    unknown = sorted(meta.find_undeclared_variables(ast) - TEMPLATE_NAMES)
    if unknown:
        allowed = ", ".join(sorted(TEMPLATE_NAMES))
        raise ValueError(f"template names {', '.join(unknown)}; templates may only use {allowed}")
    return ast


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compile_template(source: str) -> Template:
    """Parse and name-check a template. ValueError names the problem."""
    return Template(source, _ENV.from_string(parse_checked(_ENV, source)))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compile_param(source: str) -> Template:
    """An action param: a template whose `${secret:NAME}` references are the policy's own.

    A `${` that is not such a reference is refused here, so every `${` in a rendered param
    is either a reference the policy wrote or a value from the alert (a RenderError).
    """
    checked = compile_template(source)  # errors name the source as written
    names = frozenset(m[1] for m in SECRET_REF.finditer(source))
    marked = SECRET_REF.sub(lambda m: f"\x1f{_NONCE}:{m[1]}\x1f", source)
    if "${" in marked:
        raise ValueError(
            "'${' may only start a ${secret:NAME} reference (NAME: letters, digits, _)"
        )
    if not names:
        return Template(source, checked._compiled, frozenset(), _guarded=True)
    return Template(source, _ENV.from_string(_ENV.parse(marked)), names, _guarded=True)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compile_mrkdwn(source: str) -> Template:
    """A Slack text (notify): like compile_template, with every expression's output escaped."""
    checked = compile_template(source)  # the same parse and name checks, the same errors
    return Template(checked.source, _MRKDWN_ENV.from_string(_MRKDWN_ENV.parse(source)))


@functools.lru_cache(maxsize=_CACHE_SIZE)
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
