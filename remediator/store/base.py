"""The Store protocol and its records. A PostgreSQL store implements the same protocol.

Writes that decide (claims, decisions, actions, approvals) happen inside one transaction
per webhook so the webhook is acknowledged only after they are all durable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from remediator.core.alert import Alert
from remediator.core.approval import Approval
from remediator.core.dedup import Claim


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
    async def put_claim(self, policy: str, episode: str, claim: Claim) -> None: ...
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
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None:
        """Raises StoreError when the store cannot be used."""
        ...

    def transaction(self, *, commit: bool = True) -> AbstractAsyncContextManager[Transaction]:
        """One atomic unit; `commit=False` rolls back at the end (simulate's dry read)."""
        ...

    async def add_repeats(self, counts: Mapping[int, int]) -> None: ...
    async def start_action(self, action_id: int, now: datetime) -> None: ...
    async def finish_action(
        self, action_id: int, outcome: str, reason: str, now: datetime
    ) -> None: ...
    async def interrupt_unfinished(self, now: datetime) -> list[int]:
        """Mark actions a dead process left pending/running `interrupted`; their ids."""
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
