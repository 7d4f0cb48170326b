"""Carries out committed actions in the background: one action per target at a time, slots,
the pause/breaker/cooldown check when an action starts and before each retry, retries of
transient errors, verification, the result record, and a bounded drain at shutdown.

The pipeline decided to act, durably, before anything is submitted; what is asked again
here (through `admit`) is only whether that still holds now that the action's turn came.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from structlog.typing import FilteringBoundLogger
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from remediator import log
from remediator.actions.base import ActionRequest, ActionResult, Executor
from remediator.checks.http import Probe, wait_healthy
from remediator.checks.prometheus import PrometheusChecker, Verdict, wait_recovered
from remediator.core.approval import Approval
from remediator.core.ladder import Rung
from remediator.core.outcomes import Outcome
from remediator.core.verify import HttpCheck, PrometheusCheck, VerifyPlan
from remediator.errors import ActionError, RemediatorError
from remediator.metrics import Metrics
from remediator.sink import OutcomeSink
from remediator.store.base import Interrupted, Store
from remediator.targets import LastDone, TargetLocks, target_key

_log = log.get("remediator.runner")

# (outcome, reason) that holds an action back: paused, tripped or cooldown.
Hold = tuple[str, str]
# Asked when an action's turn comes (slot and target held) and before each retry; the second
# argument is when the last action of the same (policy, target) that ran here ended, or None.
# Returns the Hold that stops it, or None to go. Raises RemediatorError when it cannot tell.
Admit = Callable[[ActionRequest, datetime | None], Awaitable[Hold | None]]

NOT_STARTED = "the daemon stopped before this action started; not re-run"
_HELD = frozenset({Outcome.PAUSED, Outcome.TRIPPED, Outcome.COOLDOWN})


class _Attempted(NamedTuple):
    outcome: str
    reason: str
    verified: bool  # False: evidence the action does not help (trips the breaker)
    reached: bool  # False: certainly never reached its target (starts no cooldown)
    result: Mapping[str, str] = MappingProxyType({})  # the executor's report, kept with it


def _exhausted(request: ActionRequest, done: _Attempted) -> bool:
    """A ladder's last rung was a notify, reached (each rung before it failed) and sent."""
    return (
        (request.step or 1) > 1
        and not request.ladder
        and request.type == "notify"
        and done.outcome == Outcome.EXECUTED
    )


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ActionError) and exc.retryable


class RungApprovals(Protocol):
    """Asks people for a ladder's next rung that carries its own approval
    (approvals.Approvals)."""

    def rung_request(
        self, policy: str, rung: Rung, now: datetime
    ) -> tuple[Approval, dict[str, object]]:
        """The request for the rung (decision_id still 0) and what its message shows."""
        ...

    def requested(self, request: Approval) -> None:
        """The request was committed: count and announce it."""
        ...


