"""The whole state store (Store: every role and its lifecycle, implemented by SqliteStore and
PostgresStore), the schema version both open at, and the audit and switch roles. Protocols only:
no SQL and no I/O; a part of the daemon that needs one role takes that role, not Store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from remediator.core.approval import Approval
from remediator.core.audit import DecisionQuery, EventQuery, OperatorEvent
from remediator.errors import StoreError
from remediator.store.records import DecisionRecord
from remediator.store.roles.approvals import ApprovalStore
from remediator.store.roles.decisionlog import DecisionLog
from remediator.store.roles.leases import LeaseStore

# One schema version for both backends; each keeps its own DDL and migrations.
SCHEMA_VERSION = 10


def refuse_newer(where: str, version: int) -> None:
    """A schema written by a newer remediator is never touched: a downgrade stops here."""
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"state store {where} has schema version {version}, newer than this "
            f"remediator understands ({SCHEMA_VERSION}); refusing to touch it"
        )


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


class Store(DecisionLog, AuditLog, ApprovalStore, SwitchStore, LeaseStore, Protocol):
    """The state store: every role, and its lifecycle."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None:
        """Raises StoreError when the store cannot be used."""
        ...
