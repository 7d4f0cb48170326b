"""Judging Prometheus answers: only clear evidence over the whole window is "met"."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from remediator.checks.prometheus import (
    MAX_SAMPLES,
    MAX_SERIES,
    default_step,
    judge_instant,
    judge_present,
    judge_range,
)

WINDOW, STEP = timedelta(seconds=10), timedelta(seconds=2)  # 6 samples cover the window


def matrix(*series: list[str]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": {}, "values": [[1000 + 2 * i, v] for i, v in enumerate(values)]}
                for values in series
            ],
        },
    }


@pytest.mark.parametrize(
    ("body", "met", "reason"),
    [
        (matrix(["0.3"] * 6), True, "all 6 samples over 10s are > 0.1"),
        (matrix(["0.3"] * 5 + ["0.05"]), False, "sample 0.05 at 1010 is not > 0.1"),  # a dip
        (matrix(["0.05"] * 3 + ["0.3"] * 3), False, "sample 0.05 at 1000"),  # only the last part
        (matrix(["0.3"] * 4), False, "too few samples to cover 10s: 4 of 6"),  # started recently
        (matrix(["0.3"] * 3 + ["NaN"] + ["0.3"] * 2), False, "NaN sample at 1006"),
        (matrix(), False, "no data: the query returned no series"),
        (matrix(["0.3"] * 6, ["0.02"] * 6), False, "sample 0.02"),  # every series must cross
        (matrix(["0.1"] * 6), False, "is not > 0.1"),  # strictly above
        (
            {"status": "error", "errorType": "bad_data", "error": "parse error"},
            False,
            "query error: bad_data: parse error",
        ),
    ],
)
def test_judge_range(body: dict[str, Any], met: bool, reason: str) -> None:
    verdict = judge_range(body, above=0.1, below=None, window=WINDOW, step=STEP)
    assert verdict.ok is met
    assert reason in verdict.reason


def test_judge_range_below() -> None:
    assert judge_range(matrix(["0.01"] * 6), above=None, below=0.05, window=WINDOW, step=STEP).ok
    assert not judge_range(
        matrix(["0.01"] * 5 + ["0.2"]), above=None, below=0.05, window=WINDOW, step=STEP
    ).ok


def vector(*values: str) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": {}, "value": [1000, v]} for v in values],
        },
    }


@pytest.mark.parametrize(
    ("body", "recovered"),
    [
        (vector("0.01"), True),
        (vector("0.2"), False),
        (vector("NaN"), False),
        (vector(), False),
        (vector("0.01", "0.3"), False),
        ({"status": "error", "error": "x"}, False),
    ],
)
def test_judge_instant(body: dict[str, Any], recovered: bool) -> None:
    assert judge_instant(body, above=None, below=0.05).ok is recovered


@pytest.mark.parametrize(
    ("body", "ok"), [(vector("25"), True), (vector(), False), (vector("NaN"), False)]
)
def test_min_rate_needs_a_series(body: dict[str, Any], ok: bool) -> None:
    assert judge_present(body).ok is ok


@pytest.mark.parametrize(
    ("window", "step"),
    [
        (timedelta(minutes=5), timedelta(seconds=15)),
        (timedelta(seconds=4), timedelta(seconds=1)),
        (timedelta(minutes=1), timedelta(seconds=3)),
        (timedelta(hours=1), timedelta(seconds=15)),
    ],
)
def test_default_step_sees_blips(window: timedelta, step: timedelta) -> None:
    assert default_step(window) == step


@pytest.mark.parametrize(
    "body",
    [
        {"status": "success", "data": "nope"},
        {"status": "success", "data": {"result": ["x"]}},
        {"status": "success", "data": {"result": [{"values": [[1, "not a number"]] * 6}]}},
        {"status": "success", "data": {"result": [{"values": [[1]] * 6}]}},
        {"status": "success", "data": {"result": [{"value": None}]}},
    ],
)
def test_an_answer_of_unexpected_shape_is_not_met(body: dict[str, Any]) -> None:
    for verdict in (
        judge_range(body, above=0.1, below=None, window=WINDOW, step=STEP),
        judge_instant(body, above=0.1, below=None),
        judge_present(body),
    ):
        assert not verdict.ok
        assert verdict.reason.startswith(
            ("unexpected answer from Prometheus", "no data", "too few")
        )


def test_more_series_than_are_judged_is_not_met() -> None:
    crowded = matrix(*[["0.3"] * 6 for _ in range(MAX_SERIES + 1)])
    verdict = judge_range(crowded, above=0.1, below=None, window=WINDOW, step=STEP)
    assert not verdict.ok
    assert verdict.reason.startswith(f"too much to judge: {MAX_SERIES + 1} series")
    wide = vector(*["0.01"] * (MAX_SERIES + 1))
    assert "too much to judge" in judge_instant(wide, above=None, below=0.05).reason
    assert "too much to judge" in judge_present(wide).reason


def test_more_samples_than_are_judged_is_not_met() -> None:
    per_series = MAX_SAMPLES // 10 + 1
    long = matrix(*[["0.3"] * per_series for _ in range(10)])
    verdict = judge_range(long, above=0.1, below=None, window=STEP * (per_series - 1), step=STEP)
    assert not verdict.ok
    assert verdict.reason.startswith(f"too much to judge: 10 series, {per_series * 10} samples")