class Runner:
    # Set once the approvals part exists (it is built with this runner): who a rung with its
    # own approval asks. None: such a rung stops the ladder, never runs unasked.
    approvals: RungApprovals | None = None
    # How verify.http tries its URL; None: a GET. `remediator test` answers from its file.
    http_probe: Probe | None = None

    def __init__(
        self,
        store: Store,
        executors: Mapping[str, Executor],
        metrics: Metrics,
        clock: Callable[[], datetime],
        *,
        max_concurrent: int,
        on_unverified: Callable[[str, str], Awaitable[None]],
        on_finished: Callable[[ActionRequest, str, str, float], Coroutine[Any, Any, None]]
        | None = None,
        admit: Admit | None = None,
        on_held: Callable[[ActionRequest], None] | None = None,
        checker: PrometheusChecker | None = None,
        sink: OutcomeSink | None = None,
        retry_attempts: int = 3,
        retry_wait: float = 0.5,
        http_poll: float = 1.0,
    ) -> None:
        self._store = store
        self._executors = executors
        self._metrics = metrics
        self._sink = sink or OutcomeSink(metrics)
        self._clock = clock
        self._slots = asyncio.Semaphore(max_concurrent)
        self._targets = TargetLocks()
        self._done = LastDone()
        self._on_unverified = on_unverified
        self._on_finished = on_finished
        self._admit = admit
        self._on_held = on_held
        self.checker = checker  # set once by a reload that first needs Prometheus
        self._http_poll = http_poll  # verify.http's interval between tries
        self._attempts = retry_attempts
        self._wait = retry_wait
        self._tasks: dict[int, tuple[ActionRequest, asyncio.Task[None]]] = {}
        # Past the queue (slot and target held): a drain lets these finish or decide for
        # themselves; the others it cancels and records interrupted.
        self._claimed: set[int] = set()
        self._draining = False
        self._reports: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        return len(self._tasks)

    def holding(self) -> list[int]:
        """The actions this process has taken on, queued or running: their leases to renew."""
        return list(self._tasks)

    async def wait_idle(self) -> None:
        """Until every action taken on (and each ladder rung it escalated to) has finished."""
        while self._tasks:
            await asyncio.wait([task for _, task in self._tasks.values()])

    def submit(self, request: ActionRequest) -> None:
        task = asyncio.create_task(self._run(request), name=f"action-{request.action_id}")
        self._tasks[request.action_id] = (request, task)
        task.add_done_callback(lambda _: self._forget(request.action_id))

    def _forget(self, action_id: int) -> None:
        self._tasks.pop(action_id, None)
        self._claimed.discard(action_id)

    async def _run(self, request: ActionRequest) -> None:
        bound = _log.bind(
            action_id=request.action_id,
            policy=request.policy,
            action=request.type,
            target=request.target,
        )
        if self._draining:  # submitted after the drain began (an approval click)
            await self._not_run(request, bound, NOT_STARTED)
            return
        # One action per target: the later one waits here, holding no slot, through the
        # earlier one's execution and verification, then has its guards checked again.
        key = target_key(request.type, request.target)
        if self._targets.busy(key):
            bound.info("action.waiting", reason="another action on this target is under way")
        async with self._targets.hold(key), contextlib.AsyncExitStack() as held:
            try:  # and across replicas sharing the store
                await held.enter_async_context(self._store.target_lease("/".join(key)))
            except RemediatorError as exc:  # left pending: its lease runs out, never run
                bound.error("action.start_failed", error=str(exc))
                return
            await self._turn(request, bound)

    async def _turn(self, request: ActionRequest, bound: FilteringBoundLogger) -> None:
        """With its target held: a slot for the start and the execution, then verification
        without the slot, the record, the breaker; the Slack post is spawned, never awaited."""
        async with self._slots:  # max_concurrent_actions: later actions queue here
            self._claimed.add(request.action_id)  # no await since the slot: drain sees it
            if not await self._start(request, bound):
                return
            started = time.monotonic()
            done = await self._execute(request, bound)
        # The slot covers execution only: a verification that waits minutes for Prometheus
        # must not stop other targets' actions (the target stays held until it ends).
        if done.outcome == Outcome.EXECUTED and request.verify.checks:
            done = await self._verify(request, done)
        duration = time.monotonic() - started
        self._metrics.action_duration.labels(request.type).observe(duration)
        self._metrics.acted(request.policy, request.type, done.outcome)
        self._sink.settled(request.policy, done.outcome)
        # A ladder's rung that failed (or was not verified) hands over to the next at once:
        # its action, or the request for its approval when it carries its own.
        escalate = done.outcome == Outcome.FAILED and bool(request.ladder)
        # The breaker trips before anything is awaited (the record's write included): an
        # action of this policy that starts meanwhile, on another target, must find it open.
        # A ladder trips it when its last rung fails, or when it reached a last `notify`
        # rung: every remedy before it failed, and a person is now called.
        if not done.verified and not escalate:
            await self._on_unverified(request.policy, done.reason)
        elif _exhausted(request, done):
            why = f"every step before step {request.step} failed; {done.reason}"
            await self._on_unverified(request.policy, why)
        next_action = await self._record(request, done, bound, escalate=escalate)
        result = {
            "outcome": done.outcome,
            "reason": done.reason,
            "duration_seconds": round(duration, 3),
        }
        if done.outcome == Outcome.EXECUTED:
            bound.info("action.executed", **result)
        elif done.outcome in _HELD:
            bound.warning("action.held", **result)
        else:
            bound.warning("action.failed", **result)
        if done.reached:
            self._done.put(request.policy, request.target, self._clock())
        self._report(request, done.outcome, done.reason, duration)
        if isinstance(next_action, Approval):
            bound.warning(
                "action.escalated",
                step=request.ladder[0].step,
                approval_id=next_action.id,
            )
            if self.approvals is not None:
                self.approvals.requested(next_action)
        elif next_action is not None:
            rung = request.ladder[0]
            bound.warning("action.escalated", step=rung.step, next_action_id=next_action)
            verify = VerifyPlan.of(rung.within, rung.checks)
            later = request.ladder[1:]
            self.submit(
                request_for(
                    next_action,
                    request.policy,
                    rung.action,
                    rung.target,
                    rung.params,
                    verify,
                    rung.step,
                    later,
                )
            )

    async def _record(
        self,
        request: ActionRequest,
        done: _Attempted,
        bound: FilteringBoundLogger,
        *,
        escalate: bool,
    ) -> int | Approval | None:
        """The result, to the store; escalating, the next rung with it: its action's id, or
        the request for its approval."""
        next_action: int | Approval | None = None
        try:
            if escalate and request.ladder[0].ask is not None and self.approvals is not None:
                rung, later = request.ladder[0], request.ladder[1:]
                now = self._clock()
                ask, context = self.approvals.rung_request(request.policy, rung, now)
                next_action = await self._store.finish_and_request(
                    request.action_id,
                    done.outcome,
                    done.reason,
                    now,
                    done.result,
                    rung,
                    later,
                    ask,
                    context,
                    reached=done.reached,
                )
                recorded = next_action is not None
            elif escalate and request.ladder[0].ask is not None:
                # Nobody to ask here (no approvals part): the ladder stops, never unasked.
                bound.error("action.approval_unavailable", step=request.ladder[0].step)
                recorded = await self._store.finish_action(
                    request.action_id,
                    done.outcome,
                    done.reason,
                    self._clock(),
                    done.result,
                    reached=done.reached,
                )
            elif escalate:
                next_action = await self._store.finish_and_escalate(
                    request.action_id,
                    done.outcome,
                    done.reason,
                    self._clock(),
                    done.result,
                    request.ladder[0],
                    request.ladder[1:],
                    reached=done.reached,
                )
                recorded = next_action is not None
            else:
                # An attempt that provably never reached its target is recorded so: it starts
                # no cooldown and spends no rate limit, after a restart too (the store says so).
                recorded = await self._store.finish_action(
                    request.action_id,
                    done.outcome,
                    done.reason,
                    self._clock(),
                    done.result,
                    reached=done.reached,
                )
        except RemediatorError as exc:
            # Left `running`: once its lease runs out it is recorded interrupted, never lost
            # (and a ladder stops there: its next rung was not written either).
            bound.error("action.record_failed", error=str(exc))
        else:
            if recorded is False:
                bound.warning("action.record_refused", outcome=done.outcome)
        return next_action

    async def _start(self, request: ActionRequest, bound: FilteringBoundLogger) -> bool:
        """Its turn came (target and slot held). True: recorded running, and pause, breaker
        and cooldown still let it go. False: it never runs, and its record says why.

        Recorded running first, checked second: from then on the row is ours alone (a lapsed
        lease elsewhere cannot record it interrupted meanwhile) and its result, even `paused`,
        is finish_action's to write; a pause that lands after the check finds it under way."""
        if self._draining:
            await self._not_run(request, bound, NOT_STARTED)
            return False
        try:
            starting = await self._store.start_action(request.action_id, self._clock())
        except RemediatorError as exc:
            # Left pending: its lease runs out and it is recorded interrupted; never run
            # without the record saying it runs.
            bound.error("action.start_failed", error=str(exc))
            return False
        if not starting:
            bound.warning(
                "action.not_started",
                reason="no longer pending (its lease ran out and it was recorded interrupted)",
            )
            return False
        if self._draining:  # the drain began while it was being recorded: still not run
            await self._not_run(request, bound, NOT_STARTED)
            return False
        try:
            held = await self._check(request)
        except RemediatorError as exc:  # never run without knowing it is not paused
            reason = f"pause and breaker could not be read when its turn came ({exc}); not run"
            await self._not_run(request, bound, reason)
            return False
        if held is not None:
            outcome, why = held
            await self._hold(
                request, bound, outcome, f"{why}, when this action's turn came; not run"
            )
            return False
        if self._draining:  # the drain began while the switches were read
            await self._not_run(request, bound, NOT_STARTED)
            return False
        bound.info("action.started")
        return True

    async def _check(self, request: ActionRequest) -> Hold | None:
        if self._admit is None:
            return None
        return await self._admit(request, self._done.get(request.policy, request.target))

    async def _hold(
        self, request: ActionRequest, bound: FilteringBoundLogger, outcome: str, reason: str
    ) -> None:
        """Paused, tripped or in cooldown when its turn came: its final record, never run
        (so it counts toward no cooldown or rate limit)."""
        try:
            recorded = await self._store.finish_action(
                request.action_id, outcome, reason, self._clock(), reached=False
            )
        except RemediatorError as exc:
            # Left running: its lease runs out and it is recorded interrupted; never run.
            bound.error("action.record_failed", error=str(exc))
            return
        if recorded is False:
            bound.warning("action.record_refused", outcome=outcome, reason=reason)
            return
        self._metrics.acted(request.policy, request.type, outcome)
        self._sink.settled(request.policy, outcome)
        bound.warning("action.held", outcome=outcome, reason=reason)
        if self._on_held is not None:  # the store reopened its episode; caches must follow
            self._on_held(request)
        self._report(request, outcome, reason, 0.0)

    async def _not_run(
        self, request: ActionRequest, bound: FilteringBoundLogger, reason: str
    ) -> None:
        """Recorded `interrupted` (pending, or running but not executed): never run."""
        try:
            found = await self._store.interrupt_actions([request.action_id], self._clock(), reason)
        except RemediatorError as exc:  # left unfinished: its lease runs out, interrupted
            bound.error("action.record_failed", error=str(exc))
            return
        self.record_interrupted(found)

    async def _verify(self, request: ActionRequest, done: _Attempted) -> _Attempted:
        """The policy's verify checks, side by side within `verify.within`: all must hold.
        Each says its own result in the reason (`recovered: ...`, `healthy: ...`)."""
        plan = request.verify
        waits: list[Coroutine[Any, Any, Verdict]] = []
        if plan.prometheus is not None:
            waits.append(self._recovered(plan.prometheus, plan.within))
        if plan.http is not None:
            waits.append(self._healthy(plan.http, plan.within))
        verdicts = await asyncio.gather(*waits)
        failed = [v.reason for v in verdicts if not v.ok]
        if failed:
            reason = f"{done.reason}; {'; '.join(failed)}"
            return done._replace(outcome=Outcome.FAILED, reason=reason, verified=False)
        return done._replace(reason=f"{done.reason}; {'; '.join(v.reason for v in verdicts)}")

    async def _recovered(self, check: PrometheusCheck, within: timedelta) -> Verdict:
        if self.checker is None:
            return Verdict(False, "not verified: no Prometheus configured")
        found = await wait_recovered(
            self.checker, check.query, above=check.above, below=check.below, within=within
        )
        return Verdict(found.ok, f"{'recovered' if found.ok else 'not recovered'}: {found.reason}")

    async def _healthy(self, check: HttpCheck, within: timedelta) -> Verdict:
        found = await wait_healthy(check, within, poll=self._http_poll, probe=self.http_probe)
        return found if not found.ok else Verdict(True, f"healthy: {found.reason}")

    async def _execute(self, request: ActionRequest, bound: FilteringBoundLogger) -> _Attempted:
        executor = self._executors.get(request.type)
        if executor is None:
            return _Attempted(
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
            return _Attempted(Outcome.FAILED, exc.reason, True, exc.reached)
        except Exception as exc:  # noqa: BLE001  # an executor bug must end as `failed`, not vanish
            bound.exception("action.crashed")
            return _Attempted(
                Outcome.FAILED, f"executor error: {type(exc).__name__}: {exc}", True, True
            )
        assert result is not None  # noqa: S101  # AsyncRetrying ran at least once or raised
        if result.ok:
            return _Attempted(Outcome.EXECUTED, result.detail, True, True, result.facts)
        return _Attempted(Outcome.FAILED, result.detail, result.verified, True, result.facts)

    async def _before_retry(self, request: ActionRequest, error: ActionError) -> _Attempted | None:
        """Every attempt so far certainly failed to reach the target (only those are retried)."""
        try:
            held = await self._check(request)
        except RemediatorError as exc:
            reason = f"{error.reason}; not retried: cannot check pause and breaker: {exc}"
            return _Attempted(Outcome.FAILED, reason, True, False)
        if held is None:
            return None
        outcome, why = held
        return _Attempted(
            outcome, f"{why}, before a retry; not retried after: {error.reason}", True, False
        )

    def _report(self, request: ActionRequest, outcome: str, reason: str, seconds: float) -> None:
        """The result to Slack: spawned, so no post ever holds a slot or a target."""
        if self._on_finished is None:
            return
        task = asyncio.create_task(
            self._on_finished(request, outcome, reason, seconds),
            name=f"action-report-{request.action_id}",
        )
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def drain(self, within: timedelta) -> None:
        """Start nothing new: record queued actions interrupted; let running ones finish
        `within` the bound; then cancel and record the rest."""
        self._draining = True
        queued = {
            action_id: task
            for action_id, (_, task) in self._tasks.items()
            if action_id not in self._claimed
        }
        if queued:
            _log.info("runner.draining_queued", actions=len(queued))
            for task in queued.values():
                task.cancel()  # each waits for its target or a slot: nothing has started
            await asyncio.wait(queued.values())
            try:
                found = await self._store.interrupt_actions(
                    list(queued), self._clock(), NOT_STARTED
                )
            except RemediatorError as exc:  # left pending: recorded interrupted at the next start
                _log.error("runner.record_failed", error=str(exc), actions=sorted(queued))
            else:
                self.record_interrupted(found)
        await self._drain_running(within)
        if self._reports:  # let result posts go out, briefly
            _, late = await asyncio.wait(set(self._reports), timeout=5)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)

    async def _drain_running(self, within: timedelta) -> None:
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
            self._metrics.acted(item.policy, item.type, Outcome.INTERRUPTED)
            self._sink.settled(item.policy, Outcome.INTERRUPTED)
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
    verify: VerifyPlan,
    step: int | None = None,
    ladder: Sequence[Rung] = (),
) -> ActionRequest:
    return ActionRequest(
        action_id, policy, action, target, dict(params), verify, step, tuple(ladder)
    )
