"""One action's attempt: its executor run, with retries of requests that were never sent, then
the policy's verify checks (Prometheus, HTTP). Nothing here writes to the store, counts
metrics or holds a slot or a target: the runner records what an attempt returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any, NamedTuple

from structlog.typing import FilteringBoundLogger
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from remediator.actions.base import ActionRequest, ActionResult, Executor
from remediator.checks.http import Probe, wait_healthy
from remediator.checks.prometheus import PrometheusChecker, Verdict, wait_recovered
from remediator.core.outcomes import Outcome
from remediator.core.verify import HttpCheck, PrometheusCheck
from remediator.errors import ActionError, RemediatorError
from remediator.gate import Hold


class Attempted(NamedTuple):
    outcome: str
    reason: str
    verified: bool  # False: evidence the action does not help (trips the breaker)
    reached: bool  # False: certainly never reached its target (starts no cooldown)
    result: Mapping[str, str] = MappingProxyType({})  # the executor's report, kept with it


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ActionError) and exc.retryable


class Execution:
    """Runs an action's executor; before each retry asks `check` (the gate's pause, breaker
    and cooldown) again."""

    def __init__(
        self,
        executors: Mapping[str, Executor],
        check: Callable[[ActionRequest], Awaitable[Hold | None]],
        *,
        attempts: int,
        wait: float,
    ) -> None:
        self._executors = executors
        self._check = check
        self._attempts = attempts
        self._wait = wait

    async def run(self, request: ActionRequest, bound: FilteringBoundLogger) -> Attempted:
        executor = self._executors.get(request.type)
        if executor is None:
            return Attempted(
                Outcome.FAILED, f"no executor configured for {request.type}", True, False
            )
        last: ActionError | None = None
        try:
            result: ActionResult | None = None
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_retryable),
                stop=stop_after_attempt(self._attempts),
                wait=wait_exponential(multiplier=self._wait, max=10),
                reraise=True,
            ):
                if last is not None:  # a retry: the pause or a breaker may have come since
                    stopped = await self._before_retry(request, last)
                    if stopped is not None:
                        return stopped
                with attempt:
                    try:
                        result = await executor.execute(request)
                    except ActionError as exc:
                        last = exc
                        raise
        except ActionError as exc:
            # Only errors that surely did nothing are retried, so the last one says it all.
            return Attempted(Outcome.FAILED, exc.reason, True, exc.reached)
        except Exception as exc:  # noqa: BLE001  # an executor bug must end as `failed`, not vanish
            bound.exception("action.crashed")
            return Attempted(
                Outcome.FAILED, f"executor error: {type(exc).__name__}: {exc}", True, True
            )
        assert result is not None  # noqa: S101  # AsyncRetrying ran at least once or raised
        if result.ok:
            return Attempted(Outcome.EXECUTED, result.detail, True, True, result.facts)
        return Attempted(Outcome.FAILED, result.detail, result.verified, True, result.facts)

    async def _before_retry(self, request: ActionRequest, error: ActionError) -> Attempted | None:
        """Every attempt so far certainly failed to reach the target (only those are retried)."""
        try:
            held = await self._check(request)
        except RemediatorError as exc:
            reason = f"{error.reason}; not retried: cannot check pause and breaker: {exc}"
            return Attempted(Outcome.FAILED, reason, True, False)
        if held is None:
            return None
        outcome, why = held
        return Attempted(
            outcome, f"{why}, before a retry; not retried after: {error.reason}", True, False
        )


async def verify(
    request: ActionRequest,
    done: Attempted,
    *,
    checker: PrometheusChecker | None,
    probe: Probe | None,
    poll: float,
) -> Attempted:
    """The policy's verify checks, side by side within `verify.within`: all must hold.
    Each says its own result in the reason (`recovered: ...`, `healthy: ...`)."""
    plan = request.verify
    waits: list[Coroutine[Any, Any, Verdict]] = []
    if plan.prometheus is not None:
        waits.append(_recovered(checker, plan.prometheus, plan.within))
    if plan.http is not None:
        waits.append(_healthy(plan.http, plan.within, poll, probe))
    verdicts = await asyncio.gather(*waits)
    failed = [v.reason for v in verdicts if not v.ok]
    if failed:
        reason = f"{done.reason}; {'; '.join(failed)}"
        return done._replace(outcome=Outcome.FAILED, reason=reason, verified=False)
    return done._replace(reason=f"{done.reason}; {'; '.join(v.reason for v in verdicts)}")


async def _recovered(
    checker: PrometheusChecker | None, check: PrometheusCheck, within: timedelta
) -> Verdict:
    if checker is None:
        return Verdict(False, "not verified: no Prometheus configured")
    found = await wait_recovered(
        checker, check.query, above=check.above, below=check.below, within=within
    )
    return Verdict(found.ok, f"{'recovered' if found.ok else 'not recovered'}: {found.reason}")


async def _healthy(
    check: HttpCheck, within: timedelta, poll: float, probe: Probe | None
) -> Verdict:
    found = await wait_healthy(check, within, poll=poll, probe=probe)
    return found if not found.ok else Verdict(True, f"healthy: {found.reason}")
