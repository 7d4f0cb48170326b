"""The approvals part: human decisions on approval-gated decisions (API or Slack), expiry and
the pending count, with their store writes, metrics and logs. The states themselves are
core/approval.py; an approval never overrides a guard: an approved action passes the
stages of core.guards.AT_APPROVAL again, over facts read at approval time, judged by the rule
set in force then. A policy a reload removed has its pending approvals cancelled.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from remediator import log
from remediator.actions.base import ActionRequest
from remediator.core import approval as approvals
from remediator.core.audit import OperatorEvent
from remediator.core.guards import AT_APPROVAL, AT_LATER_STEP, LADDER_STARTED, first_stop
from remediator.core.job import Job
from remediator.core.ladder import Rung
from remediator.core.outcomes import EXECUTING, Outcome
from remediator.core.ruleset import Ruleset
from remediator.core.verify import VerifyPlan
from remediator.errors import StoreError
from remediator.escalation import request_for
from remediator.metrics import Metrics
from remediator.pipeline import read_facts
from remediator.runner import Runner
from remediator.sink import OutcomeSink
from remediator.slack import code_span
from remediator.store.roles.approvals import SYSTEM, ApprovalConflictError
from remediator.store.roles.decisionlog import Transaction
from remediator.store.roles.store import Store
from remediator.switches import Switches

_log = log.get("remediator.approvals")


class Notices(Protocol):
    """Where approvals are shown to people (conversation.Conversation: Slack)."""

    def announce(self, approval: approvals.Approval) -> None: ...

    def refresh(self, approval_id: str, outcome: str | None = None) -> None: ...


class Approvals:
    def __init__(
        self,
        *,
        store: Store,
        metrics: Metrics,
        clock: Callable[[], datetime],
        rules: Ruleset,
        switches: Switches,
        runner: Runner,
        sink: OutcomeSink,
        notices: Notices,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._rules = rules
        self._switches = switches
        self._runner = runner
        self._sink = sink
        self._notices = notices
        self._pending = 0
        # Policies a reload removed here: their pending approvals are cancelled, also those a
        # webhook or ladder under the old rule set asks for after the reload.
        self._removed: set[str] = set()
        # What was cancelled for a removal since the last reload, whichever task did it: the
        # sync loop may get there before the reload's own pass, and the reload's answer must
        # still list it. The lock makes one pass finish (and record) before the next looks.
        self._cancelled_since_reload: list[str] = []
        self._cancelling = asyncio.Lock()

    def adopt(self, rules: Ruleset, removed: Iterable[str]) -> None:
        """The rule set approvals are judged by from now on; `removed`: policies it dropped."""
        self._rules = rules
        self._removed = (self._removed | set(removed)) - set(rules.by_name)
        self._cancelled_since_reload = []

    def requested(self, request: approvals.Approval) -> None:
        """A decision that awaits approval was committed: count it and announce it."""
        self._pending += 1
        self._metrics.approvals_pending.set(self._pending)
        self._notices.announce(request)
        _log.info(
            "approval.requested",
            approval_id=request.id,
            policy=request.policy,
            target=request.target,
            expires_at=request.expires_at.isoformat(),
        )

    def cancelled(self, item: approvals.Approval) -> None:
        """The alert resolved before anyone decided (committed with that resolution)."""
        self._closed(item, Outcome.CANCELLED)

    async def sync(self) -> None:
        """The pending count as the store has it (any replica may have decided), then expiry
        and the cancellation of approvals of removed policies."""
        pending = await self._store.approvals(pending_only=True)
        self._pending = len(pending)
        self._metrics.approvals_pending.set(self._pending)
        if self._pending:
            await self.expire_approvals()
            await self._cancel([a for a in pending if a.policy in self._removed])

    async def cancel_removed(self) -> list[str]:
        """Cancel the pending approvals of policies the last reload removed; the ids of all
        cancelled since that reload (also those the sync loop got to first)."""
        if not self._removed:
            return []
        pending = await self._store.approvals(pending_only=True)
        await self._cancel([a for a in pending if a.policy in self._removed])
        return list(self._cancelled_since_reload)

    async def _cancel(self, doomed: list[approvals.Approval]) -> None:
        async with self._cancelling:
            await self._cancel_each(doomed)

    async def _cancel_each(self, doomed: list[approvals.Approval]) -> None:
        """One transaction each: one decided meanwhile (a click, another replica, expiry)
        stays as decided, without holding back the others."""
        now = self._clock()
        for item in doomed:
            cancelled = approvals.cancel(item)
            if cancelled is None:
                continue
            reason = f"policy {item.policy} was removed by a config reload"
            try:
                async with self._store.transaction() as tx:
                    await tx.save_approval(cancelled)
                    await tx.set_outcome(cancelled.decision_id, Outcome.CANCELLED, reason)
                    await tx.add_approval_event(cancelled.id, SYSTEM, "cancelled", reason, now)
            except ApprovalConflictError:
                continue
            shown = "its policy was removed by a config reload"
            self._closed(cancelled, Outcome.CANCELLED, shown, reason=reason)
            self._cancelled_since_reload.append(cancelled.id)

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

    async def expire_approvals(self) -> None:
        now = self._clock()
        expired = []
        async with self._store.transaction() as tx:
            for pending in await tx.expired_approvals(now):
                done = approvals.expire(pending, now)
                if done is None:
                    continue
                await tx.save_approval(done)
                reason = f"no decision before {pending.expires_at.isoformat()} (approval_ttl)"
                await tx.set_outcome(done.decision_id, Outcome.EXPIRED, reason)
                await tx.add_approval_event(done.id, SYSTEM, "expired", reason, now)
                expired.append(done)
        for item in expired:
            self._closed(item, Outcome.EXPIRED)

    def _closed(
        self, item: approvals.Approval, result: str | None, shown: str | None = None, **log: Any
    ) -> None:
        """Bookkeeping for an approval that left `pending`, however it ended."""
        self._pending -= 1
        self._metrics.approvals_pending.set(self._pending)
        self._metrics.approval_decisions.labels(item.policy, item.state.value).inc()
        if result is not None:
            self._sink.settled(item.policy, result)
        _log.info(f"approval.{item.state.value}", approval_id=item.id, policy=item.policy, **log)
        self._notices.refresh(item.id, shown)


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
