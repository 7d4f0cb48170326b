"""An action's result record, with a ladder's next rung written in the same store call (its
action, or the request for its approval), and the requests actions run with. Nothing here
submits, executes or announces: the runner does that with what the record returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from structlog.typing import FilteringBoundLogger

from remediator.actions.base import ActionRequest
from remediator.attempt import Attempted
from remediator.core.approval import Approval
from remediator.core.ladder import Rung
from remediator.core.outcomes import Outcome
from remediator.core.verify import VerifyPlan
from remediator.errors import RemediatorError
from remediator.store.roles.store import Store


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


def exhausted(request: ActionRequest, done: Attempted) -> bool:
    """A ladder's last rung was a notify, reached (each rung before it failed) and sent."""
    return (
        (request.step or 1) > 1
        and not request.ladder
        and request.type == "notify"
        and done.outcome == Outcome.EXECUTED
    )


async def record(
    store: Store,
    clock: Callable[[], datetime],
    approvals: RungApprovals | None,
    request: ActionRequest,
    done: Attempted,
    bound: FilteringBoundLogger,
    *,
    escalate: bool,
) -> int | Approval | None:
    """The result, to the store; escalating, the next rung with it: its action's id, or
    the request for its approval."""
    next_action: int | Approval | None = None
    try:
        if escalate and request.ladder[0].ask is not None and approvals is not None:
            rung, later = request.ladder[0], request.ladder[1:]
            now = clock()
            ask, context = approvals.rung_request(request.policy, rung, now)
            next_action = await store.finish_and_request(
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
        elif escalate and request.ladder[0].ask is None:
            next_action = await store.finish_and_escalate(
                request.action_id,
                done.outcome,
                done.reason,
                clock(),
                done.result,
                request.ladder[0],
                request.ladder[1:],
                reached=done.reached,
            )
            recorded = next_action is not None
        else:
            if escalate:  # a rung that asks, and nobody to ask here (no approvals part)
                # The ladder stops here, never goes on unasked.
                bound.error("action.approval_unavailable", step=request.ladder[0].step)
            # An attempt that provably never reached its target is recorded so: it starts
            # no cooldown and spends no rate limit, after a restart too (the store says so).
            recorded = await store.finish_action(
                request.action_id,
                done.outcome,
                done.reason,
                clock(),
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


def next_request(request: ActionRequest, action_id: int) -> ActionRequest:
    """The ladder's next rung, as the action `action_id` the record wrote for it."""
    rung = request.ladder[0]
    verify = VerifyPlan.of(rung.within, rung.checks)
    later = request.ladder[1:]
    return request_for(
        action_id,
        request.policy,
        rung.action,
        rung.target,
        rung.params,
        verify,
        rung.step,
        later,
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
