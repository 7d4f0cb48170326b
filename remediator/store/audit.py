"""The audit reads in the shared statements: pages of the decision log and of the operator-events
journal, one decision with what belongs to it, and the journal's writes.

Every page is an index range, never a scan that grows with the history: each filter has an
index led by its column and ending in the id (the page order), and `since` becomes an id
bound read off the time index (the lowest id of a decision at or after it), so whatever the
other filters, the rows looked at lie within the window asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from remediator.core.approval import Approval
from remediator.core.audit import DecisionQuery, EventQuery, OperatorEvent
from remediator.log import redact
from remediator.store.dialect import Backend, Conn, Dialect, Row, Tx
from remediator.store.records import DecisionRecord, approval_from_row, decision_from_row

# Page statements are composed from these constants only; every value is bound (S608).
_DECISION_FILTERS = ("policy", "outcome", "target")
_EVENT_FILTERS = ("who", "act", "policy")


def _page(
    d: Dialect,
    table: str,
    time_column: str,
    equal: Sequence[tuple[str, str | None]],
    since: datetime | None,
    before: int | None,
    limit: int,
) -> tuple[str, list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    for column, value in equal:
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if before is not None:
        where.append("id < ?")
        args.append(before)
    if since is not None:
        # The id bound keeps every index range within the window; the time test stays
        # exact (ids are not strictly in time order: a ladder's later rung, a replica).
        # `id + 0`: min(id) would let PostgreSQL walk the primary key up from the oldest
        # row instead, a scan as long as the history before the window.
        where.append(f"id >= (SELECT min(id + 0) FROM {table} WHERE {time_column} >= ?)")  # noqa: S608  # constants
        where.append(f"{time_column} >= ?")
        args += [d.ts(since), d.ts(since)]
    text = f"SELECT * FROM {table}"  # noqa: S608  # constants
    if where:
        text += " WHERE " + " AND ".join(where)
    return text + " ORDER BY id DESC LIMIT ?", [*args, limit]


def decision_page(d: Dialect, query: DecisionQuery) -> tuple[str, list[Any]]:
    """The statement (with `?` placeholders) and values of one page of the decision log."""
    equal = [(c, getattr(query, c)) for c in _DECISION_FILTERS]
    return _page(d, "decisions", "time", equal, query.since, query.before, query.limit)


def event_page(d: Dialect, query: EventQuery) -> tuple[str, list[Any]]:
    """The statement and values of one page of the operator-events journal."""
    equal = [(c, getattr(query, c)) for c in _EVENT_FILTERS]
    return _page(d, "operator_events", "time", equal, query.since, query.before, query.limit)


async def insert_operator_event(sql: Conn, event: OperatorEvent) -> None:
    """One act in the journal, in the caller's transaction (so it commits with its change)."""
    await sql.run(
        "INSERT INTO operator_events (time, who, act, policy, decision_id, approval_id, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        sql.dialect.ts(event.time),
        event.who,
        event.act,
        event.policy,
        event.decision_id,
        event.approval_id,
        redact(event.detail),
    )


def _event(row: Row, d: Dialect) -> OperatorEvent:
    return OperatorEvent(
        time=d.when(row["time"]),
        who=row["who"],
        act=row["act"],
        policy=row["policy"],
        decision_id=row["decision_id"],
        approval_id=row["approval_id"],
        detail=row["detail"],
        id=row["id"],
    )


class AuditTx(Tx):
    """The journal's part of a deciding transaction (an approval decided by a person)."""

    async def add_operator_event(self, event: OperatorEvent) -> None:
        await insert_operator_event(self.sql, event)


class AuditSql(Backend):
    """roles.store.AuditLog on any Backend."""

    async def decisions(self, query: DecisionQuery | int) -> list[DecisionRecord]:
        """A page of the log, newest first; an int is the newest that many."""
        page = query if isinstance(query, DecisionQuery) else DecisionQuery(limit=query)
        text, args = decision_page(self.dialect, page)
        rows = await self._fetch(text, *args)
        return [decision_from_row(row, self.dialect.when) for row in rows]

    async def decision(self, decision_id: int) -> DecisionRecord | None:
        rows = await self._fetch("SELECT * FROM decisions WHERE id = ?", decision_id)
        return decision_from_row(rows[0], self.dialect.when) if rows else None

    async def approvals_of(self, decision_id: int) -> list[Approval]:
        rows = await self._fetch(
            "SELECT * FROM approvals WHERE decision_id = ? ORDER BY requested_at", decision_id
        )
        return [approval_from_row(row, self.dialect.when) for row in rows]

    async def operator_events(self, query: EventQuery) -> list[OperatorEvent]:
        text, args = event_page(self.dialect, query)
        rows = await self._fetch(text, *args)
        return [_event(row, self.dialect) for row in rows]

    async def operator_events_of(self, decision_id: int) -> list[OperatorEvent]:
        rows = await self._fetch(
            "SELECT * FROM operator_events WHERE decision_id = ? ORDER BY id", decision_id
        )
        return [_event(row, self.dialect) for row in rows]

    async def add_operator_event(self, event: OperatorEvent) -> None:
        async with self._bookkeeping() as sql:
            await insert_operator_event(sql, event)
