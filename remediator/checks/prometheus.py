"""Prometheus conditions ("error rate above 10% for 5 minutes") and recovery checks.

`PrometheusChecker` only queries; judging its answers is pure and lives in
prometheus_answers.py (`judge_range`, `judge_instant`). Anything but clear evidence (empty,
NaN, gaps, errors, Prometheus down) is "not met": the daemon never acts blind.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_fixed
from yarl import URL

from remediator.checks.prometheus_answers import (
    MAX_SAMPLES,
    MAX_SERIES,
    Verdict,
    _error,
    default_step,
    judge_instant,
    judge_present,
    judge_range,
)
from remediator.core.durations import format_duration
from remediator.log import redact

# Importers (conditions, attempt, http, the tests) take the judging from here, as before.
__all__ = [
    "MAX_RESPONSE_BYTES",
    "MAX_SAMPLES",
    "MAX_SERIES",
    "PrometheusChecker",
    "Unavailable",
    "Verdict",
    "check_condition",
    "default_step",
    "judge_instant",
    "judge_present",
    "judge_range",
    "wait_recovered",
]

# What one answer may cost: 8 MiB of JSON is some 400k samples, more than the judging takes
# (prometheus_answers.MAX_SAMPLES), so a bigger answer is a query that selects far too much
# (or not Prometheus), never evidence.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
_THREAD_JSON_BYTES = 256 * 1024  # parse bigger answers off the event loop


class Unavailable(Exception):  # noqa: N818  # a state of Prometheus, named as the outcome says
    """Prometheus could not be queried (down, timeout, 5xx, an answer too large)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(redact(message))  # an aiohttp error may quote a URL or a header
        self.retryable = retryable


class PrometheusChecker:
    """Queries one Prometheus. A URL's `user:password@` becomes basic auth and is never
    shown: `url` (and every error message) is the URL without its userinfo."""

    def __init__(
        self, url: str, *, timeout: float = 5.0, attempts: int = 3, wait: float = 0.5
    ) -> None:
        parsed = URL(url)
        self._headers: dict[str, str] = {}
        if parsed.user is not None or parsed.password is not None:
            # Built by hand: aiohttp.BasicAuth is deprecated, and its successor is newer
            # than the aiohttp versions this package supports. UTF-8, as RFC 7617 advises.
            pair = f"{parsed.user or ''}:{parsed.password or ''}".encode()
            self._headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        self.url = str(parsed.with_user(None)).rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._attempts = attempts
        self._wait = wait
        self._session: aiohttp.ClientSession | None = None

    async def _get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, Unavailable) and exc.retryable),
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
            # Redirects are not followed: the credentials are for this URL only.
            async with self._session.post(
                f"{self.url}{path}",
                data=dict(params),
                headers=self._headers,
                allow_redirects=False,
            ) as resp:
                if resp.status >= 500 or resp.status == 429:
                    raise Unavailable(f"{self.url} answered HTTP {resp.status}")
                if 300 <= resp.status < 400:
                    where = resp.headers.get("Location", "?")
                    raise Unavailable(f"{self.url} redirects to {where}", retryable=False)
                raw = await self._read(resp)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"{self.url}: {type(exc).__name__}: {exc}") from None
        try:
            big = len(raw) > _THREAD_JSON_BYTES
            body = await asyncio.to_thread(json.loads, raw) if big else json.loads(raw)
        except (ValueError, RecursionError):
            raise Unavailable(f"{self.url}{path} answered HTTP {resp.status}, not JSON") from None
        if not isinstance(body, dict):
            raise Unavailable(f"{self.url}{path} answered JSON that is not an object")
        return body

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        """The body, or Unavailable once it is larger than MAX_RESPONSE_BYTES (decoded)."""
        too_large = Unavailable(
            f"{self.url}: response larger than {MAX_RESPONSE_BYTES // (1024 * 1024)} MiB "
            "(does the query select far too many series?)",
            retryable=False,
        )
        if (resp.content_length or 0) > MAX_RESPONSE_BYTES:
            raise too_large
        chunks, size = [], 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

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
