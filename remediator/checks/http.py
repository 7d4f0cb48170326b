"""`verify.http`: a health URL polled after an action until its status (and, if asked, a
substring of its body) holds, within `verify.within`. Judging one answer is pure
(`judge_answer`); `wait_healthy` only polls.

A GET with no redirects followed (a 3xx is a status like any other, success only if
`expect_status` names it), no cookies kept, at most 64 KiB of body read for `contains`;
each try is bounded by what is left of the window (at most 10 s), so a health endpoint that
hangs costs one try, not the whole window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import aiohttp

from remediator.checks.prometheus import Verdict
from remediator.core.durations import format_duration
from remediator.core.kinds.http import expected_statuses
from remediator.core.verify import HttpCheck

BODY_READ = 64 * 1024
TRY_TIMEOUT = 10.0


def judge_answer(check: HttpCheck, status: int, body: str) -> Verdict:
    """One answer against the check: the status in `expect_status`, and `contains` in the
    body when set."""
    shown = f"GET {check.url}: {status}"
    if status not in expected_statuses(check.expect_status):
        return Verdict(False, f"{shown}, expected {check.expect_status}")
    if check.contains is not None and check.contains not in body:
        return Verdict(False, f"{shown}, body does not contain {check.contains!r}")
    suffix = f" containing {check.contains!r}" if check.contains is not None else ""
    return Verdict(True, f"{shown}{suffix}")


async def _try(session: aiohttp.ClientSession, check: HttpCheck, budget: float) -> Verdict:
    try:
        async with session.get(
            check.url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=budget)
        ) as answer:
            body = ""
            if check.contains is not None:
                raw = await answer.content.read(BODY_READ)
                body = raw.decode(answer.charset or "utf-8", "replace")
            return judge_answer(check, answer.status, body)
    except TimeoutError:
        return Verdict(False, f"GET {check.url}: no answer within {budget:g}s")
    except aiohttp.ClientError as exc:
        return Verdict(False, f"GET {check.url}: {type(exc).__name__}: {exc}")


# One try of a check within a budget of seconds; the default GETs the URL. `remediator test`
# answers here from the test file instead, so nothing outside is touched.
Probe = Callable[[HttpCheck, float], Awaitable[Verdict]]


async def wait_healthy(
    check: HttpCheck, within: timedelta, *, poll: float = 1.0, probe: Probe | None = None
) -> Verdict:
    """Poll until the check holds or `within` is over; the last answer says why not."""
    if probe is not None:
        return await _poll(check, within, poll, probe)
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        return await _poll(check, within, poll, lambda c, budget: _try(session, c, budget))


async def _poll(check: HttpCheck, within: timedelta, poll: float, probe: Probe) -> Verdict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within.total_seconds()
    while True:
        left = deadline - loop.time()
        last = await probe(check, max(min(TRY_TIMEOUT, left), 0.5))
        if last.ok:
            return last
        if loop.time() >= deadline:
            window = format_duration(within)
            return Verdict(False, f"not healthy within {window}: {last.reason}")
        await asyncio.sleep(min(poll, max(deadline - loop.time(), 0.05)))
