"""PromQL query templates: label values are escaped for where they stand, so no value can
change a query's structure. Checked with a port of PromQL's own string lexer."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remediator.core.policy import parse_policies
from remediator.core.promql import compile_query, escape_string
from remediator.core.render import render_context
from remediator.errors import RenderError

INJECTION = 'checkout"} or vector(1) or x{a="'


def ctx(**labels: str) -> dict[str, object]:
    return render_context(labels, {"runbook": "r"}, {"status": "firing"}, "p")


# --- a port of Prometheus' lexString/lexEscape (promql/parser/lex.go) and strutil.Unquote --

_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def lex_string(text: str, start: int = 0) -> tuple[str, int]:
    """The PromQL string literal at `text[start]`: (its value, the index after it).
    ValueError where Prometheus' lexer reports an error."""
    quote, i = text[start], start + 1
    out: list[str] = []
    while True:
        if i >= len(text) or text[i] in "\n":
            raise ValueError("unterminated quoted string")
        char = text[i]
        if char == "\ufffd":  # what Go's decoder returns for invalid UTF-8, too
            raise ValueError("invalid UTF-8 rune")
        if char == quote:
            return "".join(out), i + 1
        if char != "\\":
            out.append(char)
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt in _SIMPLE or nxt in ("\\", quote):
            out.append(_SIMPLE.get(nxt, nxt))
            i += 2
        elif nxt and nxt in "xuU01234567":
            digits, base = {"x": (2, 16), "u": (4, 16), "U": (8, 16)}.get(nxt, (3, 8))
            first = i + (1 if base == 8 else 2)
            code = int(text[first : first + digits], base)
            if len(text[first : first + digits]) != digits:
                raise ValueError("escape sequence not terminated")
            if 0xD800 <= code < 0xE000 or code > 0x10FFFF or (nxt in "x01234567" and code > 0x7F):
                # \x and octal make raw bytes; the escaper must never need one above ASCII
                raise ValueError("invalid code point or raw byte")
            out.append(chr(code))
            i = first + digits
        else:
            raise ValueError(f"unknown escape sequence {nxt!r}")


def skeleton(query: str) -> tuple[str, list[str]]:
    """`query` with each string literal replaced by S, and the literals' values."""
    outside: list[str] = []
    values: list[str] = []
    i = 0
    while i < len(query):
        if query[i] in "\"'":
            value, i = lex_string(query, i)
            outside.append("S")
            values.append(value)
        else:
            outside.append(query[i])
            i += 1
    return "".join(outside), values


def as_go_reads_it(value: str) -> str:
    """What the value becomes on the wire: a lone surrogate is U+FFFD (Go's JSON decoder)."""
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)


# --- escaping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "quote", "escaped"),
    [
        ("checkout", '"', "checkout"),
        (INJECTION, '"', 'checkout\\"} or vector(1) or x{a=\\"'),
        ("back\\slash", '"', "back\\\\slash"),
        ("a\nb\rc\td\ve\ff\ag\bh", '"', "a\\nb\\rc\\td\\ve\\ff\\ag\\bh"),
        ("\x00\x1b\x7f", '"', "\\x00\\x1b\\x7f"),  # as Go's strconv.Quote
        ("soft\u00adhyphen\u2028", '"', "soft\\u00adhyphen\\u2028"),
        ("\U000e0001", '"', "\\U000e0001"),
        ("café 漢字 😀", '"', "café 漢字 😀"),  # printable Unicode stays readable
        ("\ud800", '"', "\\ufffd"),  # a lone surrogate from JSON
        ("a\ufffd", '"', "a\\ufffd"),  # PromQL's lexer reads a literal U+FFFD as invalid UTF-8
        ("it's", '"', "it's"),  # `\'` would be an unknown escape inside "..."
        ("it's", "'", "it\\'s"),
        ('say "hi"', "'", 'say "hi"'),
    ],
)
def test_escape_string_like_go_strconv_quote(value: str, quote: str, escaped: str) -> None:
    assert escape_string(value, quote) == escaped


@given(st.text(), st.sampled_from(['"', "'"]))
def test_an_escaped_value_is_exactly_one_string_literal(value: str, quote: str) -> None:
    literal = quote + escape_string(value, quote) + quote
    parsed, end = lex_string(literal + ") or vector(1)")
    assert end == len(literal)
    assert parsed == as_go_reads_it(value)


@given(st.text())
def test_no_label_value_changes_the_query_structure(value: str) -> None:
    template = compile_query(
        "sum(rate(x{a=\"{{ labels.v }}\",b='{{ labels.v }}'}[{{ labels.w }}])) > 0"
    )
    shape, values = skeleton(template.render(ctx(v=value, w="5m")))
    assert shape == "sum(rate(x{a=S,b=S}[5m])) > 0"
    assert values == [as_go_reads_it(value)] * 2


