"""Durations and rates as policies and config spell them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remediator.core.durations import (
    MAX_ACTION_TIMEOUT,
    MAX_DURATION,
    Rate,
    format_duration,
    parse_duration,
    parse_rate,
    parse_timeout,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10s", timedelta(seconds=10)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("250ms", timedelta(milliseconds=250)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        (" 15m ", timedelta(minutes=15)),
        ("0s", timedelta(0)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "10", "5 minutes", "1.5h", "30m1h", "-5m", "m", "1x"])
def test_invalid_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3/1h", Rate(3, timedelta(hours=1))),
        ("30/1h", Rate(30, timedelta(hours=1))),
        ("0/5m", Rate(0, timedelta(minutes=5))),
        (" 10 / 10m ", Rate(10, timedelta(minutes=10))),
    ],
)
def test_rates(text: str, expected: Rate) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["3", "3/", "/1h", "x/1h", "3/0s", "3/1 hour", "-1/1h"])
def test_invalid_rates(text: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        parse_rate(text)


@given(st.integers(min_value=0, max_value=10**9))
def test_format_round_trips(ms: int) -> None:
    delta = timedelta(milliseconds=ms)
    assert parse_duration(format_duration(delta)) == delta


def test_rate_prints_as_written() -> None:
    assert str(parse_rate("3/1h")) == "3/1h"


@pytest.mark.parametrize(
    "text", ["99999999999999999999w", "3651d", "1" * 5000 + "s", "9" * 30 + "ms"]
)
def test_absurd_durations_are_refused_not_overflowed(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_ten_years_is_the_longest_duration() -> None:
    assert parse_duration("3650d") == MAX_DURATION


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1ms", timedelta(milliseconds=1)),
        ("10s", timedelta(seconds=10)),
        ("10m", timedelta(minutes=10)),
    ],
)
def test_timeouts(text: str, expected: timedelta) -> None:
    assert parse_timeout(text) == expected


@pytest.mark.parametrize("text", ["0s", "0ms", "10m1ms", "1h", "1w"])
def test_timeouts_are_bounded(text: str) -> None:
    with pytest.raises(ValueError, match=r"longer than 0s and at most 10m \(MAX_ACTION_TIMEOUT\)"):
        parse_timeout(text)
    assert timedelta(minutes=10) == MAX_ACTION_TIMEOUT
