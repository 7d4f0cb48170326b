"""The approval state machine: pending -> approved | denied | expired | cancelled. Pure.

The first final decision wins; anything after it is refused with the reason, never applied.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Approval:
    id: str
    decision_id: int
    policy: str
    action: str
    target: str
    state: ApprovalState
    requested_at: datetime
    expires_at: datetime
    required: int
    approvers: tuple[str, ...]  # Slack user IDs and api:NAME; empty: any API token (Slack: nobody)
    approved_by: tuple[str, ...] = ()
    decided_by: str | None = None


class ApprovalRefused(Exception):  # noqa: N818  # a verdict, not a failure of the daemon
    """The request cannot change the approval; `conflict` maps to HTTP 409, else 403."""

    def __init__(self, reason: str, *, conflict: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.conflict = conflict


def _check_open(approval: Approval, now: datetime) -> None:
    if approval.state is not ApprovalState.PENDING:
        raise ApprovalRefused(f"approval {approval.id} is already {approval.state}", conflict=True)
    if now >= approval.expires_at:
        raise ApprovalRefused(
            f"approval {approval.id} expired at {approval.expires_at.isoformat()}", conflict=True
        )


def _check_allowed(approval: Approval, who: str) -> None:
    if approval.approvers and who not in approval.approvers:
        raise ApprovalRefused(
            f"{who} is not an approver of policy {approval.policy}", conflict=False
        )


def approve(approval: Approval, who: str, now: datetime) -> Approval:
    """One approver's yes. Enough distinct approvers (two-person rule) make it approved."""
    _check_open(approval, now)
    _check_allowed(approval, who)
    if who in approval.approved_by:
        raise ApprovalRefused(f"{who} has already approved {approval.id}", conflict=True)
    approved_by = (*approval.approved_by, who)
    if len(approved_by) >= approval.required:
        return replace(
            approval, approved_by=approved_by, state=ApprovalState.APPROVED, decided_by=who
        )
    return replace(approval, approved_by=approved_by)


def deny(approval: Approval, who: str, now: datetime) -> Approval:
    _check_open(approval, now)
    _check_allowed(approval, who)
    return replace(approval, state=ApprovalState.DENIED, decided_by=who)


def expire(approval: Approval, now: datetime) -> Approval | None:
    """The expired approval, or None if it is not pending or not yet due."""
    if approval.state is ApprovalState.PENDING and now >= approval.expires_at:
        return replace(approval, state=ApprovalState.EXPIRED)
    return None


def cancel(approval: Approval) -> Approval | None:
    """A resolved alert withdraws its pending request; None if it was already decided."""
    if approval.state is ApprovalState.PENDING:
        return replace(approval, state=ApprovalState.CANCELLED)
    return None
