"""The gate an action passes when its turn comes (target and slot held): recorded running, then
pause, breaker and cooldown asked again, and the record of one they hold back. It never
executes, verifies or waits for a slot or a target: the runner does, around it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from structlog.typing import FilteringBoundLogger

from remediator.actions.base import ActionRequest
from remediator.errors import RemediatorError
from remediator.inflight import NOT_STARTED, InFlight
from remediator.metrics import Metrics
from remediator.sink import OutcomeSink
from remediator.store.roles.store import Store
from remediator.targets import LastDone

# (outcome, reason) that holds an action back: paused, tripped or cooldown.
Hold = tuple[str, str]
# Asked when an action's turn comes (slot and target held) and before each retry; the second
# argument is when the last action of the same (policy, target) that ran here ended, or None.
# Returns the Hold that stops it, or None to go. Raises RemediatorError when it cannot tell.
Admit = Callable[[ActionRequest, datetime | None], Awaitable[Hold | None]]


class Gate:
    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        sink: OutcomeSink,
        clock: Callable[[], datetime],
        inflight: InFlight,
        done: LastDone,
        *,
        admit: Admit | None,
        on_held: Callable[[ActionRequest], None] | None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._sink = sink
        self._clock = clock
        self._inflight = inflight
        self._done = done  # the runner's: it puts each action that reached its target
        self._admit = admit
        self._on_held = on_held

    async def start(self, request: ActionRequest, bound: FilteringBoundLogger) -> bool:
        """Its turn came (target and slot held). True: recorded running, and pause, breaker
        and cooldown still let it go. False: it never runs, and its record says why.

        Recorded running first, checked second: from then on the row is ours alone (a lapsed
        lease elsewhere cannot record it interrupted meanwhile) and its result, even `paused`,
        is finish_action's to write; a pause that lands after the check finds it under way."""
        if self._inflight.draining:
            await self._inflight.not_run(request, bound, NOT_STARTED)
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
        if self._inflight.draining:  # the drain began while it was being recorded: still not run
            await self._inflight.not_run(request, bound, NOT_STARTED)
            return False
        try:
            held = await self.check(request)
        except RemediatorError as exc:  # never run without knowing it is not paused
            reason = f"pause and breaker could not be read when its turn came ({exc}); not run"
            await self._inflight.not_run(request, bound, reason)
            return False
        if held is not None:
            outcome, why = held
            await self._hold(
                request, bound, outcome, f"{why}, when this action's turn came; not run"
            )
            return False
        if self._inflight.draining:  # the drain began while the switches were read
            await self._inflight.not_run(request, bound, NOT_STARTED)
            return False
        bound.info("action.started")
        return True

    async def check(self, request: ActionRequest) -> Hold | None:
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
        self._inflight.report(request, outcome, reason, 0.0)
