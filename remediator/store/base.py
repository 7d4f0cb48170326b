"""The Store protocol, by role, implemented by SqliteStore and PostgresStore (store/sql.py).

A part of the daemon that needs one role of the store takes that role (DecisionLog,
AuditLog, ApprovalStore, SwitchStore, LeaseStore); `Store` is all of them, with the lifecycle.

Writes that decide (claims, decisions, actions, approvals) happen inside one transaction
per webhook so the webhook is acknowledged only after they are all durable. Deciding
transactions are serialized (one SQLite writer; one advisory lock on PostgreSQL), so a
claim or a limit read inside one is still true when it commits, on every replica.

Every state change names the state it expects (and, for an action, the replica that holds
it) in its own UPDATE, so a stale caller changes nothing instead of overwriting what another
replica settled; every reason and detail is redacted (log.redact) before it is stored.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from remediator.core.alert import Alert
from remediator.core.approval import Approval, ApprovalRefused
from remediator.core.audit import DecisionQuery, EventQuery, OperatorEvent
from remediator.core.dedup import Claim
from remediator.core.judge import Decided, Ids
from remediator.core.ladder import Rung
from remediator.core.outcomes import EXECUTING, PROVISIONAL, Outcome
from remediator.core.records import NewDecision
from remediator.core.verify import Checks
from remediator.errors import StoreError
from remediator.store.records import ActionRecord, DecisionRecord, Interrupted

# Re-exported: callers import the store's records and errors from here.
__all__ = [
    "ACTING",
    "HELD",
    "OPEN_OUTCOMES",
    "SCHEMA_VERSION",
    "SYSTEM",
    "UNFINISHED",
    "ActionRecord",
    "ApprovalConflictError",
    "ApprovalStore",
    "ApprovalTransaction",
    "AuditLog",
    "AuditTransaction",
    "ClaimConflictError",
    "DecisionLog",
    "DecisionRecord",
    "DecisionTransaction",
    "Interrupted",
    "LeaseStore",
    "NewDecision",
    "Store",
    "SwitchStore",
    "Transaction",
    "refuse_newer",
]

# One schema version for both backends; each keeps its own DDL and migrations.
SCHEMA_VERSION = 10
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
# Who an approval's history names when no person acted: an expiry, a resolved alert.
SYSTEM = "remediator"


def refuse_newer(where: str, version: int) -> None:
    """A schema written by a newer remediator is never touched: a downgrade stops here."""
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"state store {where} has schema version {version}, newer than this "
            f"remediator understands ({SCHEMA_VERSION}); refusing to touch it"
        )


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


class ApprovalConflictError(StoreError, ApprovalRefused):
    """save_approval found the approval no longer pending (another replica, click or the
    expiry decided it first): the transaction rolls back whole, nothing of it commits. It is
    also an ApprovalRefused with `conflict`, so the API answers 409 and Slack tells the
    clicker "nothing changed", exactly as for a refusal the engine saw itself."""

    def __init__(self, reason: str) -> None:
        ApprovalRefused.__init__(self, reason, conflict=True)


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


class ApprovalTransaction(Protocol):
    """The approvals' part of a transaction: requests and their state."""

    async def pending_for(self, episodes: Collection[str]) -> dict[str, list[Approval]]:
        """The pending approvals of these episodes."""
        ...

    async def pending_approvals(self, episode: str) -> list[Approval]: ...
    async def add_approval(
        self,
        approval: Approval,
        episode: str,
        params: Mapping[str, str],
        context: Mapping[str, object] | None = None,
        verify: Checks | None = None,
        ladder: Sequence[Rung] = (),
    ) -> None:
        """`context` (what the Slack message shows) is stored with every string redacted;
        `verify`, the rendered check the approved action runs with, and a ladder's later
        rungs beside the params."""
        ...

    async def approval_ladder(self, approval_id: str) -> tuple[Rung | None, tuple[Rung, ...]]:
        """The later step a ladder's request asks for (None: its first step, or a policy of
        one action) and the rungs after the one asked for (none for any other policy)."""
        ...

    async def approval_params(self, approval_id: str) -> tuple[dict[str, str], Checks | None]:
        """The params and the verify check stored with the request (also as the version
        before stored them, the check among the params)."""
        ...

    async def expired_approvals(self, now: datetime) -> list[Approval]: ...
    async def save_approval(self, approval: Approval) -> None:
        """Write `approval`'s state, approvers and decider, only over a `pending` row (a
        partial approval stays pending). Raises ApprovalConflictError (a StoreError and an
        ApprovalRefused with conflict: HTTP 409) when the stored row is no longer pending or
        gone: the first decision wins, a stale one rolls back its whole transaction."""
        ...

    async def approval(self, approval_id: str) -> Approval | None: ...
    async def add_approval_event(
        self, approval_id: str, who: str, event: str, detail: str, now: datetime
    ) -> None:
        """An entry of the approval's history, committed with the change it records: who
        (a person, or `remediator` for an expiry or a cancellation), when, what; `detail`
        (a note, a reason) stored redacted. Never updated or deleted but by retention."""
        ...


