"""What counts toward the guards, as pure rules: which accounting a policy's actions belong
to, where its window begins after a reset of its limits, which held episodes resume and reset
decide again, how the store's switches become gates, and what an ActionError says about
reaching its target."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from remediator.core.dedup import Claim
from remediator.core.guards import Gates, reopened
from remediator.core.policy import Policy, parse_policies
from remediator.errors import ActionError
from remediator.switches import gates_of

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _policy(guards: str = "{}") -> Policy:
    doc = (
        "name: p\nmatch: {matchers: ['alertname=\"Down\"']}\n"
        "action: {type: docker.restart, params: {container: '{{ labels.c }}'}, "
        f"allow_targets: ['web-*']}}\nguards: {guards}\n"
    )
    policies, problems = parse_policies(doc, "t.yaml")
    assert not problems, problems
    return policies[0]


@pytest.mark.parametrize(
    ("daemon_dry", "policy_dry", "dry"),
    [(False, False, False), (True, False, True), (False, True, True), (True, True, True)],
)
def test_a_policy_acts_dry_when_the_daemon_or_its_own_guard_says_so(
    daemon_dry: bool, policy_dry: bool, dry: bool
) -> None:
    policy = _policy(f"{{dry_run: {str(policy_dry).lower()}}}")
    assert Gates(dry_run=daemon_dry).acts_dry(policy) is dry


@pytest.mark.parametrize(
    ("reset", "since", "begins"),
    [
        (None, NOW - timedelta(hours=1), NOW - timedelta(hours=1)),  # never reset: the window
        (NOW - timedelta(hours=2), NOW - timedelta(hours=1), NOW - timedelta(hours=1)),  # before it
        (NOW - timedelta(minutes=5), NOW - timedelta(hours=1), NOW - timedelta(minutes=5)),
        (NOW, NOW - timedelta(hours=1), NOW),  # just reset: nothing counts yet
    ],
)
def test_a_reset_of_limits_moves_where_counting_begins(
    reset: datetime | None, since: datetime, begins: datetime
) -> None:
    gates = Gates(limits_reset={} if reset is None else {"p": reset})
    assert gates.counts_since("p", since) == begins
    assert gates.counts_since("other", since) == since  # only that policy's


PAUSED = Claim(1, "paused", True, "docker.restart", "web-1")
TRIPPED = Claim(1, "tripped", True, "docker.restart", "web-1")
WAITING = Claim(1, "condition_not_met", True, "docker.restart", "web-1")
SETTLED = Claim(1, "executed", False, "docker.restart", "web-1")


@pytest.mark.parametrize(
    ("claim", "gates", "again"),
    [
        (PAUSED, Gates(), True),  # resumed
        (TRIPPED, Gates(), True),  # breaker reset
        (PAUSED, Gates(paused=True), False),  # still paused
        (TRIPPED, Gates(tripped=frozenset({"p"})), False),  # still tripped
        (TRIPPED, Gates(paused=True), False),  # reset while paused: resume decides it
        (PAUSED, Gates(tripped=frozenset({"p"})), False),  # resumed, but its breaker is open
        (PAUSED, Gates(tripped=frozenset({"q"})), True),  # another policy's breaker
        (WAITING, Gates(), False),  # a condition's: each repeat re-checks it
        (SETTLED, Gates(), False),
        (None, Gates(), False),  # pruned, or decided by nobody
    ],
)
def test_resume_and_reset_decide_again_only_what_a_lifted_gate_held(
    claim: Claim | None, gates: Gates, again: bool
) -> None:
    assert reopened(claim, gates, "p") is again


def test_the_stores_switches_make_the_gates() -> None:
    flags = [
        ("limits:p", json.dumps({"at": NOW.isoformat(), "by": "api:alice"})),
        ("paused", "1"),
        ("tripped:q", "verify failed"),
    ]
    gates = gates_of(flags, dry_run=True)
    assert gates == Gates(
        paused=True, tripped=frozenset({"q"}), dry_run=True, limits_reset={"p": NOW}
    )
    assert gates_of([], dry_run=False) == Gates()


def test_an_unreadable_limits_flag_resets_nothing() -> None:
    assert gates_of([("limits:p", "not json")], dry_run=False).limits_reset == {}


@pytest.mark.parametrize(
    ("retryable", "reached", "says"),
    [
        (False, None, True),  # an answer came back: it may have done something
        (True, None, False),  # retried only because it surely did nothing
        (False, False, False),  # the executor retried on its own, nothing ever left
        (True, True, False),  # retryable wins: a retry is only ever of what did nothing
    ],
)
def test_an_action_error_says_whether_it_reached_its_target(
    retryable: bool, reached: bool | None, says: bool
) -> None:
    assert ActionError("x", retryable=retryable, reached=reached).reached is says
