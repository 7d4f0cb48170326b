"""Carries out committed actions in the background: slots, retries of transient errors,
verification, the result record, and a bounded drain at shutdown.

Nothing here decides whether to act; the pipeline did, durably, before anything is submitted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from remediator import log
from remediator.actions.base import ActionRequest, ActionResult, Executor
from remediator.checks.prometheus import PrometheusChecker, wait_recovered
from remediator.core.job import VERIFY_BOUND, VERIFY_QUERY
from remediator.core.outcomes import Outcome
from remediator.errors import ActionError, RemediatorError
from remediator.metrics import Metrics
from remediator.store.base import Interrupted, Store

_log = log.get("remediator.runner")


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ActionError) and exc.retryable


class Runner:
    def __init__(
        self,
        store: Store,
        executors: Mapping[str, Executor],
        metrics: Metrics,
        clock: Callable[[], datetime],
        *,
        max_concurrent: int,
        on_unverified: Callable[[str, str], Awaitable[None]],
        on_finished: Callable[[ActionRequest, str, str, float], Awaitable[None]] | None = None,
        checker: PrometheusChecker | None = None,
        retry_attempts: int = 3,
        retry_wait: float = 0.5,
    ) -> None:
        self._store = store
        self._executors = executors
        self._metrics = metrics
        self._clock = clock
        self._slots = asyncio.Semaphore(max_concurrent)
        self._on_unverified = on_unverified
        self._on_finished = on_finished
        self._checker = checker
        self._attempts = retry_attempts
        self._wait = retry_wait
        self._tasks: dict[int, tuple[ActionRequest, asyncio.Task[None]]] = {}

    @property
    def running(self) -> int:
        return len(self._tasks)

    def holding(self) -> list[int]:
        """The actions this process has taken on, queued or running: their leases to renew."""
        return list(self._tasks)

    def submit(self, request: ActionRequest) -> None:
        task = asyncio.create_task(self._run(request), name=f"action-{request.action_id}")
        self._tasks[request.action_id] = (request, task)
        task.add_done_callback(lambda _: self._tasks.pop(request.action_id, None))

    async def _run(self, request: ActionRequest) -> None:
        bound = _log.bind(
            action_id=request.action_id,
            policy=request.policy,
            action=request.type,
            target=request.target,
        )
        async with self._slots:  # max_concurrent_actions: later actions queue here
            started = time.monotonic()
            try:
                starting = await self._store.start_action(request.action_id, self._clock())
            except RemediatorError as exc:
                # Not started: left pending, so its lease runs out and it is recorded
                # interrupted; never run without the record saying it runs.
                bound.error("action.start_failed", error=str(exc))
                return
            if not starting:
                bound.warning(
                    "action.not_started",
                    reason="no longer pending (its lease ran out and it was recorded interrupted)",
                )
                return
            bound.info("action.started")
            outcome, reason, verified = await self._attempt(request)
            duration = time.monotonic() - started
            self._metrics.action_duration.labels(request.type).observe(duration)
            self._metrics.actions.labels(request.policy, request.type, outcome).inc()
            self._metrics.decisions.labels(request.policy, outcome).inc()
            try:
                await self._store.finish_action(request.action_id, outcome, reason, self._clock())
            except RemediatorError as exc:
                # Left `running`: once its lease runs out it is recorded interrupted, never lost.
                bound.error("action.record_failed", error=str(exc))
            done = {"outcome": outcome, "reason": reason, "duration_seconds": round(duration, 3)}
            if outcome == Outcome.EXECUTED:
                bound.info("action.executed", **done)
            else:
                bound.warning("action.failed", **done)
            if not verified:
                await self._on_unverified(request.policy, reason)
            if self._on_finished is not None:
                await self._on_finished(request, outcome, reason, duration)

    async def _attempt(self, request: ActionRequest) -> tuple[Outcome, str, bool]:
        params = dict(request.params)
        query, bound = params.pop(VERIFY_QUERY, None), params.pop(VERIFY_BOUND, None)
        outcome, reason, verified = await self._execute(replace(request, params=params))
        if outcome != Outcome.EXECUTED or query is None or bound is None:
            return outcome, reason, verified
        if self._checker is None:
            return Outcome.FAILED, f"{reason}; not verified: no Prometheus configured", False
        side, _, value = bound.partition(" ")
        threshold = float(value)
        recovered = await wait_recovered(
            self._checker,
            query,
            above=threshold if side == "above" else None,
            below=threshold if side == "below" else None,
            within=request.verify_within,
        )
        if not recovered.ok:
            return Outcome.FAILED, f"{reason}; not recovered: {recovered.reason}", False
        return outcome, f"{reason}; recovered: {recovered.reason}", True

    async def _execute(self, request: ActionRequest) -> tuple[Outcome, str, bool]:
        executor = self._executors.get(request.type)
        if executor is None:
            return Outcome.FAILED, f"no executor configured for {request.type}", True
        try:
            result: ActionResult | None = None
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_retryable),
                stop=stop_after_attempt(self._attempts),
                wait=wait_exponential(multiplier=self._wait, max=10),
                reraise=True,
            ):
                with attempt:
                    result = await executor.execute(request)
        except ActionError as exc:
            return Outcome.FAILED, exc.reason, True
        except Exception as exc:  # noqa: BLE001  # an executor bug must end as `failed`, not vanish
            _log.exception("action.crashed", action_id=request.action_id)
            return Outcome.FAILED, f"executor error: {type(exc).__name__}: {exc}", True
        assert result is not None  # noqa: S101  # AsyncRetrying ran at least once or raised
        if result.ok:
            return Outcome.EXECUTED, result.detail, True
        return Outcome.FAILED, result.detail, result.verified

    async def drain(self, within: timedelta) -> None:
        """Let running actions finish `within` the bound; then cancel and record the rest."""
        if not self._tasks:
            return
        running = dict(self._tasks)
        _log.info("runner.draining", actions=len(running), timeout_seconds=within.total_seconds())
        _, still = await asyncio.wait(
            [task for _, task in running.values()], timeout=within.total_seconds()
        )
        if not still:
            return
        for task in still:
            task.cancel()
        await asyncio.wait(still)
        reason = "the daemon stopped (drain_timeout) while this action ran; not re-run"
        found = await self._store.interrupt_actions(list(running), self._clock(), reason)
        self.record_interrupted(found)
        _log.warning("runner.drain_timeout", interrupted=[item.action_id for item in found])

    def record_interrupted(self, found: Sequence[Interrupted]) -> None:
        """Metrics and log for actions the store recorded interrupted, whoever held them."""
        for item in found:
            self._metrics.actions.labels(item.policy, item.type, Outcome.INTERRUPTED).inc()
            self._metrics.decisions.labels(item.policy, Outcome.INTERRUPTED).inc()
            _log.warning(
                "action.interrupted",
                action_id=item.action_id,
                policy=item.policy,
                action=item.type,
                reason=item.reason,
            )


def request_for(
    action_id: int,
    policy: str,
    action: str,
    target: str,
    params: Mapping[str, str],
    verify_within: timedelta,
) -> ActionRequest:
    return ActionRequest(action_id, policy, action, target, dict(params), verify_within)
