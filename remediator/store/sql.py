"""One SQL layer for both backends: the store's roles assembled into SqlTransaction and SqlStore.

The statements live with their role (decisiontx.py, facts.py, decisionlog.py, approvals.py,
switches.py, leases.py), written once with `?` placeholders; store/dialect.py holds what
SQLite and PostgreSQL spell differently. A backend (sqlite*.py, postgres*.py) adds its
connections, schema and migrations, its transactions and locks, and the two statements it
writes its own way: reserving ids and writing a batch's claims.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime

from remediator.core.dedup import Claim
from remediator.core.judge import Decided, Ids
from remediator.core.outcomes import Outcome
from remediator.store.approvals import ApprovalsSql, ApprovalTx
from remediator.store.audit import AuditSql, AuditTx
from remediator.store.decisionlog import DecisionLogSql
from remediator.store.decisiontx import (
    ADD_ACTIONS,
    ADD_DECISIONS,
    COUNT_ACTIONS,
    NOTE_EPISODE,
    PUT_CLAIM,
    DecisionTx,
)
from remediator.store.facts import FactsTx
from remediator.store.leases import LeasesSql
from remediator.store.roles.approvals import SYSTEM
from remediator.store.roles.decisionlog import ClaimConflictError
from remediator.store.rows import action_row, claim_row, counter_rows, decision_row, sighting_row
from remediator.store.switches import SwitchesSql, SwitchesTx


class SqlTransaction(DecisionTx, FactsTx, ApprovalTx, SwitchesTx, AuditTx, ABC):
    """roles.decisionlog.Transaction on a backend's connection."""

    # True: the driver counts an executemany's rows, so a batch's claims go with its other
    # rows (one round trip) and are checked by count; False: _put_claims writes them.
    claims_in_batch = False

    @abstractmethod
    async def reserve_ids(self, decisions: int, actions: int) -> Ids:
        """See roles.decisionlog.DecisionTransaction.reserve_ids."""

    @abstractmethod
    async def _put_claims(self, claims: Mapping[tuple[str, str], Claim]) -> int:
        """Upsert these claims (decisiontx.CLAIM_UPSERT) in one round trip; how many were
        written (a settled claim of another decision is not)."""

    async def write(self, decided: Decided, now: datetime) -> None:
        """Every row of one judgement, one statement per table (executemany; pipelined on
        PostgreSQL)."""
        steps, claims_at = self._write_steps(decided, now)
        counts = await self.sql.run_many_all(steps) if steps else []
        if decided.claims:
            written = counts[claims_at] if claims_at is not None else None
            if written is None:
                written = await self._put_claims(decided.claims)
            if written != len(decided.claims):
                raise ClaimConflictError("an episode of this batch is already decided")
        await self._write_requests(decided, now)

    def _write_steps(
        self, decided: Decided, now: datetime
    ) -> tuple[list[tuple[str, list[tuple[object, ...]]]], int | None]:
        """The batch's rows, one executemany step per table, and which step holds the claims
        (None: _put_claims writes them)."""
        d = self.sql.dialect
        steps: list[tuple[str, list[tuple[object, ...]]]] = []
        if decided.sightings:
            steps.append((NOTE_EPISODE, [sighting_row(d, a, now) for a in decided.sightings]))
        if decided.decisions:
            steps.append((ADD_DECISIONS, [(x.id, *decision_row(d, x)) for x in decided.decisions]))
        claims_at = None
        if decided.claims and self.claims_in_batch:
            claims_at = len(steps)
            steps.append((PUT_CLAIM, [claim_row(k, c) for k, c in decided.claims.items()]))
        if decided.actions:
            steps.append((ADD_ACTIONS, [action_row(d, a, self.owner) for a in decided.actions]))
            counted = [(a.policy, a.dry_run, a.time) for a in decided.actions]
            steps.append((COUNT_ACTIONS, counter_rows(d, counted)))
        return steps, claims_at

    async def _write_requests(self, decided: Decided, now: datetime) -> None:
        """A batch's approval requests and the approvals its resolved alerts cancelled (each
        cancellation an entry of its approval's history)."""
        for row in decided.approval_rows:
            await self.add_approval(
                row.approval, row.episode, row.params, row.context, row.verify, row.ladder
            )
        for cancelled in decided.cancelled:
            await self.save_approval(cancelled)
            why = "the alert resolved before a decision"
            await self.set_outcome(cancelled.decision_id, Outcome.CANCELLED, why)
            await self.add_approval_event(cancelled.id, SYSTEM, "cancelled", why, now)


class SqlStore(DecisionLogSql, AuditSql, ApprovalsSql, SwitchesSql, LeasesSql):
    """roles.store.Store in the shared statements; a backend adds open, close, ping and the
    transactions, connections and target leases of dialect.Backend."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> None: ...
