"""The guards, in order, as data: STAGES. Pure: each stage reads a Job and the Facts read
once for its batch, and returns the Stopped that ends the job, or None to let it go on.

The daemon (core/judge.py), `simulate`, the approval path and the Slack request's guard list
all iterate this one tuple, so the order cannot drift between them. Dedup runs first: a
repeat is counted on its episode's record whatever stopped the episode the first time (an
out-of-scope or render-error episode is recorded once, not once per repeat).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from remediator.config import Config
from remediator.core.dedup import Claim, Seen, classify
from remediator.core.durations import Rate
from remediator.core.job import Job, Met, Stopped, job_scope, needs_approval
from remediator.core.limits import cooldown_reason, rate_reason
from remediator.core.outcomes import Outcome
from remediator.core.policy import Policy
from remediator.errors import RenderError


@dataclass(frozen=True, slots=True)
class Gates:
    """Switches read once per batch: the kill switch, open breakers, global dry run, and when
    each policy's limits were last reset (`POST .../reset {"limits": true}`): its cooldowns and
    rate window count only actions created after that."""

    paused: bool = False
    tripped: frozenset[str] = frozenset()
    dry_run: bool = False
    limits_reset: Mapping[str, datetime] = field(default_factory=dict)

    def holding(self, policy: str) -> Outcome | None:
        if self.paused:
            return Outcome.PAUSED
        if policy in self.tripped:
            return Outcome.TRIPPED
        return None

    def acts_dry(self, policy: Policy) -> bool:
        """The policy's actions are dry runs now (the whole daemon's or its own)."""
        return self.dry_run or policy.guards.dry_run

    def counts_since(self, policy: str, since: datetime) -> datetime:
        """Where the policy's cooldown and rate window begin: `since`, or its limits' reset."""
        reset = self.limits_reset.get(policy)
        return since if reset is None or reset < since else reset


def reopened(claim: Claim | None, gates: Gates, policy: str) -> bool:
    """An episode a pause or breaker held (`paused`/`tripped`, provisional) that nothing
    holds now: what resume and reset decide again at once. A claim held by a condition is not
    one (each repeat re-checks it), nor one whose gate (or the other gate) still holds."""
    return (
        claim is not None
        and claim.provisional
        and claim.outcome in (Outcome.PAUSED, Outcome.TRIPPED)
        and gates.holding(policy) is None
    )


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


@dataclass(slots=True)
class Facts:
    """Everything the stages need for one batch, read from the store once, then kept true by
    `acted` as the judgement records actions. Counts are capped at their limit by the store
    (a count only has to say whether the limit is reached), so reading them never scans more
    rows than the limit, however long the history."""

    gates: Gates
    settings: Settings
    claims: dict[tuple[str, str], Claim] = field(default_factory=dict)
    last_action: dict[tuple[str, str], datetime] = field(default_factory=dict)
    policy_counts: dict[str, int] = field(default_factory=dict)
    global_count: int = 0
    # (policy, alert index in the batch) -> the condition's evaluation, made before the
    # store transaction so a slow Prometheus never holds the store
    conditions: Mapping[tuple[str, int], Stopped | Met] = field(default_factory=dict)

    def acted(self, policy: str, target: str, now: datetime, *, dry_run: bool) -> None:
        """An action row was recorded: the later jobs of the batch see it, as the store would."""
        self.last_action[(policy, target)] = now
        self.policy_counts[policy] = self.policy_counts.get(policy, 0) + 1
        if self.gates.dry_run or not dry_run:  # what global_rate counts (see global_rate)
            self.global_count += 1


def _repeat_reason(claim: Claim) -> str:
    return f"repeat of the episode decided by decision {claim.decision_id}"


def settled_repeat(claim: Claim, gates: Gates, policy: str) -> Stopped | None:
    """A repeat the claim alone answers: of a settled episode (`deduplicated`; `repeat_of`
    is None for its first repeat, when a record is still to be added), or of one held by a
    pause or breaker that still holds. None: decide afresh (or ask the condition)."""
    held = gates.holding(policy)
    seen = classify(claim, held is not None)
    if seen is Seen.REPEAT:
        return Stopped(
            Outcome.DEDUPLICATED, _repeat_reason(claim), claim.target, claim.dedup_decision_id
        )
    if seen is Seen.HELD and held == claim.outcome:
        return Stopped(held, f"repeat while {held}", claim.target, claim.decision_id)
    return None


def dedup(job: Job, facts: Facts, now: datetime) -> Stopped | None:
    """A known episode: a repeat counted on an existing record (`repeat_of`), the first
    repeat of a settled one (`deduplicated`, no `repeat_of`: a record is added), or None to
    decide afresh (new, or provisional with its gate lifted)."""
    claim = facts.claims.get(job.key)
    if claim is None:
        return None
    if claim.outcome == Outcome.CONDITION_NOT_MET:
        still = condition(job, facts, now)
        if still is not None:  # still not met: the same provisional record counts it
            return Stopped(Outcome.CONDITION_NOT_MET, still.reason, claim.target, claim.decision_id)
    return settled_repeat(claim, facts.gates, job.policy.name)


def scope(job: Job, facts: Facts, now: datetime) -> Stopped | None:
    """The action rendered, and its target within allow_targets and outside protected
    namespaces, judged against the policy as loaded now."""
    if job.error is not None:
        return job.error
    return job_scope(job, facts.settings.protected_namespaces)


def condition(job: Job, facts: Facts, now: datetime) -> Stopped | None:
    if job.policy.condition is None:
        return None
    checked = facts.conditions.get((job.policy.name, job.position))
    if checked is None:  # no evaluation reached the pipeline: for a condition, not met
        return Stopped(Outcome.CONDITION_NOT_MET, "condition was not evaluated", job.target)
    return checked if isinstance(checked, Stopped) else None


def paused(job: Job, facts: Facts, now: datetime) -> Stopped | None:
    if facts.gates.paused:
        return Stopped(Outcome.PAUSED, "remediation is paused", job.target)
    return None


def breaker(job: Job, facts: Facts, now: datetime) -> Stopped | None:
    if job.policy.name in facts.gates.tripped:
        return Stopped(Outcome.TRIPPED, "policy circuit breaker is open", job.target)
    return None


def cooldown(job: Job, facts: Facts, now: datetime) -> Stopped | None:
    last = facts.last_action.get((job.policy.name, job.target))
    reason = cooldown_reason(last, job.policy.guards.cooldown, now)
    return None if reason is None else Stopped(Outcome.COOLDOWN, reason, job.target)


def rate_limit(job: Job, facts: Facts, now: datetime) -> Stopped | None:
    count = facts.policy_counts.get(job.policy.name, 0)
    reason = rate_reason(count, job.policy.guards.rate_limit, "policy rate_limit")
    return None if reason is None else Stopped(Outcome.RATE_LIMITED, reason, job.target)


def global_rate(job: Job, facts: Facts, now: datetime) -> Stopped | None:
    # A dry-run policy beside live ones neither uses nor is held by the live global budget;
    # with the whole daemon in dry run, dry runs count so the limit shows as it would be.
    if job.policy.guards.dry_run and not facts.gates.dry_run:
        return None
    reason = rate_reason(facts.global_count, facts.settings.global_rate, "global_rate")
    return None if reason is None else Stopped(Outcome.RATE_LIMITED, reason, job.target)


def approval(job: Job, facts: Facts, now: datetime) -> Stopped | None:
    try:
        needed = needs_approval(job)
    except RenderError as exc:
        return Stopped(Outcome.RENDER_ERROR, str(exc), job.target)
    if not needed:
        return None
    expires = now + facts.settings.approval_ttl
    required = job.policy.guards.approvals_required
    reason = f"waiting for {required} approval(s) until {expires.isoformat()}"
    return Stopped(Outcome.AWAITING_APPROVAL, reason, job.target)


def dry_run(job: Job, facts: Facts, now: datetime) -> Stopped | None:
    if facts.gates.acts_dry(job.policy):
        return Stopped(Outcome.DRY_RUN, "dry run: every guard passed, nothing executed", job.target)
    return None


Check = Callable[[Job, Facts, datetime], Stopped | None]


class Stage(NamedTuple):
    name: str
    check: Check
    passed: Callable[[Job, Facts], str]  # what `simulate` shows when the stage lets it go


def _rate_shown(count: int, rate: Rate | None) -> str:
    return "no rate_limit" if rate is None else f"{count} of {rate}"


def _dedup_shown(claim: Claim | None) -> str:
    if claim is None:
        return "new episode"
    return f"episode decided by decision {claim.decision_id} ({claim.outcome})"


def _condition_shown(job: Job, facts: Facts) -> str:
    if job.policy.condition is None:
        return "no condition"
    checked = facts.conditions.get((job.policy.name, job.position))
    return checked.reason if checked is not None else "not evaluated"


STAGES: tuple[Stage, ...] = (
    Stage("dedup", dedup, lambda j, f: _dedup_shown(f.claims.get(j.key))),
    Stage("scope", scope, lambda j, f: f"{j.target} is in allow_targets"),
    Stage("condition", condition, _condition_shown),
    Stage("paused", paused, lambda j, f: "not paused"),
    Stage("breaker", breaker, lambda j, f: "closed"),
    Stage("cooldown", cooldown, lambda j, f: "no recent action on this target"),
    Stage(
        "rate_limit",
        rate_limit,
        lambda j, f: _rate_shown(f.policy_counts.get(j.policy.name, 0), j.policy.guards.rate_limit),
    ),
    Stage(
        "global_rate",
        global_rate,
        lambda j, f: (
            _rate_shown(f.global_count, f.settings.global_rate)
            if not (j.policy.guards.dry_run and not f.gates.dry_run)
            else "a dry-run policy does not use the live global budget"
        ),
    ),
    Stage("approval", approval, lambda j, f: "not required"),
    Stage("dry_run", dry_run, lambda j, f: "live"),
)
# What an approved request still has to pass when the approval arrives: everything but the
# stages that judged the episode itself (dedup, condition) and the approval it now has.
AT_APPROVAL = tuple(s for s in STAGES if s.name not in ("dedup", "condition", "approval"))
# What a Slack approval request lists as passed: every stage before the approval gate.
BEFORE_APPROVAL = tuple(s.name for s in STAGES[: [s.name for s in STAGES].index("approval")])
# A ladder's later step with its own approval, approved: the ladder's guards judged it when
# it started (its scope, cooldown and limits), so it passes only what every step passes.
AT_LATER_STEP = tuple(s for s in STAGES if s.name in ("paused", "breaker", "dry_run"))
# What its request lists as passed: the ladder's own guards, judged when it started.
LADDER_STARTED = tuple(f"{name} (at step 1)" for name in BEFORE_APPROVAL if name != "condition")


def first_stop(
    job: Job, facts: Facts, now: datetime, stages: tuple[Stage, ...] = STAGES
) -> Stopped | None:
    """The first stage that stops the job, in order; None: every guard passed."""
    for stage in stages:
        stopped = stage.check(job, facts, now)
        if stopped is not None:
            return stopped
    return None
