"""Carries out committed actions in the background: one action per target at a time, slots,
the pause/breaker/cooldown check when an action starts and before each retry, retries of
transient errors, verification, the result record, and a bounded drain at shutdown.

The pipeline decided to act, durably, before anything is submitted; what is asked again
here (through `admit`) is only whether that still holds now that the action's turn came.
The Runner coordinates its parts (gate.py, attempt.py, escalation.py, inflight.py) and
does none of their work itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from structlog.typing import FilteringBoundLogger

from remediator import log
from remediator.actions.base import ActionRequest, Executor
from remediator.attempt import Execution, verify
from remediator.checks.http import Probe
from remediator.checks.prometheus import PrometheusChecker
from remediator.core.approval import Approval
from remediator.core.outcomes import Outcome
from remediator.errors import RemediatorError
from remediator.escalation import RungApprovals, exhausted, next_request, record
from remediator.gate import Admit, Gate
from remediator.inflight import NOT_STARTED, InFlight
from remediator.metrics import Metrics
from remediator.sink import OutcomeSink
from remediator.store.records import Interrupted
from remediator.store.roles.store import Store
from remediator.targets import LastDone, TargetLocks, target_key

_log = log.get("remediator.runner")

_HELD = frozenset({Outcome.PAUSED, Outcome.TRIPPED, Outcome.COOLDOWN})


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
        self._metrics = metrics
        self._sink = sink or OutcomeSink(metrics)
        self._clock = clock
        self._slots = asyncio.Semaphore(max_concurrent)
        self._targets = TargetLocks()
        self._done = LastDone()
        self._on_unverified = on_unverified
        self.checker = checker  # set once by a reload that first needs Prometheus
        self._http_poll = http_poll  # verify.http's interval between tries
        self._inflight = InFlight(store, metrics, self._sink, clock, on_finished)
        self._gate = Gate(
            store,
            metrics,
            self._sink,
            clock,
            self._inflight,
            self._done,
            admit=admit,
            on_held=on_held,
        )
        self._execution = Execution(
            executors, self._gate.check, attempts=retry_attempts, wait=retry_wait
        )

    @property
    def running(self) -> int:
        return len(self._inflight.tasks)

    def holding(self) -> list[int]:
        """The actions this process has taken on, queued or running: their leases to renew."""
        return list(self._inflight.tasks)

    async def wait_idle(self) -> None:
        """Until every action taken on (and each ladder rung it escalated to) has finished."""
        while self._inflight.tasks:
            await asyncio.wait([task for _, task in self._inflight.tasks.values()])

    def submit(self, request: ActionRequest) -> None:
        task = asyncio.create_task(self._run(request), name=f"action-{request.action_id}")
        self._inflight.add(request, task)

    async def _run(self, request: ActionRequest) -> None:
        bound = _log.bind(
            action_id=request.action_id,
            policy=request.policy,
            action=request.type,
            target=request.target,
        )
        if self._inflight.draining:  # submitted after the drain began (an approval click)
            await self._inflight.not_run(request, bound, NOT_STARTED)
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
            self._inflight.claim(request.action_id)  # no await since the slot: drain sees it
            if not await self._gate.start(request, bound):
                return
            started = time.monotonic()
            done = await self._execution.run(request, bound)
        # The slot covers execution only: a verification that waits minutes for Prometheus
        # must not stop other targets' actions (the target stays held until it ends).
        if done.outcome == Outcome.EXECUTED and request.verify.checks:
            done = await verify(
                request, done, checker=self.checker, probe=self.http_probe, poll=self._http_poll
            )
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
        elif exhausted(request, done):
            why = f"every step before step {request.step} failed; {done.reason}"
            await self._on_unverified(request.policy, why)
        next_action = await record(
            self._store, self._clock, self.approvals, request, done, bound, escalate=escalate
        )
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
        self._inflight.report(request, done.outcome, done.reason, duration)
        if isinstance(next_action, Approval):
            bound.warning(
                "action.escalated",
                step=request.ladder[0].step,
                approval_id=next_action.id,
            )
            if self.approvals is not None:
                self.approvals.requested(next_action)
        elif next_action is not None:
            step = request.ladder[0].step
            bound.warning("action.escalated", step=step, next_action_id=next_action)
            self.submit(next_request(request, next_action))

    async def drain(self, within: timedelta) -> None:
        """Start nothing new: record queued actions interrupted; let running ones finish
        `within` the bound; then cancel and record the rest."""
        await self._inflight.drain(within)

    def record_interrupted(self, found: Sequence[Interrupted]) -> None:
        """Metrics and log for actions the store recorded interrupted, whoever held them."""
        self._inflight.record_interrupted(found)