class AuditTransaction(Protocol):
    """The operator-events journal's part of a transaction."""

    async def add_operator_event(self, event: OperatorEvent) -> None:
        """Record an operator's act with the change it made: both commit, or neither."""
        ...


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


class AuditLog(Protocol):
    """The audit API's reads, and the operator-events journal (store/audit.py)."""

    async def decisions(self, query: DecisionQuery | int) -> list[DecisionRecord]:
        """A page of the decision log, newest first (an int: the newest that many)."""
        ...

    async def decision(self, decision_id: int) -> DecisionRecord | None: ...
    async def approvals_of(self, decision_id: int) -> list[Approval]:
        """The approval requests of this decision (one, or none)."""
        ...

    async def operator_events(self, query: EventQuery) -> list[OperatorEvent]:
        """A page of the journal, newest first."""
        ...

    async def operator_events_of(self, decision_id: int) -> list[OperatorEvent]: ...
    async def add_operator_event(self, event: OperatorEvent) -> None:
        """An act that changes nothing in the store itself (a reload), on its own."""
        ...


class ApprovalStore(Protocol):
    """Approvals outside a deciding transaction: reads, their Slack message, their events."""

    async def approvals(self, *, pending_only: bool) -> list[Approval]: ...
    async def approval(self, approval_id: str) -> Approval | None: ...
    async def approval_context(self, approval_id: str) -> dict[str, Any]: ...
    async def approval_message(self, approval_id: str) -> tuple[str, str] | None: ...
    async def set_approval_message(self, approval_id: str, channel: str, ts: str) -> None: ...
    async def unannounced_approvals(self) -> list[Approval]: ...
    async def approval_for_action(self, action_id: int) -> Approval | None: ...
    async def add_approval_event(
        self, approval_id: str, who: str, event: str, detail: str, now: datetime
    ) -> None:
        """`detail` is stored redacted."""
        ...

    async def approval_events(self, approval_id: str) -> list[dict[str, str]]: ...


class SwitchStore(Protocol):
    """Named switches (the kill switch, breakers). Setting one is a deciding transaction: once
    it commits, no decision still in flight on any replica acts on the state before it."""

    async def get_flag(self, name: str) -> str | None: ...
    async def set_flag(
        self, name: str, value: str | None, act: OperatorEvent | None = None
    ) -> None:
        """Set (None: clear) a switch; `act`, the operator's act that set it, is recorded in
        the same transaction."""
        ...

    async def flags(self, prefix: str) -> Sequence[tuple[str, str]]: ...


