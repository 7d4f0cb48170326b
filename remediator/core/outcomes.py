"""Every outcome a decision can end with: the audit value, the log field and the metric label."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    EXECUTED = "executed"
    FAILED = "failed"
    DRY_RUN = "dry_run"
    DEDUPLICATED = "deduplicated"
    COOLDOWN = "cooldown"
    RATE_LIMITED = "rate_limited"
    OUT_OF_SCOPE = "out_of_scope"
    CONDITION_NOT_MET = "condition_not_met"
    AWAITING_APPROVAL = "awaiting_approval"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    TRIPPED = "tripped"
    RENDER_ERROR = "render_error"
    INTERRUPTED = "interrupted"
    # Not a final outcome: what an audit record shows between "decided to act" and the
    # result. Never counted in remediator_decisions_total; the final outcome replaces it.
    EXECUTING = "executing"


EXECUTING = Outcome.EXECUTING
# What SPEC lists as a decision's outcome: every member but the transient `executing`.
FINAL = frozenset(Outcome) - {Outcome.EXECUTING}

# Outcomes that do not settle an episode: once the daemon is resumed, the breaker reset or
# the condition met, a repeat of the same episode is decided afresh, not deduplicated.
PROVISIONAL = frozenset({Outcome.PAUSED, Outcome.TRIPPED, Outcome.CONDITION_NOT_MET})
