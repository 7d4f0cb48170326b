"""Cooldown and rate arithmetic, dedup classification and the approval state machine."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from remediator.core import approval as ap
from remediator.core.dedup import Claim, Seen, classify
from remediator.core.durations import parse_rate
from remediator.core.limits import cooldown_reason, rate_reason

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("last", "cooldown", "blocked"),
    [
        (None, timedelta(minutes=10), False),
        (NOW - timedelta(minutes=5), timedelta(minutes=10), True),
        (NOW - timedelta(minutes=10), timedelta(minutes=10), False),  # the boundary is free again
        (NOW - timedelta(minutes=9, seconds=59), timedelta(minutes=10), True),
        (NOW - timedelta(seconds=1), timedelta(0), False),  # no cooldown configured
        (NOW + timedelta(seconds=5), timedelta(minutes=1), True),  # a clock step back still holds
    ],
)
def test_cooldown(last: datetime | None, cooldown: timedelta, blocked: bool) -> None:
    reason = cooldown_reason(last, cooldown, NOW)
    assert (reason is not None) is blocked
    if reason:
        assert "left" in reason


def test_cooldown_reason_says_how_long() -> None:
    reason = cooldown_reason(NOW - timedelta(minutes=4), timedelta(minutes=10), NOW)
    assert reason is not None and "cooldown 10m" in reason and "6m1s left" in reason


@pytest.mark.parametrize(
    ("count", "rate", "blocked"),
    [
        (0, "3/1h", False),
        (2, "3/1h", False),
        (3, "3/1h", True),
        (10, "3/1h", True),
        (0, "0/1h", True),  # zero means never
        (5, None, False),
    ],
)
def test_rate(count: int, rate: str | None, blocked: bool) -> None:
    reason = rate_reason(count, parse_rate(rate) if rate else None, "policy rate_limit")
    assert (reason is not None) is blocked
    if reason:
        assert reason.startswith(f"policy rate_limit {rate}: {count} actions")


SETTLED = Claim(1, "executed", False, "docker.restart", "web-1", dedup_decision_id=2)
PAUSED = Claim(1, "paused", True, "docker.restart", "web-1")


@pytest.mark.parametrize(
    ("claim", "gate_holds", "expected"),
    [
        (None, False, Seen.NEW),
        (None, True, Seen.NEW),
        (SETTLED, False, Seen.REPEAT),
        (SETTLED, True, Seen.REPEAT),  # a settled episode stays settled, paused or not
        (PAUSED, True, Seen.HELD),
        (PAUSED, False, Seen.REDECIDE),  # resumed: a still-firing episode is decided afresh
    ],
)
def test_dedup_classification(claim: Claim | None, gate_holds: bool, expected: Seen) -> None:
    assert classify(claim, gate_holds) is expected


def _approval(required: int = 1, approvers: tuple[str, ...] = ("U1", "U2")) -> ap.Approval:
    return ap.Approval(
        id="a1",
        decision_id=7,
        policy="p",
        action="docker.restart",
        target="web-1",
        state=ap.ApprovalState.PENDING,
        requested_at=NOW,
        expires_at=NOW + timedelta(minutes=15),
        required=required,
        approvers=approvers,
    )


def test_single_approval_approves() -> None:
    done = ap.approve(_approval(), "U1", NOW)
    assert done.state is ap.ApprovalState.APPROVED and done.approved_by == ("U1",)


def test_two_person_rule_needs_two_distinct_approvers() -> None:
    half = ap.approve(_approval(required=2), "U1", NOW)
    assert half.state is ap.ApprovalState.PENDING
    with pytest.raises(ap.ApprovalRefused, match="already approved") as caught:
        ap.approve(half, "U1", NOW)
    assert caught.value.conflict
    done = ap.approve(half, "U2", NOW)
    assert done.state is ap.ApprovalState.APPROVED and done.approved_by == ("U1", "U2")


@pytest.mark.parametrize(
    ("state", "at", "who", "problem", "conflict"),
    [
        (ap.ApprovalState.DENIED, NOW, "U1", "already denied", True),
        (ap.ApprovalState.APPROVED, NOW, "U1", "already approved", True),
        (ap.ApprovalState.CANCELLED, NOW, "U1", "already cancelled", True),
        (ap.ApprovalState.PENDING, NOW + timedelta(minutes=15), "U1", "expired", True),
        (ap.ApprovalState.PENDING, NOW, "U9", "not an approver", False),
    ],
)
def test_first_decision_wins_and_strangers_are_refused(
    state: ap.ApprovalState, at: datetime, who: str, problem: str, conflict: bool
) -> None:
    current = replace(_approval(), state=state)
    for decide in (ap.approve, ap.deny):
        with pytest.raises(ap.ApprovalRefused, match=problem) as caught:
            decide(current, who, at)
        assert caught.value.conflict is conflict


def test_empty_approver_list_lets_the_api_caller_decide() -> None:
    assert ap.deny(_approval(approvers=()), "anyone", NOW).state is ap.ApprovalState.DENIED


def test_expire_and_cancel_only_touch_pending() -> None:
    pending = _approval()
    assert ap.expire(pending, NOW) is None
    expired = ap.expire(pending, NOW + timedelta(minutes=15))
    assert expired is not None and expired.state is ap.ApprovalState.EXPIRED
    assert ap.expire(expired, NOW + timedelta(hours=1)) is None
    cancelled = ap.cancel(pending)
    assert cancelled is not None and cancelled.state is ap.ApprovalState.CANCELLED
    assert ap.cancel(ap.approve(pending, "U1", NOW)) is None
