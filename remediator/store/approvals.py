"""Approvals in the shared statements: requests and their state inside a deciding transaction,
and their reads, Slack message and events outside one.

A request's state only ever leaves `pending` in an UPDATE that names `pending`: the first
decision wins, a stale one raises ApprovalConflictError and rolls its transaction back.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from remediator.core.approval import Approval
from remediator.core.ladder import Rung
from remediator.core.verify import Checks
from remediator.log import redact
from remediator.store.dialect import Backend, Conn, Row, Tx, iso
from remediator.store.records import (
    approval_from_row,
    ladder_of,
    params_from_json,
    params_json,
    redacted,
    rung_of,
)
from remediator.store.roles.approvals import ApprovalConflictError


async def insert_approval(
    sql: Conn,
    approval: Approval,
    episode: str,
    params: str,
    context: Mapping[str, object] | None,
) -> None:
    """One approval request's row; `params` as records.params_json wrote them."""
    d = sql.dialect
    await sql.run(
        "INSERT INTO approvals (id, decision_id, policy, action, target, params, episode, "
        "context, state, requested_at, expires_at, required, approvers, approved_by, "
        "decided_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        approval.id,
        approval.decision_id,
        approval.policy,
        approval.action,
        approval.target,
        params,
        episode,
        json.dumps(redacted(dict(context or {}))),
        approval.state.value,
        d.ts(approval.requested_at),
        d.ts(approval.expires_at),
        approval.required,
        json.dumps(list(approval.approvers)),
        json.dumps(list(approval.approved_by)),
        approval.decided_by,
    )


async def insert_approval_event(
    sql: Conn, approval_id: str, who: str, event: str, detail: str, now: datetime
) -> None:
    """One entry of an approval's history (appended, never updated), in the caller's
    transaction."""
    await sql.run(
        "INSERT INTO approval_events (time, approval_id, who, event, detail) "
        "VALUES (?, ?, ?, ?, ?)",
        sql.dialect.ts(now),
        approval_id,
        who,
        event,
        redact(detail),
    )


class ApprovalTx(Tx):
    """roles.approvals.ApprovalTransaction on any backend's connection."""

    def _approval(self, row: Row) -> Approval:
        return approval_from_row(row, self.sql.dialect.when)

    async def pending_for(self, episodes: Collection[str]) -> dict[str, list[Approval]]:
        rows = await self.sql.rows(
            "SELECT * FROM approvals WHERE state = 'pending' AND episode {in_texts}",
            self.sql.dialect.keys(sorted(set(episodes))),
        )
        found: dict[str, list[Approval]] = {}
        for row in rows:
            found.setdefault(row["episode"], []).append(self._approval(row))
        return found

    async def pending_approvals(self, episode: str) -> list[Approval]:
        rows = await self.sql.rows(
            "SELECT * FROM approvals WHERE episode = ? AND state = 'pending'", episode
        )
        return [self._approval(row) for row in rows]

    async def add_approval(
        self,
        approval: Approval,
        episode: str,
        params: Mapping[str, str],
        context: Mapping[str, object] | None = None,
        verify: Checks | None = None,
        ladder: Sequence[Rung] = (),
    ) -> None:
        await insert_approval(
            self.sql, approval, episode, params_json(params, verify, ladder), context
        )

    async def save_approval(self, approval: Approval) -> None:
        changed = await self.sql.run(
            "UPDATE approvals SET state = ?, approved_by = ?, decided_by = ? "
            "WHERE id = ? AND state = 'pending'",
            approval.state.value,
            json.dumps(list(approval.approved_by)),
            approval.decided_by,
            approval.id,
        )
        if changed != 1:
            state = await self.sql.value("SELECT state FROM approvals WHERE id = ?", approval.id)
            if state is None:
                raise ApprovalConflictError(f"approval {approval.id} does not exist (any more)")
            raise ApprovalConflictError(f"approval {approval.id} is already {state}")

    async def approval(self, approval_id: str) -> Approval | None:
        row = await self.sql.row("SELECT * FROM approvals WHERE id = ?", approval_id)
        return self._approval(row) if row else None

    async def add_approval_event(
        self, approval_id: str, who: str, event: str, detail: str, now: datetime
    ) -> None:
        await insert_approval_event(self.sql, approval_id, who, event, detail, now)

    async def approval_params(self, approval_id: str) -> tuple[dict[str, str], Checks | None]:
        raw = await self.sql.value("SELECT params FROM approvals WHERE id = ?", approval_id)
        return params_from_json(raw)

    async def approval_ladder(self, approval_id: str) -> tuple[Rung | None, tuple[Rung, ...]]:
        raw = await self.sql.value("SELECT params FROM approvals WHERE id = ?", approval_id)
        return rung_of(raw), ladder_of(raw)

    async def expired_approvals(self, now: datetime) -> list[Approval]:
        rows = await self.sql.rows(
            "SELECT * FROM approvals WHERE state = 'pending' AND expires_at <= ?",
            self.sql.dialect.ts(now),
        )
        return [self._approval(row) for row in rows]


