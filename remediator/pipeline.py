"""The decision pipeline, in stage order, in one function: `decide`.

normalize -> match -> render + scope -> dedup -> (condition) -> pause/breaker -> cooldown ->
rate limits -> approval -> record. Execution and verification happen after the commit, in
runner.py; every stage ends a job with one SPEC outcome, which is also the metric label.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from remediator.config import Config
from remediator.core import approval as approvals
from remediator.core.alert import Alert
from remediator.core.dedup import Claim, Seen, classify
from remediator.core.durations import Rate
from remediator.core.job import Job, Met, Stopped, build_job
from remediator.core.limits import cooldown_reason, rate_reason
from remediator.core.matchers import matches_all
from remediator.core.outcomes import EXECUTING, PROVISIONAL, Outcome
from remediator.core.policy import ApprovalWhen, Policy
from remediator.core.render import render_context
from remediator.errors import RenderError
from remediator.store.base import NewDecision, Transaction


@dataclass(frozen=True, slots=True)
class Gates:
    """Switches read once per webhook: the kill switch, open breakers, global dry run."""

    paused: bool = False
    tripped: frozenset[str] = frozenset()
    dry_run: bool = False

    def holding(self, policy: str) -> Outcome | None:
        if self.paused:
            return Outcome.PAUSED
        if policy in self.tripped:
            return Outcome.TRIPPED
        return None


@dataclass(frozen=True, slots=True)
class Settings:
    global_rate: Rate
    approval_ttl: timedelta
    approvers: tuple[str, ...] = ()
    protected_namespaces: frozenset[str] = frozenset({"kube-system"})

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        return cls(
            config.limits.global_rate,
            config.limits.approval_ttl,
            config.slack.approvers,
            frozenset(config.kubernetes.protected_namespaces),
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """One (alert, policy) decision as the webhook answers it and the runner consumes it."""

    decision_id: int
    policy: str
    alert: Alert
    action: str
    target: str
    outcome: str
    reason: str
    new: bool = True  # False: a repeat counted on an existing record
    approval_id: str | None = None
    action_id: int | None = None
    params: Mapping[str, str] = field(default_factory=dict)

    def to_api(self) -> dict[str, object]:
        return {
            "id": self.decision_id,
            "policy": self.policy,
            "alertname": self.alert.name,
            "fingerprint": self.alert.fingerprint,
            "status": self.alert.status,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "reason": self.reason,
            "approval_id": self.approval_id,
        }


@dataclass(slots=True)
class Decided:
    """Everything one webhook decided; applied to caches and metrics only after commit."""

    verdicts: list[Verdict] = field(default_factory=list)
    claims: dict[tuple[str, str], Claim] = field(default_factory=dict)
    repeats: dict[int, int] = field(default_factory=dict)
    requested: list[approvals.Approval] = field(default_factory=list)
    cancelled: list[approvals.Approval] = field(default_factory=list)

    def count_repeat(self, decision_id: int) -> None:
        self.repeats[decision_id] = self.repeats.get(decision_id, 0) + 1


def concerned(policies: Sequence[Policy], alert: Alert) -> list[Policy]:
    """Policies matching the alert's source and labels, in either status: an alert none
    concerns leaves no state (so a storm of unrelated alerts cannot grow the store), while
    one some concern is recorded even when resolved (it ends an episode, cancels approvals)."""
    return [
        p
        for p in policies
        if p.matches_source(alert.source) and matches_all(p.match.matchers, alert.labels)
    ]


def matching(policies: Sequence[Policy], alert: Alert) -> list[Policy]:
    return [p for p in concerned(policies, alert) if p.match.status == alert.status]


def repeat_verdict(claim: Claim, policy: str, alert: Alert, gates: Gates) -> Verdict | None:
    """A repeat answered from a known claim with no write but a counter; None: needs the store."""
    seen = classify(claim, gates.holding(policy) is not None)
    if seen is Seen.REPEAT and claim.dedup_decision_id is not None:
        return Verdict(
            claim.dedup_decision_id,
            policy,
            alert,
            claim.action,
            claim.target,
            Outcome.DEDUPLICATED,
            f"repeat of the episode decided by decision {claim.decision_id}",
            new=False,
        )
    if seen is Seen.HELD and gates.holding(policy) == claim.outcome:
        return Verdict(
            claim.decision_id,
            policy,
            alert,
            claim.action,
            claim.target,
            claim.outcome,
            f"repeat while {claim.outcome}",
            new=False,
        )
    return None


async def decide(
    alerts: Sequence[Alert],
    policies: Sequence[Policy],
    tx: Transaction,
    now: datetime,
    gates: Gates,
    settings: Settings,
    conditions: Mapping[tuple[str, int], Stopped | Met] | None = None,
) -> Decided:
    """`conditions`: each (policy, alert index) condition, evaluated before the transaction
    so a slow Prometheus never holds the store."""
    decided = Decided()
    checked = conditions or {}
    for index, raw in enumerate(alerts):
        candidates = concerned(policies, raw)
        if not candidates:
            continue  # no policy could ever act on it: counted by the engine, never stored
        alert = raw
        if raw.cycle is not None:  # the sender gave no incident id: the store numbers cycles
            alert = replace(raw, episode=await tx.episode_cycle(raw.episode, raw.cycle), cycle=None)
        await tx.note_episode(alert, now)
        if alert.status == "resolved":
            await _cancel_approvals(tx, alert, decided)
        for policy in (p for p in candidates if p.match.status == alert.status):
            condition = checked.get((policy.name, index), _UNCHECKED)
            await _decide_one(tx, decided, alert, policy, now, gates, settings, condition)
    return decided


class _Unchecked:
    """No evaluation reached the pipeline: for a policy with a condition that means not met."""


_UNCHECKED = _Unchecked()


async def _decide_one(
    tx: Transaction,
    decided: Decided,
    alert: Alert,
    policy: Policy,
    now: datetime,
    gates: Gates,
    settings: Settings,
    checked: Stopped | Met | _Unchecked = _UNCHECKED,
) -> None:
    key = (policy.name, alert.episode)
    condition: Stopped | None = None  # what stops the job; None: no condition, or it is met
    if policy.condition is not None:
        if isinstance(checked, _Unchecked):
            condition = Stopped(Outcome.CONDITION_NOT_MET, "condition was not evaluated")
        elif isinstance(checked, Stopped):
            condition = checked
    job = build_job(policy, alert, now, settings.protected_namespaces)  # render + scope
    target = job.target

    claim = decided.claims.get(key) or await tx.claim(*key)  # dedup
    if claim is not None and await _repeat(
        tx, decided, key, claim, alert, policy, now, gates, condition
    ):
        return

    if isinstance(job, Stopped):
        await _record(tx, decided, key, alert, policy, now, job.outcome, job.reason, job.target)
        return
    if condition is not None:  # re-checked against Prometheus before acting
        await _record(
            tx, decided, key, alert, policy, now, condition.outcome, condition.reason, target
        )
        return
    held = gates.holding(policy.name)  # kill switch and circuit breaker
    if held is not None:
        why = (
            "remediation is paused" if held is Outcome.PAUSED else "policy circuit breaker is open"
        )
        await _record(tx, decided, key, alert, policy, now, held, why, target)
        return
    stop = await limits(tx, policy, target, now, gates, settings)  # cooldown, rate limits
    if stop is not None:
        await _record(tx, decided, key, alert, policy, now, stop.outcome, stop.reason, target)
        return
    try:
        approval_needed = needs_approval(job)  # approval gate
    except RenderError as exc:
        await _record(tx, decided, key, alert, policy, now, Outcome.RENDER_ERROR, str(exc), target)
        return
    if approval_needed:
        await _request_approval(tx, decided, key, job, settings)
        return
    dry = gates.dry_run or job.dry_run
    outcome = Outcome.DRY_RUN if dry else EXECUTING
    reason = "dry run: every guard passed, nothing executed" if dry else "all guards passed"
    await _record(
        tx, decided, key, alert, policy, now, outcome, reason, target, action=(job.params, dry)
    )


async def limits(
    tx: Transaction, policy: Policy, target: str, now: datetime, gates: Gates, settings: Settings
) -> Stopped | None:
    """Cooldown per (policy, target), the policy's rate_limit, then limits.global_rate."""
    guards = policy.guards
    last = await tx.last_action_at(policy.name, target)
    reason = cooldown_reason(last, guards.cooldown, now)
    if reason is not None:
        return Stopped(Outcome.COOLDOWN, reason)
    if guards.rate_limit is not None:
        count = await tx.count_actions(
            now - guards.rate_limit.window, policy=policy.name, dry_run=None
        )
        reason = rate_reason(count, guards.rate_limit, "policy rate_limit")
        if reason is not None:
            return Stopped(Outcome.RATE_LIMITED, reason)
    # A dry-run policy beside live ones neither uses nor is held by the live global budget;
    # with the whole daemon in dry run, dry runs count so the limit shows as it would be.
    if guards.dry_run and not gates.dry_run:
        return None
    window_start = now - settings.global_rate.window
    count = await tx.count_actions(
        window_start, policy=None, dry_run=None if gates.dry_run else False
    )
    reason = rate_reason(count, settings.global_rate, "global_rate")
    return None if reason is None else Stopped(Outcome.RATE_LIMITED, reason)


