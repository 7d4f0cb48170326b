"""The Store protocol and its records, implemented by SqliteStore and PostgresStore.

Writes that decide (claims, decisions, actions, approvals) happen inside one transaction
per webhook so the webhook is acknowledged only after they are all durable. Deciding
transactions are serialized (one SQLite writer; one advisory lock on PostgreSQL), so a
claim or a limit read inside one is still true when it commits, on every replica.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from remediator.core.alert import Alert
from remediator.core.approval import Approval, ApprovalState
from remediator.core.dedup import Claim
from remediator.errors import StoreError

# One schema version for both backends; each keeps its own DDL and migrations.
SCHEMA_VERSION = 4
UNFINISHED = ("pending", "running")


def refuse_newer(where: str, version: int) -> None:
    """A schema written by a newer remediator is never touched: a downgrade stops here."""
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"state store {where} has schema version {version}, newer than this "
            f"remediator understands ({SCHEMA_VERSION}); refusing to touch it"
        )


def stale_reason(state: str, owner: str, lease: timedelta | None) -> str:
    if lease is None:
        return f"the daemon stopped while this action was {state}; not re-run"
    holder = f"replica {owner}" if owner else "its replica"
    return (
        f"{holder} did not renew its lease for {lease.total_seconds():g}s (action_lease) "
        f"while this action was {state}; not re-run"
    )


class ClaimConflictError(StoreError):
    """A settled claim would be overwritten: another writer decided this episode first.
    A StoreError, so the webhook answers 503 and the sender's retry is deduplicated."""


def replica_name() -> str:
    """Who holds an action, shown in the audit when its lease runs out."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Interrupted:
    """An action recorded `interrupted`: what the metrics and the log need about it."""

    action_id: int
    policy: str
    type: str
    reason: str


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    id: int
    time: datetime
    policy: str
    source: str
    alertname: str
    fingerprint: str
    episode: str
    action: str
    target: str
    outcome: str
    reason: str
    approval_id: str | None
    repeats: int

    def to_api(self) -> dict[str, object]:
        return {
            "id": self.id,
            "time": self.time.isoformat(),
            "policy": self.policy,
            "source": self.source,
            "alertname": self.alertname,
            "fingerprint": self.fingerprint,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "reason": self.reason,
            "approval_id": self.approval_id,
            "repeats": self.repeats,
        }


def decision_from_row(row: Any, when: Callable[[Any], datetime]) -> DecisionRecord:
    """A decisions row of either backend; `when` reads its time column."""
    return DecisionRecord(
        id=row["id"],
        time=when(row["time"]),
        policy=row["policy"],
        source=row["source"],
        alertname=row["alertname"],
        fingerprint=row["fingerprint"],
        episode=row["episode"],
        action=row["action"],
        target=row["target"],
        outcome=row["outcome"],
        reason=row["reason"],
        approval_id=row["approval_id"],
        repeats=row["repeats"],
    )


def approval_from_row(row: Any, when: Callable[[Any], datetime]) -> Approval:
    """An approvals row of either backend; `when` reads its time columns."""
    return Approval(
        id=row["id"],
        decision_id=row["decision_id"],
        policy=row["policy"],
        action=row["action"],
        target=row["target"],
        state=ApprovalState(row["state"]),
        requested_at=when(row["requested_at"]),
        expires_at=when(row["expires_at"]),
        required=row["required"],
        approvers=tuple(json.loads(row["approvers"])),
        approved_by=tuple(json.loads(row["approved_by"])),
        decided_by=row["decided_by"],
    )


@dataclass(frozen=True, slots=True)
class NewDecision:
    time: datetime
    policy: str
    alert: Alert
    action: str
    target: str
    outcome: str
    reason: str
    approval_id: str | None = None
    repeats: int = 0


class Transaction(Protocol):
    """Reads see the transaction's own writes; nothing is visible to others before commit."""

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
    ) -> int: ...
    async def last_action_at(self, policy: str, target: str) -> datetime | None: ...
    async def count_actions(
        self, since: datetime, *, policy: str | None, dry_run: bool | None
    ) -> int: ...
    async def note_episode(self, alert: Alert, now: datetime) -> None: ...
    async def episode_cycle(self, group: str, cycle: str) -> str:
        """Resolve an Alert.cycle group to its current episode (see core/alert.py)."""
        ...

    async def pending_approvals(self, episode: str) -> list[Approval]: ...
    async def add_approval(
        self,
        approval: Approval,
        episode: str,
        params: Mapping[str, str],
        context: Mapping[str, object] | None = None,
    ) -> None: ...
    async def approval_params(self, approval_id: str) -> dict[str, str]: ...
    async def expired_approvals(self, now: datetime) -> list[Approval]: ...
    async def save_approval(self, approval: Approval) -> None: ...
    async def set_outcome(self, decision_id: int, outcome: str, reason: str) -> None: ...
    async def approval(self, approval_id: str) -> Approval | None: ...


class Store(Protocol):
    # True when no other process can hold this store's actions (SQLite): at start, whatever
    # is unfinished was left by a dead run. False (PostgreSQL): other replicas may be alive.
    exclusive: bool

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None:
        """Raises StoreError when the store cannot be used."""
        ...

    def transaction(self, *, commit: bool = True) -> AbstractAsyncContextManager[Transaction]:
        """One atomic unit; `commit=False` rolls back at the end (simulate's dry read)."""
        ...

    async def add_repeats(self, counts: Mapping[int, int]) -> None: ...
    async def start_action(self, action_id: int, now: datetime) -> bool:
        """pending -> running; False when it is no longer pending (marked interrupted)."""
        ...

    async def finish_action(
        self, action_id: int, outcome: str, reason: str, now: datetime
    ) -> None: ...
    async def heartbeat(self, action_ids: Sequence[int], now: datetime) -> None:
        """Renew the lease of the unfinished actions this process holds."""
        ...

    async def interrupt_stale(self, now: datetime, lease: timedelta | None) -> list[Interrupted]:
        """Mark unfinished actions whose lease is older than `lease` (None: all of them)
        `interrupted`: a dead process's actions are recorded, never re-run. Lease age is
        measured by the store's clock, so replicas' clocks need not agree."""
        ...

    async def interrupt_actions(
        self, action_ids: Sequence[int], now: datetime, reason: str
    ) -> list[Interrupted]:
        """Mark these actions `interrupted` if still unfinished (a drain that timed out)."""
        ...

    async def decisions(self, limit: int) -> list[DecisionRecord]: ...
    async def approvals(self, *, pending_only: bool) -> list[Approval]: ...
    async def approval(self, approval_id: str) -> Approval | None: ...
    async def approval_context(self, approval_id: str) -> dict[str, Any]: ...
    async def approval_message(self, approval_id: str) -> tuple[str, str] | None: ...
    async def set_approval_message(self, approval_id: str, channel: str, ts: str) -> None: ...
    async def unannounced_approvals(self) -> list[Approval]: ...
    async def approval_for_action(self, action_id: int) -> Approval | None: ...
    async def add_approval_event(
        self, approval_id: str, who: str, event: str, detail: str, now: datetime
    ) -> None: ...
    async def approval_events(self, approval_id: str) -> list[dict[str, str]]: ...
    async def get_flag(self, name: str) -> str | None: ...
    async def set_flag(self, name: str, value: str | None) -> None: ...
    async def flags(self, prefix: str) -> Sequence[tuple[str, str]]: ...