# --- contexts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "labels", "rendered"),
    [
        ('x{d="{{ labels.d }}"}', {"d": INJECTION}, 'x{d="checkout\\"} or vector(1) or x{a=\\""}'),
        ("x{d='{{ labels.d }}'}", {"d": "it's"}, "x{d='it\\'s'}"),
        ('x{d="a\\"{{ labels.d }}"}', {"d": '"'}, 'x{d="a\\"\\""}'),  # after an escaped quote
        ('x{d="#{{ labels.d }}"}', {"d": "\n"}, 'x{d="#\\n"}'),  # a # in a string is no comment
        ('x{d=~"{{ labels.d }}|b"}', {"d": "a.*"}, 'x{d=~"a.*|b"}'),  # regex syntax is data
        ("rate(x[{{ labels.w }}]) > {{ labels.t }}", {"w": "5m", "t": "0.1"}, "rate(x[5m]) > 0.1"),
        ("{{ labels.job }}_requests_total", {"job": "api"}, "api_requests_total"),
        (
            'x{d="{% if labels.d %}{{ labels.d }}{% else %}none{% endif %}"}',
            {"d": '"'},
            'x{d="\\""}',
        ),
        (
            '{% for n in ["a", "b"] %}x{d="{{ labels[n] }}"} {% endfor %}',
            {"a": '"', "b": "`"},
            'x{d="\\""} x{d="`"} ',
        ),
        ('x{d="{{ labels.d | upper }}"}', {"d": 'a"b'}, 'x{d="A\\"B"}'),  # filters run first
        ('x{d="{{ "\\"" }}"}', {}, 'x{d="\\""}'),  # even a constant is escaped
        ('{# "{{ #}x{d="{{ labels.d }}"}', {"d": '"'}, 'x{d="\\""}'),  # Jinja comments vanish
    ],
)
def test_outputs_are_escaped_for_where_they_stand(
    source: str, labels: dict[str, str], rendered: str
) -> None:
    assert compile_query(source).render(ctx(**labels)) == rendered


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("x{d=`{{ labels.d }}`}", "inside a `raw string` cannot be escaped"),
        ("x # {{ labels.d }}", "inside a PromQL # comment"),
        ('x{d="\\{{ labels.d }}"}', "right after a backslash"),
        ('x{d="{% if labels.d %}"}{% endif %}', "tags stand both inside and outside"),
        ("{% macro m() %}x{% endmacro %}{{ m() }}", "not Macro"),
        ("{% set q %}x{% endset %}{{ q }}", "not AssignBlock"),
        ("{% filter upper %}x{% endfilter %}", "not FilterBlock"),
        ('x{d="{{ lables.d }}"}', "template names lables"),
        ('x{d="{{ labels.d "}', "template does not parse"),
        ('x{d="{{ env }}"}', "templates may only use alert, annotations, labels, policy"),
    ],
)
def test_queries_that_cannot_be_made_safe_are_load_errors(source: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        compile_query(source)


@pytest.mark.parametrize(
    "value", [INJECTION, "5m]) or vector(1", "1 or", "or", "AND", "", "a b", "-1", "x{}", '"']
)
def test_a_value_outside_a_string_must_be_one_plain_token(value: str) -> None:
    with pytest.raises(RenderError, match="may not stand outside a PromQL string literal"):
        compile_query("rate(x[{{ labels.w }}])").render(ctx(w=value))


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ('x{d="{{ labels.missing }}"}', "has no attribute 'missing'"),  # StrictUndefined
        ('x{d="{{ labels.d.__class__ }}"}', "__class__"),  # the sandbox
    ],
)
def test_render_errors_name_the_query(source: str, problem: str) -> None:
    with pytest.raises(RenderError) as caught:
        compile_query(source).render(ctx(d="x"))
    assert f"query {source!r}" in str(caught.value) and problem in str(caught.value)


POLICY = """
name: p
match: {matchers: ['alertname="HighErrorRate"']}
condition:
  prometheus:
    query: %s
    above: 0.1
    for: 1m
    min_rate: 'sum(rate(x{d="{{ labels.deployment }}"}[1m])) > 1'
action: {type: notify, params: {text: "{{ labels.deployment }}"}}
verify: {prometheus: {query: %s, below: 0.1}}
"""


def test_policy_query_fields_escape_labels() -> None:
    query = "'x{d=\"{{ labels.deployment }}\"}'"
    [policy], problems = parse_policies(POLICY % (query, query), "p.yaml")
    assert not problems
    assert policy.condition is not None and policy.verify.prometheus is not None
    context = ctx(deployment=INJECTION)
    for template in (
        policy.condition.prometheus.query,
        policy.condition.prometheus.min_rate,
        policy.verify.prometheus.query,
    ):
        assert template is not None
        shape, values = skeleton(template.render(context))
        assert values == [INJECTION] and "vector" not in shape


def test_policy_check_reports_an_unsafe_query_by_field() -> None:
    raw = "'x{d=`{{ labels.deployment }}`}'"
    _, problems = parse_policies(POLICY % (raw, raw), "p.yaml")
    assert sorted(p.split(": ", 3)[2] for p in problems) == [
        "condition.prometheus.query",
        "verify.prometheus.query",
    ]
    assert all("raw string" in p for p in problems)
