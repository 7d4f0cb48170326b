"""Alertmanager matcher syntax and semantics, table-driven and property-based."""

from __future__ import annotations

import contextlib
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remediator.core.matchers import matches_all, parse_matcher
from remediator.core.policy import parse_policies

LABELS = {"alertname": "ContainerDown", "severity": "critical", "env": "prod", "empty": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('alertname="ContainerDown"', True),
        ("alertname=ContainerDown", True),  # unquoted values, as amtool accepts
        ('alertname = "ContainerDown"', True),
        ('alertname="containerdown"', False),  # case-sensitive
        ('severity=~"critical|warning"', True),
        ('severity=~"crit"', False),  # anchored: a prefix is not a match
        ('severity=~".*ical"', True),
        ('severity!~"warn.*"', True),
        ('severity!~"crit.*"', False),
        ('env!="dev"', True),
        ('env!="prod"', False),
        ('missing=""', True),  # an absent label matches as the empty string
        ('missing!="x"', True),
        ('missing=~".*"', True),
        ('missing=~".+"', False),
        ('empty=""', True),
        ('"alertname"="ContainerDown"', True),  # quoted label names (UTF-8 matchers)
    ],
)
def test_matcher_semantics(text: str, expected: bool) -> None:
    assert parse_matcher(text).matches(LABELS) is expected


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (r'a="x\"y"', 'x"y'),
        (r'a="back\\slash"', "back\\slash"),
        (r'a="new\nline"', "new\nline"),
        ('a="comma,value"', "comma,value"),
        ('a="主机CPU使用率"', "主机CPU使用率"),
    ],
)
def test_quoted_values_unescape(text: str, value: str) -> None:
    assert parse_matcher(text).value == value


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("alertname", "expected name"),
        ('="x"', "expected name"),
        ('1abc="x"', "expected name"),
        ('a=="x"', "unbalanced quotes"),
        ('a="x', "unbalanced quotes"),
        (r'a="x\q"', "invalid escape"),
        ('a="x"y"', "unescaped quote"),
        ('a=~"("', "invalid regex"),
        ('a>"x"', "expected name"),
    ],
)
def test_invalid_matchers_are_rejected_with_a_reason(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_matcher(text)


def test_regex_dot_does_not_cross_newlines_like_go() -> None:
    assert not parse_matcher('a=~"x.y"').matches({"a": "x\ny"})


def test_all_matchers_must_hold() -> None:
    both = (parse_matcher('alertname="ContainerDown"'), parse_matcher('env="dev"'))
    assert not matches_all(both, LABELS)
    assert matches_all(both[:1], LABELS)
    assert matches_all((), LABELS)


label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,20}", fullmatch=True)
values = st.text(max_size=40)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@given(label_names, values)
def test_any_quoted_value_round_trips_and_matches_itself(name: str, value: str) -> None:
    matcher = parse_matcher(f"{name}={_quote(value)}")
    assert matcher.value == value
    assert matcher.matches({name: value})
    assert parse_matcher(str(matcher)) == matcher


@given(label_names, values, values)
def test_escaped_regex_matches_exactly_the_value(name: str, value: str, suffix: str) -> None:
    matcher = parse_matcher(f"{name}=~{_quote(re.escape(value))}")
    assert matcher.matches({name: value})
    if suffix:
        assert not matcher.matches({name: value + suffix})  # anchored at the end


@given(label_names, values, values)
def test_negative_operators_are_complements(name: str, value: str, actual: str) -> None:
    labels = {name: actual}
    quoted = _quote(value)
    assert parse_matcher(f"{name}={quoted}").matches(labels) != parse_matcher(
        f"{name}!={quoted}"
    ).matches(labels)
    regex = _quote(re.escape(value))
    assert parse_matcher(f"{name}=~{regex}").matches(labels) != parse_matcher(
        f"{name}!~{regex}"
    ).matches(labels)