def needs_approval(job: Job) -> bool:
    rule = job.policy.guards.approval
    if isinstance(rule, ApprovalWhen):
        context = render_context(
            job.alert.labels, job.alert.annotations, job.alert.template_view(), job.policy.name
        )
        return rule.when.render(context) == "true"
    return rule == "always"


async def _request_approval(
    tx: Transaction,
    decided: Decided,
    key: tuple[str, str],
    job: Job,
    settings: Settings,
) -> None:
    approval_id = secrets.token_urlsafe(16)  # 128 bits: a button value nobody can guess
    guards = job.policy.guards
    expires = job.now + settings.approval_ttl
    reason = f"waiting for {guards.approvals_required} approval(s) until {expires.isoformat()}"
    decision_id = await _record(
        tx,
        decided,
        key,
        job.alert,
        job.policy,
        job.now,
        Outcome.AWAITING_APPROVAL,
        reason,
        job.target,
        approval_id=approval_id,
    )
    request = approvals.Approval(
        id=approval_id,
        decision_id=decision_id,
        policy=job.policy.name,
        action=job.action,
        target=job.target,
        state=approvals.ApprovalState.PENDING,
        requested_at=job.now,
        expires_at=expires,
        required=guards.approvals_required,
        approvers=guards.approvers if guards.approvers is not None else settings.approvers,
    )
    alert = job.alert
    context = {
        "alertname": alert.name,
        "status": alert.status,
        "source": alert.source,
        "labels": dict(alert.labels),
        "summary": alert.annotations.get("summary") or alert.annotations.get("description", ""),
        "link": alert.generator_url,
        "description": job.policy.description,
        "params": dict(job.params),
        # Every guard before the approval gate passed, or there would be no request.
        "guards": ["scope", "dedup", "paused", "breaker", "cooldown", "rate_limit", "global_rate"],
    }
    await tx.add_approval(request, alert.episode, job.params, context)
    decided.requested.append(request)


