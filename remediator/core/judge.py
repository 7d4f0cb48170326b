"""The judgement of one batch of alerts: pure. Each job goes through guards.STAGES over the
Facts read once for the batch; what it decides becomes rows (Decided) that the store writes
in one go, in the same transaction, before anything is acknowledged or executed. The
records it hands on (Verdict, Decided, Sighting, Ids) are in judge_records.py.

Nothing here awaits: a unit test drives it with a hand-made Facts and reads the rows.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from remediator.core import approval as approvals
from remediator.core.alert import Alert
from remediator.core.dedup import Claim
from remediator.core.guards import BEFORE_APPROVAL, Facts, first_stop
from remediator.core.job import Job, Stopped, approval_context
from remediator.core.judge_records import Decided, Ids, Sighting, Verdict
from remediator.core.outcomes import PROVISIONAL, Outcome
from remediator.core.records import ApprovalRow, NewAction, NewDecision
from remediator.core.verify import VerifyPlan

# The pipeline, the store, memory and the tests take the records from here, as before.
__all__ = ["Decided", "Ids", "Sighting", "Verdict", "judge"]


class _Batch:
    def __init__(self, facts: Facts, ids: Ids, now: datetime, new_id: Callable[[], str]) -> None:
        self.facts = facts
        self.ids = ids
        self.now = now
        self.new_id = new_id
        self.out = Decided()

    def record(
        self,
        job: Job,
        outcome: Outcome,
        reason: str,
        target: str,
        *,
        approval_id: str | None = None,
        repeats: int = 0,
        claim: Claim | None = None,
    ) -> int:
        """One decision row and the claim that follows it (the given one, or a new claim)."""
        alert = job.alert
        assert alert is not None  # noqa: S101  # batches judge alerts; approvals never record here
        decision_id = next(self.ids.decisions)
        self.out.decisions.append(
            NewDecision(
                self.now,
                job.policy.name,
                alert,
                job.action,
                target,
                outcome,
                reason,
                approval_id,
                repeats,
                decision_id,
                job.step,
            )
        )
        if claim is None:
            provisional = outcome in PROVISIONAL
            claim = Claim(decision_id, outcome, provisional, job.action, target)
        self.facts.claims[job.key] = claim
        self.out.claims[job.key] = claim
        return decision_id

    def verdict(
        self,
        job: Job,
        decision_id: int,
        stop: Stopped,
        *,
        new: bool = True,
        approval_id: str | None = None,
        action_id: int | None = None,
        params: Mapping[str, str] | None = None,
        verify: VerifyPlan | None = None,
    ) -> None:
        alert = job.alert
        assert alert is not None  # noqa: S101  # as in record
        self.out.verdicts.append(
            Verdict(
                decision_id,
                job.policy.name,
                alert,
                job.action,
                stop.target,
                stop.outcome,
                stop.reason,
                new,
                approval_id,
                action_id,
                params or {},
                job.position,
                verify,
                job.ladder if action_id is not None else (),
                job.step,
            )
        )

    def judge(self, job: Job) -> None:
        stop = first_stop(job, self.facts, self.now)
        if stop is None:
            stop = Stopped(Outcome.EXECUTING, "all guards passed", job.target)
        if stop.repeat_of is not None:  # a repeat counted on its episode's record
            self.out.count_repeat(stop.repeat_of)
            self.verdict(job, stop.repeat_of, stop, new=False)
        elif stop.outcome is Outcome.DEDUPLICATED:  # the first repeat of a settled episode
            settled = self.facts.claims[job.key]
            dedup_id = next(self.ids.decisions)
            claim = Claim(
                settled.decision_id,
                settled.outcome,
                False,
                settled.action,
                settled.target,
                dedup_id,
            )
            self.out.decisions.append(
                NewDecision(
                    self.now,
                    job.policy.name,
                    job.alert,  # type: ignore[arg-type]  # batches judge alerts
                    settled.action,
                    settled.target,
                    Outcome.DEDUPLICATED,
                    stop.reason,
                    repeats=1,
                    id=dedup_id,
                )
            )
            self.facts.claims[job.key] = claim
            self.out.claims[job.key] = claim
            self.verdict(job, dedup_id, stop)
        elif stop.outcome is Outcome.AWAITING_APPROVAL:
            self.request(job, stop)
        elif stop.outcome in (Outcome.EXECUTING, Outcome.DRY_RUN):
            self.act(job, stop)
        else:
            decision_id = self.record(job, stop.outcome, stop.reason, stop.target)
            self.verdict(job, decision_id, stop)

    def act(self, job: Job, stop: Stopped) -> None:
        dry = stop.outcome is Outcome.DRY_RUN
        decision_id = self.record(job, stop.outcome, stop.reason, job.target)
        action_id = next(self.ids.actions)
        self.out.actions.append(
            NewAction(
                action_id,
                decision_id,
                job.policy.name,
                job.action,
                job.target,
                job.params,
                dry,
                self.now,
                job.check,
                job.ladder,
            )
        )
        self.facts.acted(job.policy.name, job.target, self.now, dry_run=dry)
        running = None if dry else action_id
        self.verdict(
            job, decision_id, stop, action_id=running, params=job.params, verify=job.verify
        )

    def request(self, job: Job, stop: Stopped) -> None:
        approval_id = self.new_id()
        decision_id = self.record(
            job, stop.outcome, stop.reason, job.target, approval_id=approval_id
        )
        guards = job.policy.guards
        settings = self.facts.settings
        request = approvals.Approval(
            id=approval_id,
            decision_id=decision_id,
            policy=job.policy.name,
            action=job.action,
            target=job.target,
            state=approvals.ApprovalState.PENDING,
            requested_at=self.now,
            expires_at=self.now + settings.approval_ttl,
            required=guards.approvals_required,
            approvers=guards.approvers if guards.approvers is not None else settings.approvers,
        )
        alert = job.alert
        assert alert is not None  # noqa: S101  # as in record
        passed = [
            name
            for name in BEFORE_APPROVAL
            if name != "condition" or job.policy.condition is not None
        ]
        context = {
            **approval_context(job.policy, alert),
            "params": dict(job.params),
            "guards": passed,  # every stage before the gate passed, or there is no request
        }
        if job.policy.steps:  # the message names the step it asks for
            context["step"] = f"step 1 of {len(job.policy.steps)}"
        self.out.approval_rows.append(
            ApprovalRow(request, alert.episode, job.params, context, job.check, job.ladder)
        )
        self.out.requested.append(request)
        self.verdict(job, decision_id, stop, approval_id=approval_id)

    def cancel(self, alert: Alert, pending: dict[str, list[approvals.Approval]]) -> None:
        """A resolved alert cancels what its episode still waits for, including a request
        made earlier in this same batch."""
        done = {c.id for c in self.out.cancelled}
        waiting = pending.pop(alert.episode, [])
        waiting += [
            row.approval
            for row in self.out.approval_rows
            if row.episode == alert.episode and row.approval.id not in done
        ]
        for request in waiting:
            cancelled = approvals.cancel(request)
            if cancelled is not None:
                self.out.cancelled.append(cancelled)


def judge(
    sightings: Sequence[Sighting],
    facts: Facts,
    ids: Ids,
    now: datetime,
    pending: Mapping[str, Sequence[approvals.Approval]] | None = None,
    # 128 bits: a button value nobody can guess; hex, so an id never reads as a CLI option
    new_id: Callable[[], str] = lambda: secrets.token_hex(16),
) -> Decided:
    """Judge every job of the batch in order; `pending`: the approvals still waiting, by
    episode, for the resolved alerts of the batch. Updates `facts` as it records."""
    batch = _Batch(facts, ids, now, new_id)
    waiting = {episode: list(items) for episode, items in (pending or {}).items()}
    for sighting in sightings:
        batch.out.sightings.append(sighting.alert)
        batch.out.matched.append(sighting)
        if sighting.alert.status == "resolved":
            batch.cancel(sighting.alert, waiting)
        for job in sighting.jobs:
            batch.judge(job)
    return batch.out
