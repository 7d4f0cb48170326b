"""Prometheus conditions ("error rate above 10% for 5 minutes") and recovery checks.

Judging samples is pure (`judge_range`, `judge_instant`); `PrometheusChecker` only queries.
Anything but clear evidence (empty, NaN, gaps, errors, Prometheus down) is "not met": the
daemon never acts blind.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from remediator.core.durations import format_duration


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str
    samples: int = 0
    last: float | None = None


class Unavailable(Exception):  # noqa: N818  # a state of Prometheus, named as the outcome says
    """Prometheus could not be queried (down, timeout, 5xx)."""


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


def judge_range(
    body: Mapping[str, Any],
    *,
    above: float | None,
    below: float | None,
    window: timedelta,
    step: timedelta,
) -> Verdict:
    """Met only if every sample of every series crosses the bound over the whole window."""
    if (problem := _error(body)) is not None:
        return Verdict(False, problem)
    series = body.get("data", {}).get("result") or []
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


def judge_instant(body: Mapping[str, Any], *, above: float | None, below: float | None) -> Verdict:
    """For recovery and min_rate: every series' current value crosses the bound."""
    if (problem := _error(body)) is not None:
        return Verdict(False, problem)
    series = body.get("data", {}).get("result") or []
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


def judge_present(body: Mapping[str, Any]) -> Verdict:
    """min_rate: a filtering query (`... > 1`) holds when it returns a non-NaN series."""
    if (problem := _error(body)) is not None:
        return Verdict(False, problem)
    series = body.get("data", {}).get("result") or []
    values = [float(s["value"][1]) for s in series]
    if not values or any(math.isnan(v) for v in values):
        return Verdict(False, "min_rate not reached (the guard query returned nothing)")
    return Verdict(True, "min_rate reached", len(values), values[-1])


def default_step(window: timedelta) -> timedelta:
    """Fine enough to see a blip: about 20 samples per window, between 1s and 15s."""
    return max(timedelta(seconds=1), min(window / 20, timedelta(seconds=15)))


class PrometheusChecker:
    def __init__(
        self, url: str, *, timeout: float = 5.0, attempts: int = 3, wait: float = 0.5
    ) -> None:
        self._base = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._attempts = attempts
        self._wait = wait
        self._session: aiohttp.ClientSession | None = None

    async def _get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(Unavailable),
            stop=stop_after_attempt(self._attempts),
            wait=wait_fixed(self._wait),
            reraise=True,
        ):
            with attempt:
                return await self._once(path, params)
        raise Unavailable("no attempt made")  # pragma: no cover

    async def _once(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        assert self._session is not None  # noqa: S101  # set by _get
        try:
            async with self._session.post(f"{self._base}{path}", data=dict(params)) as resp:
                if resp.status >= 500 or resp.status == 429:
                    raise Unavailable(f"{self._base} answered HTTP {resp.status}")
                body: dict[str, Any] = await resp.json(content_type=None)
                return body
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise Unavailable(f"{self._base}: {type(exc).__name__}: {exc}") from None

    async def range(
        self, query: str, end: datetime, window: timedelta, step: timedelta
    ) -> dict[str, Any]:
        start = end - window
        return await self._get(
            "/api/v1/query_range",
            {
                "query": query,
                "start": f"{start.timestamp():.3f}",
                "end": f"{end.timestamp():.3f}",
                "step": f"{step.total_seconds():g}s",
            },
        )

    async def instant(self, query: str) -> dict[str, Any]:
        return await self._get("/api/v1/query", {"query": query})

    async def probe(self) -> str | None:
        try:
            body = await self.instant("vector(1)")
        except Unavailable as exc:
            return str(exc)
        return _error(body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def check_condition(
    checker: PrometheusChecker,
    query: str,
    *,
    above: float | None,
    below: float | None,
    window: timedelta,
    step: timedelta,
    min_rate: str | None,
    now: datetime,
) -> Verdict:
    """The policy's condition as of `now`; every failure is a reason, never an exception."""
    try:
        if min_rate is not None:
            guard = judge_present(await checker.instant(min_rate))
            if not guard.ok:
                return guard
        body = await checker.range(query, now, window, step)
    except Unavailable as exc:
        return Verdict(False, f"prometheus unavailable: {exc}")
    return judge_range(body, above=above, below=below, window=window, step=step)


async def wait_recovered(
    checker: PrometheusChecker,
    query: str,
    *,
    above: float | None,
    below: float | None,
    within: timedelta,
    poll: float = 1.0,
) -> Verdict:
    """Poll until the query crosses back (`below: 0.10` after an error-rate rollback)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within.total_seconds()
    last = Verdict(False, "not checked yet")
    while True:
        try:
            last = judge_instant(await checker.instant(query), above=above, below=below)
        except Unavailable as exc:
            last = Verdict(False, f"prometheus unavailable: {exc}")
        if last.ok:
            return last
        if loop.time() >= deadline:
            return Verdict(False, f"not recovered within {format_duration(within)}: {last.reason}")
        await asyncio.sleep(min(poll, max(deadline - loop.time(), 0.05)))
