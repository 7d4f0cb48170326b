"""PromQL query templates: every expression's output is escaped for where it stands.

A label value is data, never query structure. At load, the template's literal text is
scanned with PromQL's own quoting rules, so each `{{ ... }}` is known to stand inside a
"double-quoted" or 'single-quoted' string literal or outside any string; its output is
then escaped the way Go's strconv.Quote escapes (PromQL string literals are Go's), or,
outside a string, must be one plain token such as `5m`, `0.1` or `checkout`. An expression
inside a `raw` string, a comment or right after a backslash cannot be made safe: a load
error. This module must not render anything but PromQL queries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from remediator.core.render import parse_checked
from remediator.errors import RenderError

# Go's strconv.Quote short escapes. A quote is escaped only inside a string opened with it:
# PromQL's lexer rejects `\'` in "..." and `\"` in '...' ("unknown escape sequence").
_SHORT = {
    "\\": "\\\\",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}
# Outside a string an output must be one token that cannot start an operator, a string, a
# comment or a selector: a number, a duration or a name fragment.
_TOKEN = re.compile(r"[A-Za-z0-9_:.]+")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "atan2", "bool", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "offset", "start", "end"}
)
_FILTERS = {'"': "promql_double_quoted", "'": "promql_single_quoted", "": "promql_token"}
# Statements that only choose what is output. Macros, call/filter blocks and `{% set %}`
# blocks capture output and re-emit it elsewhere, where it would be escaped twice or
# land in another context, so they are refused.
_STATEMENTS = (nodes.Output, nodes.If, nodes.For, nodes.Assign, nodes.With)


def escape_string(value: str, quote: str = '"') -> str:
    """`value` as the inside of a PromQL string literal opened with `quote`."""
    if value.isprintable() and quote not in value and "\\" not in value and "\ufffd" not in value:
        return value  # the common case: nothing to escape
    out: list[str] = []
    for char in value:
        code = ord(char)
        if char == quote:
            out.append("\\" + char)
        elif char in _SHORT:
            out.append(_SHORT[char])
        elif 0xD800 <= code <= 0xDFFF or char == "\ufffd":
            # A lone surrogate (from a JSON `\ud800`) becomes U+FFFD as in Go's JSON decoder;
            # and PromQL's lexer reads a literal U+FFFD as invalid UTF-8, so it is escaped.
            out.append("\\ufffd")
        elif char.isprintable():
            out.append(char)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def _token(value: Any) -> str:
    text = str(value)
    if _TOKEN.fullmatch(text) is None or text.lower() in _KEYWORDS:
        raise RenderError(
            f"value {text[:80]!r} may not stand outside a PromQL string literal: only a "
            'number, a duration or a name is allowed there (quote it: "{{ ... }}")'
        )
    return text


_ENV = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False
)
_ENV.filters.update(
    {
        _FILTERS['"']: lambda value: escape_string(str(value), '"'),
        _FILTERS["'"]: lambda value: escape_string(str(value), "'"),
        _FILTERS[""]: _token,
    }
)

# PromQL lexer state between two pieces of literal text: the open quote ("" outside any
# string; "#" inside a comment) and whether the last character was an escaping backslash.
_State = tuple[str, bool]


def _advance(state: _State, text: str) -> _State:
    """The PromQL lexer state after `text` (strings, `raw` strings, comments, escapes)."""
    quote, escaped = state
    for char in text:
        if escaped:
            escaped = False
        elif quote == "":
            if char in "\"'`#":
                quote = char
        elif quote == "#":
            quote = "" if char in "\r\n" else quote
        elif quote == "`":
            quote = "" if char == "`" else quote
        elif char == "\\":
            escaped = True
        elif char == quote:
            quote = ""
    return quote, escaped


def _context(state: _State) -> str:
    quote, escaped = state
    if escaped:
        raise ValueError("a {{ ... }} right after a backslash would join its escape")
    if quote == "`":
        raise ValueError(
            "a {{ ... }} inside a `raw string` cannot be escaped: use a double-quoted string"
        )
    if quote == "#":
        raise ValueError("a {{ ... }} inside a PromQL # comment could end the comment")
    return quote


def _contexts(source: str) -> list[str]:
    """The quoting context of each `{{ ... }}` of `source`, in the order they appear."""
    state: _State = ("", False)
    found: list[str] = []
    at_tags: set[_State] = set()
    for token in _ENV.lexer.tokenize(source):
        if token.type == "data":
            state = _advance(state, token.value)
        elif token.type == "variable_begin":
            found.append(_context(state))
        elif token.type == "block_begin":
            at_tags.add(state)
    # Control tags may repeat or skip the text between them; only when the lexer state is
    # the same at every tag is each stretch of text read from the state it renders in.
    if len(at_tags) > 1:
        raise ValueError(
            "{% ... %} tags stand both inside and outside a PromQL string: keep each "
            "if/for block wholly inside one string or wholly outside strings"
        )
    return found


@dataclass(frozen=True, slots=True)
class QueryTemplate:
    """A compiled query template; `render` has the interface of `render.Template`."""

    source: str
    _compiled: jinja2.Template

    def render(self, context: Mapping[str, Any]) -> str:
        try:
            return self._compiled.render(context)
        except RenderError as exc:
            raise RenderError(f"query {self.source!r}: {exc}") from None
        except jinja2.UndefinedError as exc:
            raise RenderError(f"query {self.source!r}: {exc.message}") from None
        except Exception as exc:  # noqa: BLE001  # sandbox violations, type errors in filters...
            raise RenderError(f"query {self.source!r}: {type(exc).__name__}: {exc}") from None


def compile_query(source: str) -> QueryTemplate:
    """Parse, name-check and context-check a query template. ValueError names the problem."""
    ast = parse_checked(_ENV, source)
    try:
        contexts = _contexts(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"template does not parse: {exc.message} (line {exc.lineno})") from None
    for statement in ast.find_all(nodes.Stmt):
        if not isinstance(statement, _STATEMENTS):
            name = type(statement).__name__
            raise ValueError(  # noqa: TRY004  # pydantic reports ValueError as a policy problem
                f"a query template may use if, for, with and set, not {name}"
            )
    _escape_outputs(ast, contexts)
    return QueryTemplate(source, _ENV.from_string(ast))


def _escape_outputs(ast: nodes.Template, contexts: list[str]) -> None:
    """Wrap each output expression in the filter of its context (both in text order)."""
    outputs = list(ast.find_all(nodes.Output))
    exprs = sum(not isinstance(n, nodes.TemplateData) for o in outputs for n in o.nodes)
    if exprs != len(contexts):  # a construct whose output order is not its text order
        raise ValueError("this template's structure is not supported in a PromQL query")
    pending = iter(contexts)
    for output in outputs:
        output.nodes = [
            node
            if isinstance(node, nodes.TemplateData)
            else nodes.Filter(node, _FILTERS[next(pending)], [], [], None, None, lineno=node.lineno)
            for node in output.nodes
        ]
    ast.set_environment(_ENV)
