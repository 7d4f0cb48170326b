"""Alertmanager matcher syntax and semantics, table-driven and property-based."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remediator.core.matchers import matches_all, parse_matcher

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
