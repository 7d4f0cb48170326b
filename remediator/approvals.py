"""The approvals part: human decisions on approval-gated decisions (API or Slack), expiry and
the pending count, with their store writes, metrics and logs. The states themselves are
core/approval.py; an approval never overrides a guard: an approved action passes the
stages of core.guards.AT_APPROVAL again, over facts read at approval time, judged by the rule
set in force then. A policy a reload removed has its pending approvals cancelled.

Where people decide (API or Slack) lives here; the pending count, expiry and cancellation,
which run without anyone deciding, are approvals_pending.py, which Approvals inherits.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from remediator import log
from remediator.actions.base import ActionRequest
from remediator.approvals_pending import Notices, PendingApprovals
from remediator.core import approval as approvals
from remediator.core.audit import OperatorEvent
from remediator.core.guards import AT_APPROVAL, AT_LATER_STEP, LADDER_STARTED, first_stop
from remediator.core.job import Job
from remediator.core.ladder import Rung
from remediator.core.outcomes import EXECUTING, Outcome
from remediator.core.verify import VerifyPlan
from remediator.errors import StoreError
from remediator.escalation import request_for
from remediator.pipeline import read_facts
from remediator.slack_messages import code_span
from remediator.store.roles.decisionlog import Transaction

__all__ = ["Approvals", "Notices"]

_log = log.get("remediator.approvals")


class Approvals(PendingApprovals):
    """The approvals part: people's decisions, on top of the pending book it inherits."""

    async def decide_approval(
        self, approval_id: str, who: str, *, approve: bool, note: str = ""
    ) -> approvals.Approval | None:
        """Apply one human decision; None for an unknown id; raises ApprovalRefused (one from
        someone who is not an approver is kept in the approval's history, as `refused`).

        `who` is an authenticated identity (a Slack user ID from a signed click, or the API
        token's `api:NAME`), never text the caller chose; `note` is recorded beside it."""
        try:
            return await self._decide(approval_id, who, approve=approve, note=note)
        except approvals.ApprovalRefused as exc:
            if not exc.conflict:
                try:
                    await self._store.add_approval_event(
                        approval_id, who, "refused", exc.reason, self._clock()
                    )
                except StoreError as error:  # the refusal stands; only its record is lost
                    _log.error(
                        "approval.refusal_unrecorded", approval_id=approval_id, error=str(error)
                    )
            raise

    async def _decide(
        self, approval_id: str, who: str, *, approve: bool, note: str
    ) -> approvals.Approval | None:
        now = self._clock()
        outcome: str | None = None
        submit: ActionRequest | None = None
        async with self._store.transaction() as tx:
            current = await tx.approval(approval_id)
            if current is None:
                return None
            if approve:
                updated = approvals.approve(current, who, now)
            else:
                updated = approvals.deny(current, who, now)
            await tx.save_approval(updated)
            if updated.state is approvals.ApprovalState.DENIED:
                outcome = Outcome.DENIED
                await tx.set_outcome(updated.decision_id, outcome, f"denied by {who}")
            elif updated.state is approvals.ApprovalState.APPROVED:
                outcome, submit = await self._approved(tx, updated, now)
            # Who, when and what, committed with the change itself: the history is appended
            # to, never overwritten, and no act is ever recorded without its effect.
            await tx.add_approval_event(
                approval_id, who, "approved" if approve else "denied", note, now
            )
            act = OperatorEvent(
                now,
                who,
                "approve" if approve else "deny",
                policy=updated.policy,
                decision_id=updated.decision_id,
                approval_id=updated.id,
                detail=note,
            )
            await tx.add_operator_event(act)
        if updated.state is approvals.ApprovalState.PENDING:  # one of N approvers so far
            self._notices.refresh(updated.id)
        else:
            self._metrics.approval_latency.observe((now - current.requested_at).total_seconds())
            self._closed(updated, outcome, _describe(outcome, updated), by=who, outcome=outcome)
        if submit is not None:
            self._runner.submit(submit)
        return updated

    async def _approved(
        self, tx: Transaction, approval: approvals.Approval, now: datetime
    ) -> tuple[str, ActionRequest | None]:
        """An approval never overrides the kill switch, a breaker, a limit or dry run."""
        who = ", ".join(approval.approved_by)
        rules = self._rules  # one rule set for the whole judgement, whatever a reload does
        policy = rules.by_name.get(approval.policy)
        if policy is None:
            reason = f"approved by {who}, but policy {approval.policy} is no longer loaded"
            await _settle(tx, approval.decision_id, Outcome.FAILED, reason)
            return Outcome.FAILED, None
        # A ladder's later step: the ladder's guards judged it when it started, and its
        # cooldown and limits are the ladder's (each step already counted), so what is left
        # is what every step passes: the kill switch, the breaker and dry run.
        rung, ladder = await tx.approval_ladder(approval.id) if policy.steps else (None, ())
        stages = AT_LATER_STEP if rung is not None else AT_APPROVAL
        # The guards an approval never overrides (scope as it is now, the kill switch, the
        # breaker, cooldown and limits, dry run): the same stages, over facts read now.
        gates = rules.gates(self._switches.adopt(await tx.flags()))
        job = Job(None, policy, now, approval.action, approval.target, {})
        facts = await read_facts(tx, [job], now, gates, rules.settings, {})
        stop = first_stop(job, facts, now, stages)
        if stop is not None and stop.outcome is not Outcome.DRY_RUN:
            if stop.outcome in (Outcome.PAUSED, Outcome.TRIPPED):
                reason = f"approved by {who} while {stop.outcome}"
            else:
                reason = f"approved by {who}, but {stop.reason}"
            await _settle(tx, approval.decision_id, stop.outcome, reason)
            return stop.outcome, None
        # The params and the verify check rendered when it was requested, stored with it.
        params, check = await tx.approval_params(approval.id)
        dry = stop is not None  # only the dry_run stage is left to stop it here
        action_id = await tx.add_action(
            approval.decision_id,
            policy.name,
            approval.action,
            approval.target,
            params,
            dry_run=dry,
            now=now,
            verify=check,
            ladder=ladder,
        )
        if dry:
            await _settle(tx, approval.decision_id, Outcome.DRY_RUN, f"approved by {who}; dry run")
            return Outcome.DRY_RUN, None
        await _settle(tx, approval.decision_id, EXECUTING, f"approved by {who}")
        within = rung.within if rung is not None else policy.verify.within
        verify = VerifyPlan.of(within, check)
        step = rung.step if rung is not None else (1 if policy.steps else None)
        request = request_for(
            action_id, policy.name, approval.action, approval.target, params, verify, step, ladder
        )
        return EXECUTING, request

    def rung_request(
        self, policy: str, rung: Rung, now: datetime
    ) -> tuple[approvals.Approval, dict[str, object]]:
        """The request for a ladder's later step that carries its own approval (the store
        fills in its decision) and what its message shows: the alert as the ladder rendered
        it, the step, its params, and the guards the ladder passed when it started."""
        rules = self._rules
        loaded = rules.by_name.get(policy)
        guards = loaded.guards if loaded is not None else None
        approvers = rules.settings.approvers
        if guards is not None and guards.approvers is not None:
            approvers = guards.approvers
        request = approvals.Approval(
            id=secrets.token_hex(16),
            decision_id=0,
            policy=policy,
            action=rung.action,
            target=rung.target,
            state=approvals.ApprovalState.PENDING,
            requested_at=now,
            expires_at=now + rules.settings.approval_ttl,
            required=guards.approvals_required if guards is not None else 1,
            approvers=approvers,
        )
        context = {
            **(rung.ask or {}),
            "params": dict(rung.params),
            "guards": list(LADDER_STARTED),
        }
        return request, context


async def _settle(tx: Transaction, decision_id: int, outcome: str, reason: str) -> None:
    """An approved decision's outcome. The store refuses when the decision is no longer open
    (someone else settled it): raising rolls the whole approval back, action row included."""
    if not await tx.set_outcome(decision_id, outcome, reason):
        raise approvals.ApprovalRefused(
            f"decision {decision_id} was settled meanwhile; nothing changed", conflict=True
        )


def _describe(outcome: str | None, approval: approvals.Approval) -> str | None:
    if outcome is None or approval.state is not approvals.ApprovalState.APPROVED:
        return None
    if outcome == EXECUTING:
        return f"running `{approval.action}` on {code_span(approval.target)}"
    return f"not run: {outcome}"
