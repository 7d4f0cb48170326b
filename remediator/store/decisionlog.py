"""The decision log in the shared statements: claims, decisions, actions and episodes inside a
deciding transaction, and the log's bookkeeping and audit outside one.

A batch's facts are read in a few statements whatever its size (claims by episode, last
actions by key, window counts capped at their limit) and its rows written with one statement
per table (store/sql.py). Nothing here knows which backend runs it (store/dialect.py).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from remediator.core.alert import Alert
from remediator.core.dedup import Claim
from remediator.core.ladder import Rung
from remediator.core.records import NewAction, NewDecision
from remediator.core.verify import Checks
from remediator.log import redact
from remediator.store.base import (
    ACTING,
    HELD,
    OPEN_OUTCOMES,
    UNFINISHED,
    ClaimConflictError,
    FactRows,
    WindowCount,
)
from remediator.store.dialect import Backend, Conn, Dialect, Row, Tx, sql_list
from remediator.store.prune import prune_batches
from remediator.store.records import ActionRecord, action_from_row, params_json
from remediator.store.switches import FLAGS_SQL

# Statements are composed only from this module's constants; every value is bound (S608).
_UNFINISHED = sql_list(UNFINISHED)
# What replaces a claim: a new one, or a provisional one (a held decision may be decided
# again), or the same decision's; never a settled claim of another decision.
CLAIM_UPSERT = (
    "ON CONFLICT (policy, episode) DO UPDATE SET decision_id = excluded.decision_id, "
    "outcome = excluded.outcome, provisional = excluded.provisional, "
    "action = excluded.action, target = excluded.target, "
    "dedup_decision_id = excluded.dedup_decision_id "
    "WHERE claims.provisional OR claims.decision_id = excluded.decision_id"
)
PUT_CLAIM = (
    "INSERT INTO claims (policy, episode, decision_id, outcome, provisional, action, "  # noqa: S608  # constants
    f"target, dedup_decision_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?) {CLAIM_UPSERT}"
)
# First sight of an episode is kept, every sight moves last_seen (never back, never below
# first_seen); a resolve stamps its end (only the first one). The coalesce is for SQLite, whose
# max() is NULL when any argument is (last_seen of a row from before schema 5).
# Annotations and generator_url (schema 10) are what resume and reset need to decide a held
# episode again without its alert; an episode recorded before them gets them at its next
# sighting that reaches the store.
NOTE_EPISODE = (
    "INSERT INTO episodes (episode, source, fingerprint, alertname, labels, starts_at, "
    "first_seen, resolved_at, last_seen, annotations, generator_url) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (episode) DO UPDATE "
    "SET resolved_at = coalesce(episodes.resolved_at, excluded.resolved_at), "
    "last_seen = {greatest}(coalesce(episodes.last_seen, episodes.first_seen), "
    "episodes.first_seen, excluded.last_seen), "
    "generator_url = CASE WHEN episodes.annotations IS NULL THEN excluded.generator_url "
    "ELSE episodes.generator_url END, "
    "annotations = coalesce(episodes.annotations, excluded.annotations)"
)
_DECISION_COLUMNS = (
    "time, policy, source, alertname, fingerprint, episode, action, target, outcome, reason, "
    "approval_id, repeats, step"
)
ADD_DECISIONS = (
    f"INSERT INTO decisions (id, {_DECISION_COLUMNS}) {{overriding}}"
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_ACTION_COLUMNS = (
    "decision_id, policy, type, target, params, dry_run, state, created_at, owner, heartbeat_at"
)
# heartbeat_at is the store's clock: SQLite binds the action's time, PostgreSQL reads its own.
ADD_ACTIONS = (
    f"INSERT INTO actions (id, {_ACTION_COLUMNS}) {{overriding}}"
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {clock})"
)
# Per-minute action counters (schema 8), kept with the action rows: a window count reads a
# minute's row where it would scan the minute's actions. ALL_POLICIES holds every policy's
# actions together (the global limit); each action adds to its policy's row and to that one.
ALL_POLICIES = ""
_MINUTE = timedelta(minutes=1)
COUNT_ACTIONS = (
    "INSERT INTO action_counts (policy, dry_run, minute, n) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (policy, dry_run, minute) DO UPDATE SET n = action_counts.n + excluded.n"
)
# An action that turned out never to have reached its target leaves its minute's counters
# (schema 10: actions.reached): the counters hold what may have reached a target, nothing else.
UNCOUNT_ACTION = (
    "UPDATE action_counts SET n = n - ? WHERE policy = ? AND dry_run = ? AND minute = ?"
)


def minute_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def counter_rows(
    d: Dialect, actions: Collection[tuple[str, bool, datetime]]
) -> list[tuple[object, ...]]:
    """COUNT_ACTIONS rows for these (policy, dry_run, created_at): one per counter touched."""
    counted: Counter[tuple[str, bool, datetime]] = Counter()
    for policy, dry_run, created in actions:
        minute = minute_of(created)
        counted[(policy, dry_run, minute)] += 1
        counted[(ALL_POLICIES, dry_run, minute)] += 1
    return [(p, dry, d.ts(m), n) for (p, dry, m), n in sorted(counted.items())]


async def unreached(sql: Conn, action_id: int) -> None:
    """The action provably never reached its target: it counts toward no cooldown or rate
    limit from now on (once: a second call changes nothing). Counters are touched in
    counter_rows' order, as COUNT_ACTIONS's are, so the two never wait for each other in
    opposite orders."""
    if await sql.run("UPDATE actions SET reached = FALSE WHERE id = ? AND reached", action_id) != 1:
        return
    row = await sql.row("SELECT policy, dry_run, created_at FROM actions WHERE id = ?", action_id)
    if row is None:  # pragma: no cover  # the row was just updated in this transaction
        return
    d = sql.dialect
    created = d.when(row[2])
    rows = counter_rows(d, [(str(row[0]), bool(row[1]), created)])
    await sql.run_many(UNCOUNT_ACTION, [(n, p, dry, m) for p, dry, m, n in rows])


# The decision row `decisions` may still change (base.OPEN_OUTCOMES; `executing` only once
# none of its actions is unfinished).
_OUTCOME_OPEN = (
    f"(decisions.outcome IN {sql_list(OPEN_OUTCOMES)} OR (decisions.outcome = '{ACTING}' "  # noqa: S608  # constants
    "AND NOT EXISTS (SELECT 1 FROM actions WHERE actions.decision_id = decisions.id "
    f"AND actions.state IN {_UNFINISHED})))"
)


def claim_row(key: tuple[str, str], claim: Claim) -> tuple[object, ...]:
    return (
        *key,
        claim.decision_id,
        str(claim.outcome),
        claim.provisional,
        claim.action,
        claim.target,
        claim.dedup_decision_id,
    )


def sighting_row(d: Dialect, alert: Alert, now: datetime) -> tuple[object, ...]:
    seen = d.ts(now)
    return (
        alert.episode,
        alert.source,
        alert.fingerprint,
        alert.name,
        json.dumps(dict(alert.labels), sort_keys=True),
        d.ts(alert.starts_at),
        seen,
        seen if alert.status == "resolved" else None,
        seen,
        json.dumps(dict(alert.annotations), sort_keys=True),
        alert.generator_url,
    )


def decision_row(d: Dialect, decision: NewDecision) -> tuple[object, ...]:
    alert = decision.alert
    return (
        d.ts(decision.time),
        decision.policy,
        alert.source,
        alert.name,
        alert.fingerprint,
        alert.episode,
        decision.action,
        decision.target,
        str(decision.outcome),
        redact(decision.reason),
        decision.approval_id,
        decision.repeats,
        decision.step,
    )


def action_row(d: Dialect, action: NewAction, owner: str) -> tuple[object, ...]:
    return (
        action.id,
        action.decision_id,
        action.policy,
        action.type,
        action.target,
        params_json(action.params, action.verify, action.ladder),
        action.dry_run,
        "dry_run" if action.dry_run else "pending",
        d.ts(action.time),
        owner,
        *d.clock(action.time),
    )


class DecisionTx(Tx):
    """base.DecisionTransaction, less what a backend writes its own way (store/sql.py)."""

    async def claim(self, policy: str, episode: str) -> Claim | None:
        row = await self.sql.row(
            "SELECT decision_id, outcome, provisional, action, target, dedup_decision_id "
            "FROM claims WHERE policy = ? AND episode = ?",
            policy,
            episode,
        )
        if row is None:
            return None
        return Claim(row[0], row[1], bool(row[2]), row[3], row[4], row[5])

    async def put_claim(self, policy: str, episode: str, claim: Claim) -> None:
        if await self.sql.run(PUT_CLAIM, *claim_row((policy, episode), claim)) != 1:
            raise ClaimConflictError(f"policy {policy} episode {episode} is already decided")

    async def add_decision(self, decision: NewDecision) -> int:
        return await self.sql.insert(
            f"INSERT INTO decisions ({_DECISION_COLUMNS}) "  # noqa: S608  # constants
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            *decision_row(self.sql.dialect, decision),
        )

    async def set_outcome(self, decision_id: int, outcome: str, reason: str) -> bool:
        changed = await self.sql.run(
            f"UPDATE decisions SET outcome = ?, reason = ? WHERE id = ? AND {_OUTCOME_OPEN}",  # noqa: S608  # constants
            str(outcome),
            redact(reason),
            decision_id,
        )
        if changed != 1:
            return False
        await self.sql.run(  # the claim follows the outcome (what dedup and simulate show)
            "UPDATE claims SET outcome = ? WHERE decision_id = ?", str(outcome), decision_id
        )
        return True

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
        d = self.sql.dialect
        action_id = await self.sql.insert(
            f"INSERT INTO actions ({_ACTION_COLUMNS}) "  # noqa: S608  # constants
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, {clock})",
            decision_id,
            policy,
            action,
            target,
            params_json(params, verify, ladder),
            dry_run,
            "dry_run" if dry_run else "pending",
            d.ts(now),
            self.owner,
            *d.clock(now),
        )
        await self.sql.run_many(COUNT_ACTIONS, counter_rows(d, [(policy, dry_run, now)]))
        return action_id

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

    async def note_episode(self, alert: Alert, now: datetime) -> None:
        await self.sql.run(NOTE_EPISODE, *sighting_row(self.sql.dialect, alert, now))

    async def episode_cycle(self, group: str, cycle: str) -> str:
        """The episode of `group`'s current cycle: a start after an end opens the next one;
        repeats and ends belong to the latest (a repeat never opens an incident)."""
        row = await self.sql.row(
            "SELECT generation, open FROM cycles WHERE grp = ?{for_update}", group
        )
        if row is None:
            generation = 1
            await self.sql.run(
                "INSERT INTO cycles (grp, generation, open) VALUES (?, 1, ?)", group, cycle != "end"
            )
        else:
            generation, is_open = int(row[0]), bool(row[1])
            if cycle == "start" and not is_open:
                generation += 1
                await self.sql.run(
                    "UPDATE cycles SET generation = ?, open = TRUE WHERE grp = ?", generation, group
                )
            elif cycle == "end" and is_open:
                await self.sql.run("UPDATE cycles SET open = FALSE WHERE grp = ?", group)
        return f"{group}:{generation}"

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


# At most this many held episodes are decided again by one resume or reset (oldest first);
# any beyond are decided by their next repeat, as before.
HELD_LIMIT = 10_000
_HELD_EPISODES = (
    "SELECT c.policy, e.episode, e.source, e.fingerprint, e.labels, e.annotations, "  # noqa: S608  # constants
    "e.generator_url, e.starts_at FROM claims AS c JOIN episodes AS e ON e.episode = c.episode "
    f"WHERE c.provisional AND c.outcome IN {sql_list(HELD)} AND e.resolved_at IS NULL "
    "AND e.annotations IS NOT NULL"
)
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


class DecisionLogSql(Backend):
    """base.DecisionLog's bookkeeping and audit, on any Backend."""

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
