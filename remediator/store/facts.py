"""A batch's facts inside a deciding transaction: claims by episode, last actions by key and
window counts capped at their limit, read in a few statements whatever the batch's size. Reads
only: nothing here writes, and nothing knows which backend runs it (store/dialect.py)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from remediator.core.dedup import Claim
from remediator.store.dialect import Row, Tx
from remediator.store.roles.decisionlog import FactRows, WindowCount
from remediator.store.rows import ALL_POLICIES, minute_of
from remediator.store.switches import FLAGS_SQL

_MINUTE = timedelta(minutes=1)
_CLAIMS_OF = (
    "SELECT policy, episode, decision_id, outcome, provisional, action, target, "
    "dedup_decision_id FROM claims WHERE episode {in_texts}"
)
# The last live action and the last of either kind, of those that may have reached their
# target: a live decision reads the first, a dry run the second (dry_run accounting).
_LAST_ACTIONS = (
    "SELECT a.policy, a.target, max(CASE WHEN a.dry_run THEN NULL ELSE a.created_at END), "
    "max(a.created_at) FROM actions AS a JOIN {pairs} "
    "ON a.policy = k.policy AND a.target = k.target WHERE a.reached "
    "GROUP BY a.policy, a.target"
)


class FactsTx(Tx):
    """roles.decisionlog.DecisionTransaction's reads of a batch's facts and window counts."""

    async def last_action_at(
        self, policy: str, target: str, *, dry_run: bool | None = None
    ) -> datetime | None:
        sql = "SELECT max(created_at) FROM actions WHERE policy = ? AND target = ? AND reached"
        args: list[object] = [policy, target]
        if dry_run is not None:
            sql += " AND dry_run = ?"
            args.append(dry_run)
        last = await self.sql.value(sql, *args)
        return self.sql.dialect.when(last) if last else None

    async def count_actions(
        self, since: datetime, *, policy: str | None, dry_run: bool | None, limit: int | None = None
    ) -> int:
        """Actions created after `since`; with `limit`, counting stops there (a guard only asks
        whether its limit is reached), so the cost is bounded by the limit, not the history."""
        sql, args = self._count_query(WindowCount(since, policy, dry_run, limit))
        found = int(await self.sql.value(sql, *args) or 0)
        return found if limit is None else min(found, limit)

    def _count_query(self, count: WindowCount) -> tuple[str, list[object]]:
        """Whole minutes after `since`'s from the per-minute counters (action_counts: at most
        one row per minute of the window), plus the rows of `since`'s own minute counted in
        actions (at most a minute of them, capped at the limit): exact, and never a scan that
        grows with the history."""
        d = self.sql.dialect
        minute = minute_of(count.since)
        buckets = "SELECT coalesce(sum(n), 0) FROM action_counts WHERE policy = ? AND minute > ?"
        bucket_args: list[object] = [count.policy or ALL_POLICIES, d.ts(minute)]
        rows = "SELECT 1 FROM actions WHERE created_at > ? AND created_at < ? AND reached"
        row_args: list[object] = [d.ts(count.since), d.ts(minute + _MINUTE)]
        if count.policy is not None:
            rows += " AND policy = ?"
            row_args.append(count.policy)
        if count.dry_run is not None:
            buckets += " AND dry_run = ?"
            bucket_args.append(count.dry_run)
            rows += " AND dry_run = ?"
            row_args.append(count.dry_run)
        if count.limit is not None:
            rows += " LIMIT ?"
            row_args.append(count.limit)
        sql = f"SELECT ({buckets}) + (SELECT count(*) FROM ({rows}) AS edge)"  # noqa: S608  # constants
        return sql, [*bucket_args, *row_args]

    # --- one batch: facts read once (see core/judge.py) ----------------------------------

    async def facts(
        self,
        claims: Collection[tuple[str, str]],
        last_actions: Collection[tuple[str, str]],
        counts: Sequence[WindowCount],
        *,
        flags: bool = False,
    ) -> FactRows:
        """A batch's facts in one round trip (where the driver allows): the claims of these
        (policy, episode) keys, the last action of these (policy, target) pairs, these
        window counts, and with `flags` every switch."""
        d = self.sql.dialect
        wanted = set(claims)
        queries: list[tuple[str, Sequence[object]]] = []
        if flags:
            queries.append((FLAGS_SQL, ()))
        if wanted:
            queries.append((_CLAIMS_OF, (d.keys(sorted({e for _, e in wanted})),)))
        if last_actions:
            queries.append((_LAST_ACTIONS, d.pairs(sorted(set(last_actions)))))
        queries += [self._count_query(count) for count in counts]
        results = iter(await self._facts_trip(queries))
        found = FactRows()
        if flags:
            found.flags = [(r[0], r[1]) for r in next(results)]
        if wanted:
            for r in next(results):
                if (r[0], r[1]) in wanted:
                    found.claims[(r[0], r[1])] = Claim(r[2], r[3], bool(r[4]), r[5], r[6], r[7])
        if last_actions:
            for r in next(results):
                found.last_actions[(r[0], r[1])] = d.when(r[3])
                if r[2] is not None:
                    found.last_live_actions[(r[0], r[1])] = d.when(r[2])
        found.counts = [
            min(int(rows[0][0] or 0), count.limit or 1 << 62)
            for rows, count in zip(results, counts, strict=True)
        ]
        return found

    async def _facts_trip(
        self, queries: Sequence[tuple[str, Sequence[object]]]
    ) -> Sequence[Sequence[Row]]:
        """The facts' queries in one round trip (a backend may add its own to the trip)."""
        return await self.sql.rows_many(queries) if queries else []