class LeaseStore(Protocol):
    """Actions carry an owner (the replica whose store added them): only the owner moves them
    pending -> running -> result, renews their lease or records its own drain; any replica
    records an expired lease `interrupted`. Targets are leased for one action at a time."""

    # True when no other process can hold this store's actions (SQLite): at start, whatever
    # is unfinished was left by a dead run. False (PostgreSQL): other replicas may be alive.
    exclusive: bool

    def target_lease(self, key: str) -> AbstractAsyncContextManager[None]:
        """Held while an action on target `key` runs and is verified: another replica's
        action on the same target waits for it (a no-op where one process owns the store).
        Raises StoreError when the store cannot be reached."""
        ...

    async def start_action(self, action_id: int, now: datetime) -> bool:
        """pending -> running, only for an action this store owns; False when it is no longer
        pending (marked interrupted) or is another replica's."""
        ...

    async def finish_action(
        self,
        action_id: int,
        outcome: str,
        reason: str,
        now: datetime,
        result: Mapping[str, str] | None = None,
        *,
        reached: bool = True,
    ) -> bool:
        """running -> `outcome`, only for an action this store owns, and its decision (while
        it is still executing) with it; `result`: what the executor reports beside the reason
        (docker.exec: exit codes and output tails), kept with the action, secrets redacted.
        `reached=False`: it provably never reached its target (refused before sending, or held
        when its turn came): from then on it counts toward no cooldown or rate limit.
        One exception: a result of ours that comes back after another replica recorded the
        action `interrupted` (our lease lapsed while it ran) replaces `interrupted`, so the
        audit ends with what really happened. False, with nothing written, for anything
        else: another replica's action, one never started, one already finished."""
        ...

    async def finish_and_escalate(
        self,
        action_id: int,
        outcome: str,
        reason: str,
        now: datetime,
        result: Mapping[str, str] | None,
        rung: Rung,
        later: Sequence[Rung],
        *,
        reached: bool = True,
    ) -> int | None:
        """finish_action of a ladder's rung that failed, and in the same transaction the
        next rung's decision (`step`) and pending action, owned here, with the episode's
        claim moved to it: a crash in between leaves one of them unfinished, recorded
        `interrupted` at the next start, never a rung run twice. The new action's id, or
        None (nothing written) where finish_action would say False."""
        ...

    async def finish_and_request(
        self,
        action_id: int,
        outcome: str,
        reason: str,
        now: datetime,
        result: Mapping[str, str] | None,
        rung: Rung,
        later: Sequence[Rung],
        request: Approval,
        context: Mapping[str, object],
        *,
        reached: bool = True,
    ) -> Approval | None:
        """As finish_and_escalate, for a next rung that carries its own approval: in the
        same transaction the rung's decision (`awaiting_approval`), the approval `request`
        (its decision_id filled in; the rung and the rungs after it kept with it, `context`
        as add_approval's) and the episode's claim moved to it. The request as stored, or
        None (nothing written) where finish_action would say False."""
        ...

    async def heartbeat(self, action_ids: Sequence[int], now: datetime) -> None:
        """Renew the lease of the unfinished actions this store owns (others' are skipped)."""
        ...

    async def interrupt_stale(self, now: datetime, lease: timedelta | None) -> list[Interrupted]:
        """Mark unfinished actions whose lease is older than `lease` (None: all of them)
        `interrupted`, whoever owns them: a dead process's actions are recorded, never re-run
        (one that never started counts toward no cooldown or rate limit).
        Lease age is measured by the store's clock, so replicas' clocks need not agree."""
        ...

    async def interrupt_actions(
        self, action_ids: Sequence[int], now: datetime, reason: str
    ) -> list[Interrupted]:
        """Mark these actions `interrupted` if still unfinished and this store's own (a drain
        that timed out)."""
        ...


class Store(DecisionLog, AuditLog, ApprovalStore, SwitchStore, LeaseStore, Protocol):
    """The state store: every role, and its lifecycle."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None:
        """Raises StoreError when the store cannot be used."""
        ...
