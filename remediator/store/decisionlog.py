"""The decision log outside a deciding transaction: repeat counts, retention batches, the
episodes a switch holds and a decision's actions. It decides nothing: every write here is
bookkeeping, or a prune batch in its own deciding transaction."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from remediator.core.alert import Alert
from remediator.store.dialect import Backend, Conn, sql_list
from remediator.store.prune import prune_batches
from remediator.store.records import ActionRecord, action_from_row
from remediator.store.roles.decisionlog import HELD
from remediator.store.rows import minute_of

# At most this many held episodes are decided again by one resume or reset (oldest first);
# any beyond are decided by their next repeat, as before.
HELD_LIMIT = 10_000
_HELD_EPISODES = (
    "SELECT c.policy, e.episode, e.source, e.fingerprint, e.labels, e.annotations, "  # noqa: S608  # constants
    "e.generator_url, e.starts_at FROM claims AS c JOIN episodes AS e ON e.episode = c.episode "
    f"WHERE c.provisional AND c.outcome IN {sql_list(HELD)} AND e.resolved_at IS NULL "
    "AND e.annotations IS NOT NULL"
)


class DecisionLogSql(Backend):
    """roles.decisionlog.DecisionLog's bookkeeping and audit, on any Backend."""

    async def add_repeats(self, counts: Mapping[int, int], now: datetime | None = None) -> None:
        if not counts:
            return
        async with self._bookkeeping() as sql:
            # Repeats answered from memory are sightings too: a long-firing alert that
            # Alertmanager keeps re-sending keeps its claim (see store/prune.py). SKIP LOCKED
            # (PostgreSQL): an episode row a deciding transaction holds is being stamped by it
            # right now, and never waiting here means a flush cannot deadlock with a webhook.
            await sql.run(
                "UPDATE episodes SET last_seen = "
                "{greatest}(coalesce(last_seen, first_seen), first_seen, ?) "
                "WHERE episode IN (SELECT e.episode FROM episodes AS e JOIN decisions AS d "
                "ON d.episode = e.episode WHERE d.id {in_ids}{skip_locked_episodes})",
                sql.dialect.ts(now or datetime.now(UTC)),
                sql.dialect.keys(counts),
            )
            # In id order: two replicas flushing the same decisions take their locks alike.
            await sql.run_many(
                "UPDATE decisions SET repeats = repeats + ? WHERE id = ?",
                [(counts[decision_id], decision_id) for decision_id in sorted(counts)],
            )

    async def prune(self, before: datetime) -> dict[str, int]:
        counters_left = [True]

        @asynccontextmanager
        async def batch() -> AsyncIterator[Conn]:
            # A deciding transaction, one batch at a time (the SQLite writer, the PostgreSQL
            # decision lock): no decision (a re-sent episode stamping its last_seen, a claim
            # being read) runs between a batch's check and its delete. The first one also
            # drops the action counters of the minutes pruned.
            async with self.transaction() as tx:
                if counters_left.pop() if counters_left else False:
                    cut = self.dialect.ts(minute_of(before))
                    await tx.sql.run("DELETE FROM action_counts WHERE minute < ?", cut)
                yield tx.sql

        return await prune_batches(batch, self.dialect.ts(before))

    async def held_episodes(self, policy: str | None = None) -> list[tuple[str, Alert]]:
        sql = _HELD_EPISODES
        args: list[object] = []
        if policy is not None:
            sql += " AND c.policy = ?"
            args.append(policy)
        rows = await self._fetch(
            f"{sql} ORDER BY e.first_seen, e.episode, c.policy LIMIT ?",  # constants
            *args,
            HELD_LIMIT,
        )
        when = self.dialect.when
        return [
            (
                str(r[0]),
                Alert(
                    source=r[2],
                    status="firing",
                    labels=json.loads(r[4]),
                    annotations=json.loads(r[5]),
                    starts_at=when(r[7]),
                    fingerprint=r[3],
                    episode=r[1],
                    generator_url=r[6] or "",
                ),
            )
            for r in rows
        ]

    async def actions_of(self, decision_id: int) -> list[ActionRecord]:
        rows = await self._fetch(
            "SELECT * FROM actions WHERE decision_id = ? ORDER BY id", decision_id
        )
        return [action_from_row(row, self.dialect.when) for row in rows]
