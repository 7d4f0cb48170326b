"""Action leases in the shared statements: start, finish, heartbeat and interruption.

Every change names the state it expects and, but for an expired lease, the replica that owns
the action, in its own UPDATE: a stale caller changes nothing instead of overwriting what
another replica settled. Lease ages are read by the store's clock (store/dialect.py), so
replicas' clocks need not agree. Target leases are each backend's own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from remediator.core.approval import Approval
from remediator.core.ladder import Rung
from remediator.core.outcomes import Outcome
from remediator.log import redact
from remediator.store.approvals import insert_approval
from remediator.store.decisiontx import COUNT_ACTIONS, unreached
from remediator.store.dialect import Backend, Conn, Row, sql_list
from remediator.store.records import Interrupted, params_json, stale_reason
from remediator.store.roles.decisionlog import ACTING, HELD, UNFINISHED
from remediator.store.rows import counter_rows

# Statements are composed only from this module's constants; every value is bound (S608).
_UNFINISHED = sql_list(UNFINISHED)
_OF_ACTION = "(SELECT decision_id FROM actions WHERE id = ?)"


class LeasesSql(Backend):
    """roles.leases.LeaseStore on any Backend, but for target_lease (the backend's)."""

    async def start_action(self, action_id: int, now: datetime) -> bool:
        async with self._bookkeeping() as sql:
            changed = await sql.run(
                "UPDATE actions SET heartbeat_at = {clock}, state = 'running', started_at = ? "
                "WHERE id = ? AND state = 'pending' AND owner = ?",
                *sql.dialect.clock(now),
                sql.dialect.ts(now),
                action_id,
                self._owner,
            )
        return changed == 1

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
        async with self._bookkeeping() as sql:
            return await self._finish(sql, action_id, outcome, reason, now, result, reached)

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
        async with self._bookkeeping() as sql:
            if not await self._finish(sql, action_id, outcome, reason, now, result, reached):
                return None
            d = sql.dialect
            why = f"step {rung.step - 1} {outcome}: the ladder goes on to step {rung.step}"
            decision_id = await _next_decision(sql, action_id, rung, ACTING, why, now)
            next_id = await sql.insert(
                "INSERT INTO actions (decision_id, policy, type, target, params, dry_run, state, "
                "created_at, owner, heartbeat_at) "
                "SELECT ?, policy, ?, ?, ?, ?, 'pending', ?, ?, {clock} "
                "FROM actions WHERE id = ?",
                decision_id,
                rung.action,
                rung.target,
                params_json(rung.params, rung.checks, later),
                False,
                d.ts(now),
                self._owner,
                *d.clock(now),
                action_id,
            )
            # A rung is an action of its policy like any other: its rate limits count it.
            policy = await sql.value("SELECT policy FROM actions WHERE id = ?", action_id)
            await sql.run_many(COUNT_ACTIONS, counter_rows(d, [(str(policy), False, now)]))
            await _move_claim(sql, action_id, decision_id, ACTING, rung)
        return next_id

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
        async with self._bookkeeping() as sql:
            if not await self._finish(sql, action_id, outcome, reason, now, result, reached):
                return None
            why = (
                f"step {rung.step - 1} {outcome}: step {rung.step} waits for "
                f"{request.required} approval(s) until {request.expires_at.isoformat()}"
            )
            waiting = Outcome.AWAITING_APPROVAL
            decision_id = await _next_decision(sql, action_id, rung, waiting, why, now, request.id)
            stored = replace(request, decision_id=decision_id)
            episode = await sql.value("SELECT episode FROM decisions WHERE id = ?", decision_id)
            params = params_json(rung.params, rung.checks, later, rung)
            await insert_approval(sql, stored, str(episode), params, context)
            await _move_claim(sql, action_id, decision_id, waiting, rung)
        return stored

    async def _finish(
        self,
        sql: Conn,
        action_id: int,
        outcome: str,
        reason: str,
        now: datetime,
        result: Mapping[str, str] | None,
        reached: bool = True,
    ) -> bool:
        if outcome in UNFINISHED:  # a result, never a state an action passes through
            raise ValueError(f"{outcome} is not a result")
        reason = redact(reason)
        kept = json.dumps({k: redact(v) for k, v in (result or {}).items()}, sort_keys=True)
        # Ours and running; or ours, started, and recorded interrupted by another replica
        # while it ran (our lease lapsed): the real result replaces `interrupted`. A sweep
        # holding the row (FOR UPDATE on PostgreSQL) makes this wait and re-check the new
        # state.
        changed = await sql.run(
            "UPDATE actions SET state = ?, finished_at = ?, reason = ?, result = ? "
            "WHERE id = ? AND owner = ? AND (state = 'running' "
            "OR (state = 'interrupted' AND started_at IS NOT NULL))",
            outcome,
            sql.dialect.ts(now),
            reason,
            kept,
            action_id,
            self._owner,
        )
        if changed != 1:
            return False
        if not reached:
            # The counters before the decision and the claim: a deciding transaction on
            # PostgreSQL writes its counters before its claims, so both take them in one order.
            await unreached(sql, action_id)
        await sql.run(
            f"UPDATE decisions SET outcome = ?, reason = ? WHERE id = {_OF_ACTION} "  # noqa: S608  # constants
            f"AND outcome IN ('{ACTING}', 'interrupted')",
            outcome,
            reason,
            action_id,
        )
        # The claim follows: what dedup and simulate show is what the audit says. An
        # action held at its turn never ran: its episode stays open, as a held decision,
        # unless it is a later rung of a ladder (deciding the episode again would run the
        # first rung twice).
        await sql.run(
            "UPDATE claims SET outcome = ?, provisional = provisional OR (? AND "  # noqa: S608  # constants
            "coalesce((SELECT step FROM decisions WHERE id = claims.decision_id), 1) = 1) "
            f"WHERE decision_id = {_OF_ACTION}",
            outcome,
            outcome in HELD,
            action_id,
        )
        return True

    async def heartbeat(self, action_ids: Sequence[int], now: datetime) -> None:
        if not action_ids:
            return
        async with self._bookkeeping() as sql:
            await sql.run(
                "UPDATE actions SET heartbeat_at = {clock} WHERE id {in_ids} AND owner = ? "  # noqa: S608  # constants
                f"AND state IN {_UNFINISHED}",
                *sql.dialect.clock(now),
                sql.dialect.keys(action_ids),
                self._owner,
            )

    async def interrupt_stale(self, now: datetime, lease: timedelta | None) -> list[Interrupted]:
        query = f"SELECT id, policy, type, state, owner FROM actions WHERE state IN {_UNFINISHED}"  # noqa: S608  # constants
        args: tuple[Any, ...] = ()
        if lease is not None:
            query += " AND {stale}"
            args = self.dialect.stale(now, lease)
        async with self._bookkeeping() as sql:
            # SKIP LOCKED (PostgreSQL): two replicas sweeping at once take different rows.
            rows = await sql.rows(query + "{skip_locked}", *args)
            found = [
                await _interrupt(sql, row, stale_reason(row["state"], row["owner"], lease), now)
                for row in rows
            ]
        return [item for item in found if item is not None]

    async def interrupt_actions(
        self, action_ids: Sequence[int], now: datetime, reason: str
    ) -> list[Interrupted]:
        if not action_ids:
            return []
        async with self._bookkeeping() as sql:
            rows = await sql.rows(
                "SELECT id, policy, type, state FROM actions WHERE id {in_ids} AND owner = ? "  # noqa: S608  # constants
                f"AND state IN {_UNFINISHED} ORDER BY id{{for_update}}",
                sql.dialect.keys(action_ids),
                self._owner,
            )
            found = [await _interrupt(sql, row, reason, now) for row in rows]
        return [item for item in found if item is not None]


async def _next_decision(
    sql: Conn,
    action_id: int,
    rung: Rung,
    outcome: str,
    why: str,
    now: datetime,
    approval_id: str | None = None,
) -> int:
    """The decision of a ladder's next rung, in the episode of the action before it."""
    return await sql.insert(
        "INSERT INTO decisions (time, policy, source, alertname, fingerprint, episode, "  # noqa: S608  # constants
        "action, target, outcome, reason, approval_id, repeats, step) "
        "SELECT ?, policy, source, alertname, fingerprint, episode, ?, ?, ?, ?, ?, 0, ? "
        f"FROM decisions WHERE id = {_OF_ACTION}",  # constants
        sql.dialect.ts(now),
        rung.action,
        rung.target,
        outcome,
        why,
        approval_id,
        rung.step,
        action_id,
    )


async def _move_claim(
    sql: Conn, action_id: int, decision_id: int, outcome: str, rung: Rung
) -> None:
    """The episode's claim now names the rung under way (or awaiting its approval): a
    repeat of the alert is counted on it, never decided again."""
    await sql.run(
        "UPDATE claims SET decision_id = ?, outcome = ?, provisional = FALSE, "  # noqa: S608  # constants
        f"action = ?, target = ? WHERE decision_id = {_OF_ACTION}",
        decision_id,
        outcome,
        rung.action,
        rung.target,
        action_id,
    )


async def _interrupt(sql: Conn, row: Row, reason: str, now: datetime) -> Interrupted | None:
    reason = redact(reason)
    changed = await sql.run(
        "UPDATE actions SET state = 'interrupted', finished_at = ?, reason = ? "  # noqa: S608  # constants
        f"WHERE id = ? AND state IN {_UNFINISHED}",
        sql.dialect.ts(now),
        reason,
        row["id"],
    )
    if changed != 1:
        return None
    if row["state"] == "pending":  # it never started: it cannot have reached its target
        await unreached(sql, row["id"])  # counters first, as in _finish
    await sql.run(
        f"UPDATE decisions SET outcome = 'interrupted', reason = ? WHERE id = {_OF_ACTION} "  # noqa: S608  # constants
        f"AND outcome = '{ACTING}'",
        reason,
        row["id"],
    )
    await sql.run(
        f"UPDATE claims SET outcome = 'interrupted' WHERE outcome = '{ACTING}' "  # noqa: S608  # constants
        f"AND decision_id = {_OF_ACTION}",
        row["id"],
    )
    return Interrupted(row["id"], row["policy"], row["type"], reason)