class ApprovalsSql(Backend):
    """roles.approvals.ApprovalStore on any Backend: reads outside a transaction, bookkeeping
    writes."""

    async def _approvals(self, sql: str, *args: Any) -> list[Approval]:
        return [approval_from_row(row, self.dialect.when) for row in await self._fetch(sql, *args)]

    async def approvals(self, *, pending_only: bool) -> list[Approval]:
        where = " WHERE state = 'pending'" if pending_only else ""
        return await self._approvals(f"SELECT * FROM approvals{where} ORDER BY requested_at")  # noqa: S608  # a constant, not input

    async def approval(self, approval_id: str) -> Approval | None:
        found = await self._approvals("SELECT * FROM approvals WHERE id = ?", approval_id)
        return found[0] if found else None

    async def approval_context(self, approval_id: str) -> dict[str, Any]:
        rows = await self._fetch("SELECT context FROM approvals WHERE id = ?", approval_id)
        return dict(json.loads(rows[0][0])) if rows else {}

    async def approval_message(self, approval_id: str) -> tuple[str, str] | None:
        rows = await self._fetch(
            "SELECT slack_channel, slack_ts FROM approvals WHERE id = ?", approval_id
        )
        return (rows[0][0], rows[0][1]) if rows and rows[0][0] and rows[0][1] else None

    async def set_approval_message(self, approval_id: str, channel: str, ts: str) -> None:
        async with self._bookkeeping() as sql:
            await sql.run(
                "UPDATE approvals SET slack_channel = ?, slack_ts = ? WHERE id = ?",
                channel,
                ts,
                approval_id,
            )

    async def unannounced_approvals(self) -> list[Approval]:
        return await self._approvals(
            "SELECT * FROM approvals WHERE state = 'pending' AND slack_ts IS NULL"
        )

    async def approval_for_action(self, action_id: int) -> Approval | None:
        found = await self._approvals(
            "SELECT approvals.* FROM approvals JOIN actions "
            "ON actions.decision_id = approvals.decision_id WHERE actions.id = ?",
            action_id,
        )
        return found[0] if found else None

    async def add_approval_event(
        self, approval_id: str, who: str, event: str, detail: str, now: datetime
    ) -> None:
        async with self._bookkeeping() as sql:
            await insert_approval_event(sql, approval_id, who, event, detail, now)

    async def approval_events(self, approval_id: str) -> list[dict[str, str]]:
        rows = await self._fetch(
            "SELECT time, who, event, detail FROM approval_events WHERE approval_id = ? "
            "ORDER BY id",
            approval_id,
        )
        return [
            {"time": iso(self.dialect.when(r[0])), "who": r[1], "event": r[2], "detail": r[3]}
            for r in rows
        ]
