"""The decision log's role: what one deciding transaction holds (Transaction and its parts) and
the log outside one (DecisionLog), with the state names its statements test. Protocols and
plain data only: no SQL and no I/O (the statements are store/decisiontx.py's and its siblings')."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from remediator.core.alert import Alert
from remediator.core.audit import OperatorEvent
from remediator.core.dedup import Claim
from remediator.core.judge import Decided, Ids
from remediator.core.ladder import Rung
from remediator.core.outcomes import EXECUTING, PROVISIONAL, Outcome
from remediator.core.records import NewDecision
from remediator.core.verify import Checks
from remediator.errors import StoreError
from remediator.store.records import ActionRecord
from remediator.store.roles.approvals import ApprovalTransaction

UNFINISHED = ("pending", "running")
# Results of an action that never ran because the kill switch or its breaker held it when its
# turn came: like a decision held at the door, they leave the episode open (provisional).
HELD = ("paused", "tripped")
# Decision outcomes set_outcome may still replace: a request waiting for a human and a
# decision held by a gate that may lift. `executing` may change too, but only once no action
# of the decision is unfinished: until then the runner's finish_action owns it. Every other
# outcome is settled history.
OPEN_OUTCOMES = (Outcome.AWAITING_APPROVAL.value, *sorted(o.value for o in PROVISIONAL))
# The one decision outcome an action's result (or its interruption) replaces.
ACTING = EXECUTING


@dataclass(frozen=True, slots=True)
class WindowCount:
    """Actions created after `since` (of `policy`, of kind `dry_run`; None: any), counted
    up to `limit`. An action that provably never reached its target is never counted."""

    since: datetime
    policy: str | None = None
    dry_run: bool | None = None
    limit: int | None = None


@dataclass(slots=True)
class FactRows:
    """What Transaction.facts read."""

    claims: dict[tuple[str, str], Claim] = field(default_factory=dict)
    # The last action that reached (or may have reached) its target, of either kind; and
    # the last live one: dry runs count toward dry-run accounting only.
    last_actions: dict[tuple[str, str], datetime] = field(default_factory=dict)
    last_live_actions: dict[tuple[str, str], datetime] = field(default_factory=dict)
    counts: list[int] = field(default_factory=list)
    # Every switch (pause, breakers), when asked for: read in the same trip.
    flags: list[tuple[str, str]] = field(default_factory=list)


class ClaimConflictError(StoreError):
    """A settled claim would be overwritten: another writer decided this episode first.
    A StoreError, so the webhook answers 503 and the sender's retry is deduplicated."""