async def _cancel_approvals(tx: Transaction, alert: Alert, decided: Decided) -> None:
    for pending in await tx.pending_approvals(alert.episode):
        cancelled = approvals.cancel(pending)
        if cancelled is None:
            continue
        await tx.save_approval(cancelled)
        await tx.set_outcome(
            cancelled.decision_id, Outcome.CANCELLED, "the alert resolved before a decision"
        )
        decided.cancelled.append(cancelled)


async def _record(
    tx: Transaction,
    decided: Decided,
    key: tuple[str, str],
    alert: Alert,
    policy: Policy,
    now: datetime,
    outcome: str,
    reason: str,
    target: str,
    approval_id: str | None = None,
    action: tuple[Mapping[str, str], bool] | None = None,
) -> int:
    """Write the decision and its claim; `action` (params, dry_run) also records the action."""
    decision_id = await tx.add_decision(
        NewDecision(
            now, policy.name, alert, policy.action.type, target, outcome, reason, approval_id
        )
    )
    claim = Claim(decision_id, outcome, outcome in PROVISIONAL, policy.action.type, target)
    await tx.put_claim(*key, claim)
    decided.claims[key] = claim
    action_id: int | None = None
    params: Mapping[str, str] = {}
    if action is not None:
        params, dry = action
        action_id = await tx.add_action(
            decision_id, policy.name, policy.action.type, target, params, dry_run=dry, now=now
        )
    decided.verdicts.append(
        Verdict(
            decision_id,
            policy.name,
            alert,
            policy.action.type,
            target,
            outcome,
            reason,
            approval_id=approval_id,
            action_id=None if outcome != EXECUTING else action_id,
            params=params,
        )
    )
    return decision_id


async def _repeat(
    tx: Transaction,
    decided: Decided,
    key: tuple[str, str],
    claim: Claim,
    alert: Alert,
    policy: Policy,
    now: datetime,
    gates: Gates,
    condition: Stopped | None,
) -> bool:
    """A known episode: True when the repeat is counted, False when it is decided afresh."""
    if claim.outcome == Outcome.CONDITION_NOT_MET and condition is not None:
        # Still not met: the same provisional record counts the repeat.
        decided.count_repeat(claim.decision_id)
        decided.verdicts.append(
            Verdict(
                claim.decision_id,
                policy.name,
                alert,
                claim.action,
                claim.target,
                Outcome.CONDITION_NOT_MET,
                condition.reason,
                new=False,
            )
        )
        return True
    known = repeat_verdict(claim, policy.name, alert, gates)
    if known is not None:
        decided.count_repeat(known.decision_id)
        decided.verdicts.append(known)
        return True
    if claim.provisional:  # the pause, breaker or condition has lifted: decide afresh
        return False
    # The first repeat of a settled episode: one `deduplicated` record, counted from then on.
    reason = f"repeat of the episode decided by decision {claim.decision_id}"
    dedup_id = await tx.add_decision(
        NewDecision(
            now,
            policy.name,
            alert,
            claim.action,
            claim.target,
            Outcome.DEDUPLICATED,
            reason,
            repeats=1,
        )
    )
    claim = Claim(claim.decision_id, claim.outcome, False, claim.action, claim.target, dedup_id)
    await tx.put_claim(*key, claim)
    decided.claims[key] = claim
    decided.verdicts.append(
        Verdict(
            dedup_id,
            policy.name,
            alert,
            claim.action,
            claim.target,
            Outcome.DEDUPLICATED,
            reason,
        )
    )
    return True