@given(st.text(max_size=30))
def test_parser_never_crashes_on_arbitrary_text(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_matcher(text)


# --- RE2: Alertmanager's regex engine, linear in the label value ------------------------


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        (r'n=~"\\d+"', "123", True),
        (r'n=~"\\d+"', "١٢٣", False),  # \d is ASCII in Go's RE2 (Python's re: True)
        (r'n=~"\\w+"', "café", False),  # \w too
        (r'n=~"\\pL+"', "café", True),  # Unicode classes are spelled out
        (r'n=~"(?P<x>a)b"', "ab", True),  # named groups are accepted in both spellings
        (r'n=~"(?<x>a)b"', "ab", True),
        (r'n=~"x$"', "x\n", False),  # $ is the end of text, not "before a final newline"
        (r'n=~"(?i)WEB-.*"', "web-1", True),
        (r'n=~"(?s)a.b"', "a\nb", True),
        (r'n=~"a|b"', "ab", False),  # anchored around the whole alternation
        (r'n=~"\\Qa.b\\E"', "a.b", True),
        (r'n=~"\\Qa.b\\E"', "axb", False),
        (r'n=~".*-.*-prod"', "web-eu-prod", True),
        (r'n=~"."', "\ud800", True),  # a lone surrogate from JSON counts as one U+FFFD
        (r'n=~"\\x{FFFD}"', "\udfff", True),
        ('n!~".*-.*-prod"', "web-eu-dev", True),
    ],
)
def test_re2_semantics(text: str, value: str, expected: bool) -> None:
    assert parse_matcher(text).matches({"n": value}) is expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (r'n=~"(a)\\1"', "invalid escape sequence: \\1"),  # backreference
        (r'n=~"(?=a)a"', "invalid perl operator: (?="),  # lookahead
        (r'n=~"(?<=a)b"', "invalid perl operator: (?<"),  # lookbehind
        (r'n=~"a++"', "bad repetition operator"),  # possessive
        (r'n=~"a\\Z"', "invalid escape sequence: \\Z"),  # Python's \Z is RE2's \z
        (r'n=~"\\C"', "\\C (any byte) is not supported"),  # C++ RE2 only, not Go
        (r'n=~"a)|(b"', "unexpected )"),  # would splice into ^(?:a)|(b)$ in Alertmanager
        (r'n=~"a{1001}"', "invalid repetition size"),
    ],
)
def test_regexes_re2_cannot_compile_are_rejected_naming_the_matcher(
    text: str, problem: str
) -> None:
    with pytest.raises(ValueError, match="invalid regex in matcher") as caught:
        parse_matcher(text)
    assert problem in str(caught.value)
    assert repr(text) in str(caught.value)  # names the matcher as written


@pytest.mark.parametrize(
    ("pattern", "uses"),
    [(r"\C", True), (r"\\C", False), (r"\\\C", True), (r"\Q\C\E", False), (r"\Qa\E\C", True)],
)
def test_any_byte_escape_is_found_only_where_it_is_one(pattern: str, uses: bool) -> None:
    problem = None
    try:
        parse_matcher(f"n=~{_quote(pattern)}")
    except ValueError as exc:
        problem = str(exc)
    assert (problem is not None and "\\C (any byte)" in problem) is uses


def test_policy_check_names_the_matcher_re2_rejects() -> None:
    text = "name: p\nmatch: {matchers: ['a=~\"(?!x)y\"']}\naction: {type: notify, params: {text: hi}}\n"
    policies, problems = parse_policies(text, "p.yaml")
    assert not policies
    [problem] = problems
    assert problem.startswith("p.yaml: policy p: match.matchers: invalid regex in matcher")
    assert "(?!x)y" in problem


@pytest.mark.parametrize("size", [20_000, 1_000_000])
def test_matching_is_linear_in_the_label_value(size: int) -> None:
    # Python's re takes 1.6 s on the 20k value and hours on the 1M one.
    matcher = parse_matcher('x=~".*-.*-prod"')
    value = "a-" * (size // 2)
    started = time.perf_counter()
    assert not matcher.matches({"x": value})
    assert time.perf_counter() - started < 0.5


# Regexes that mean the same in Python's re and RE2: ASCII atoms, classes, groups and the
# greedy/lazy quantifiers; values over the same small alphabet (no newlines).
_ATOMS = st.sampled_from(["a", "b", "c", "-", ".", "[ab]", "[^a]", "[a-c]", r"\.", "(?:a|b)"])


def _regexes() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(["*", "+", "?", "*?", "{1,2}"])).map(
                lambda parts: f"(?:{parts[0]}){parts[1]}"
            ),
            st.lists(inner, min_size=2, max_size=3).map("".join),
            st.lists(inner, min_size=2, max_size=3).map("|".join),
            inner.map(lambda r: f"({r})"),
        )

    return st.recursive(_ATOMS, extend, max_leaves=6)


@given(_regexes(), st.text(alphabet="abc-.x", max_size=12))
def test_re2_agrees_with_python_re_where_both_engines_mean_the_same(regex: str, value: str) -> None:
    expected = re.fullmatch(regex, value) is not None
    assert parse_matcher(f"n=~{_quote(regex)}").matches({"n": value}) is expected