class DecisionTransaction(Protocol):
    """The decision log's part of a transaction: claims, decisions, actions, episodes."""

    async def claim(self, policy: str, episode: str) -> Claim | None: ...
    async def put_claim(self, policy: str, episode: str, claim: Claim) -> None:
        """Raises ClaimConflictError rather than replace a settled claim of another decision."""
        ...

    async def flags(self) -> list[tuple[str, str]]:
        """Every switch (pause, breakers) as this transaction sees it."""
        ...

    async def add_decision(self, decision: NewDecision) -> int: ...
    async def add_action(
        self,
        decision_id: int,
        policy: str,
        action: str,
        target: str,
        params: Mapping[str, str],
        *,
        dry_run: bool,
        now: datetime,
        verify: Checks | None = None,
        ladder: Sequence[Rung] = (),
    ) -> int:
        """A new action held (owned) by this store's replica: only it starts, renews and
        finishes it. `verify` and, for a ladder's rung, the `ladder` after it are stored
        beside the params (store/records.params_json)."""
        ...

    async def last_action_at(
        self, policy: str, target: str, *, dry_run: bool | None = None
    ) -> datetime | None:
        """When the last action of (policy, target) of kind `dry_run` (None: any) that may
        have reached its target was created."""
        ...

    async def count_actions(
        self, since: datetime, *, policy: str | None, dry_run: bool | None, limit: int | None = None
    ) -> int:
        """Actions created after `since` that may have reached their target, counted up to
        `limit` (None: all)."""
        ...

    # One batch (core/judge.py): its facts read in a few statements, its rows in one each.
    async def facts(
        self,
        claims: Collection[tuple[str, str]],
        last_actions: Collection[tuple[str, str]],
        counts: Sequence[WindowCount],
        *,
        flags: bool = False,
    ) -> FactRows:
        """The claims of these (policy, episode) keys that exist, when the last action of
        each (policy, target) that has one was created (any kind, and live), and these window
        counts (as count_actions), and with `flags` every switch (as `flags()`): in one round
        trip where the driver allows (SQLite: one trip to its thread). Actions that provably
        never reached their target are left out."""
        ...

    async def reserve_ids(self, decisions: int, actions: int) -> Ids:
        """At least this many decision and action ids, unique and never used before."""
        ...

    async def write(self, decided: Decided, now: datetime) -> None:
        """Every row of one judgement: sightings, decisions, claims (ClaimConflictError
        rather than replace a settled claim of another decision), actions, approval
        requests, cancellations. The transaction's last statement: a backend may end the
        transaction (commit, or roll back if it was opened not to commit) in the same round
        trip, so nothing may run in it afterwards."""
        ...

    async def note_episode(self, alert: Alert, now: datetime) -> None:
        """Record a sighting: the first one is kept, `now` is the episode's last-seen time
        (what keeps its claim from a prune), a resolve stamps its end (only the first)."""
        ...

    async def episode_cycle(self, group: str, cycle: str) -> str:
        """Resolve an Alert.cycle group to its current episode (see core/alert.py)."""
        ...

    async def set_outcome(self, decision_id: int, outcome: str, reason: str) -> bool:
        """Replace the decision's outcome and reason only while it may still change: it is
        awaiting_approval, provisional (paused, tripped, condition_not_met), or executing
        with no unfinished action (an action's result is finish_action's). False, with
        nothing written, when the decision is settled or unknown."""
        ...


class AuditTransaction(Protocol):
    """The operator-events journal's part of a transaction."""

    async def add_operator_event(self, event: OperatorEvent) -> None:
        """Record an operator's act with the change it made: both commit, or neither."""
        ...


# Writes that decide (claims, decisions, actions, approvals) happen inside one transaction
# per webhook so the webhook is acknowledged only after they are all durable. Deciding
# transactions are serialized (one SQLite writer; one advisory lock on PostgreSQL), so a
# claim or a limit read inside one is still true when it commits, on every replica.
class Transaction(DecisionTransaction, ApprovalTransaction, AuditTransaction, Protocol):
    """Reads see the transaction's own writes; nothing is visible to others before commit.

    Every reason written here is stored redacted (log.redact). A raised error rolls the
    whole transaction back."""


class DecisionLog(Protocol):
    """Deciding transactions, and the decision log's bookkeeping and audit outside one."""

    def transaction(self, *, commit: bool = True) -> AbstractAsyncContextManager[Transaction]:
        """One atomic unit; `commit=False` rolls back at the end (simulate's dry read)."""
        ...

    async def add_repeats(self, counts: Mapping[int, int], now: datetime | None = None) -> None:
        """Add repeat counts to decisions, and mark their episodes seen at `now` (default:
        the store's clock): repeats answered from memory keep an episode's claim alive."""
        ...

    async def prune(self, before: datetime) -> dict[str, int]:
        """Delete audit rows older than `before` in short batches (store/prune.py); returns
        how many rows of each table went (keys: PRUNE_TABLES). Never a pending approval or
        an unfinished action, nor their decision; never what dedup still needs: the claim of
        an episode seen since `before` (note_episode, add_repeats), the decisions it names,
        the episode row and its cycle."""
        ...

    async def held_episodes(self, policy: str | None = None) -> list[tuple[str, Alert]]:
        """(policy, alert) of every episode a pause or breaker holds (a provisional `paused` or
        `tripped` claim) that has not resolved, oldest first, `policy`'s only if given: the
        alert as first recorded (labels, annotations), status firing. Episodes recorded before
        annotations were kept (schema 10) are left out: re-rendered without them, a template
        that uses one would fail; their next repeat decides them."""
        ...

    async def actions_of(self, decision_id: int) -> list[ActionRecord]:
        """The decision's actions (one, or none), oldest first, params without secrets."""
        ...
