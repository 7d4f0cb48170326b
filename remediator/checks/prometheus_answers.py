"""Judging Prometheus answers: the Verdict and the pure checks of a query's samples.

Apart from prometheus.py's querying so that judging needs no network, no session and no
event loop, and a unit test feeds it hand-made answers. Anything but clear evidence (empty,
NaN, gaps, errors, too much) is "not met": the daemon never acts blind.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ParamSpec

from remediator.core.durations import format_duration

P = ParamSpec("P")
# A condition judges a few series: judging more series or samples than this would stall
# the event loop, and is a query that selects far too much, never evidence.
MAX_SERIES = 1_000
MAX_SAMPLES = 200_000


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str
    samples: int = 0
    last: float | None = None


def _never_raises(judge: Callable[P, Verdict]) -> Callable[P, Verdict]:
    """An answer of an unexpected shape (a proxy's page, a changed API) is "not met"."""

    @functools.wraps(judge)
    def judged(*args: P.args, **kwargs: P.kwargs) -> Verdict:
        try:
            return judge(*args, **kwargs)
        except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
            return Verdict(False, f"unexpected answer from Prometheus: {type(exc).__name__}")

    return judged


def _crosses(value: float, above: float | None, below: float | None) -> bool:
    if above is not None:
        return value > above
    return below is not None and value < below


def _bound(above: float | None, below: float | None) -> str:
    return f"> {above}" if above is not None else f"< {below}"


def _error(body: Mapping[str, Any]) -> str | None:
    if body.get("status") != "success":
        return f"query error: {body.get('errorType', '?')}: {body.get('error', 'unknown')}"
    return None


def _series(body: Mapping[str, Any], values: str = "") -> list[Any] | Verdict:
    """The answer's series, or the Verdict that ends judging: an error, or too much."""
    if (problem := _error(body)) is not None:
        return Verdict(False, problem)
    series: list[Any] = body.get("data", {}).get("result") or []
    samples = sum(len(one.get(values) or []) for one in series) if values else len(series)
    if len(series) > MAX_SERIES or samples > MAX_SAMPLES:
        return Verdict(
            False,
            f"too much to judge: {len(series)} series, {samples} samples (at most "
            f"{MAX_SERIES} series and {MAX_SAMPLES} samples are)",
        )
    return series


@_never_raises
def judge_range(
    body: Mapping[str, Any],
    *,
    above: float | None,
    below: float | None,
    window: timedelta,
    step: timedelta,
) -> Verdict:
    """Met only if every sample of every series crosses the bound over the whole window."""
    if isinstance(series := _series(body, "values"), Verdict):
        return series
    if not series:
        return Verdict(False, "no data: the query returned no series")
    expected = int(window / step) + 1
    seen, last = 0, None
    for one in series:
        values = one.get("values") or []
        if len(values) < expected:
            return Verdict(
                False,
                f"too few samples to cover {format_duration(window)}: {len(values)} of {expected}",
                seen,
            )
        for stamp, raw in values:
            value = float(raw)
            seen += 1
            last = value
            if math.isnan(value):
                return Verdict(False, f"NaN sample at {stamp} (no traffic?)", seen, value)
            if not _crosses(value, above, below):
                return Verdict(
                    False,
                    f"sample {value:.4g} at {stamp} is not {_bound(above, below)}",
                    seen,
                    value,
                )
    bound = _bound(above, below)
    return Verdict(
        True, f"all {seen} samples over {format_duration(window)} are {bound}", seen, last
    )


@_never_raises
def judge_instant(body: Mapping[str, Any], *, above: float | None, below: float | None) -> Verdict:
    """For recovery and min_rate: every series' current value crosses the bound."""
    if isinstance(series := _series(body), Verdict):
        return series
    if not series:
        return Verdict(False, "no data: the query returned no series")
    for one in series:
        value = float(one["value"][1])
        if math.isnan(value) or not _crosses(value, above, below):
            return Verdict(False, f"value {value:.4g} is not {_bound(above, below)}", 1, value)
    return Verdict(
        True,
        f"value {float(series[-1]['value'][1]):.4g} is {_bound(above, below)}",
        len(series),
        float(series[-1]["value"][1]),
    )


@_never_raises
def judge_present(body: Mapping[str, Any]) -> Verdict:
    """min_rate: a filtering query (`... > 1`) holds when it returns a non-NaN series."""
    if isinstance(series := _series(body), Verdict):
        return series
    values = [float(s["value"][1]) for s in series]
    if not values or any(math.isnan(v) for v in values):
        return Verdict(False, "min_rate not reached (the guard query returned nothing)")
    return Verdict(True, "min_rate reached", len(values), values[-1])


def default_step(window: timedelta) -> timedelta:
    """Fine enough to see a blip: about 20 samples per window, between 1s and 15s."""
    return max(timedelta(seconds=1), min(window / 20, timedelta(seconds=15)))
