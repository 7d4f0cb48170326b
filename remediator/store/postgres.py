"""PostgresStore: the shared store for several replicas (asyncpg, one pool per process).

Exactly-once across replicas rests on one rule: every deciding transaction first takes the
transaction-scoped advisory lock DECIDE_LOCK, so deciding transactions run one at a time
across all replicas, as SQLite's one writer does in one process. Claims, cooldowns and rate
limits read under the lock are therefore still true at commit. One lock (not one per policy)
cannot deadlock, and only new decisions take it: repeats of a known episode are answered from
each replica's memory. The claims primary key with a never-overwrite upsert is the backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from remediator import log
from remediator.core.alert import Alert
from remediator.core.approval import Approval
from remediator.core.dedup import Claim
from remediator.core.judge import Decided, Ids
from remediator.core.outcomes import Outcome
from remediator.core.records import NewDecision
from remediator.errors import StoreError
from remediator.store.base import (
    ACTING,
    HELD,
    OPEN_OUTCOMES,
    SCHEMA_VERSION,
    UNFINISHED,
    ApprovalConflictError,
    ClaimConflictError,
    DecisionRecord,
    Interrupted,
    approval_from_row,
    decision_from_row,
    redacted,
    refuse_newer,
    replica_name,
    stale_reason,
)
from remediator.store.prune import KeyKind, prune_batches

_log = log.get("remediator.store")
if TYPE_CHECKING:  # generic only in the stubs
    _Conn = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]

# Advisory lock keys (64-bit, arbitrary but fixed): ASCII "remdecid" and "remmigra".
DECIDE_LOCK = 0x72656D6465636964
MIGRATE_LOCK = 0x72656D6D69677261
# Targets take two-int advisory locks (a lock space apart from the bigint keys above):
# (TARGET_LOCKS, hashtext(backend/target)). A hash collision only makes two targets wait
# for each other, never lets one target run twice at once.
TARGET_LOCKS = 0x72746774

_SCHEMA = """
CREATE TABLE remediator_schema (version INTEGER NOT NULL);
CREATE TABLE episodes (
  episode TEXT PRIMARY KEY, source TEXT NOT NULL, fingerprint TEXT NOT NULL,
  alertname TEXT NOT NULL, labels TEXT NOT NULL, starts_at TIMESTAMPTZ NOT NULL,
  first_seen TIMESTAMPTZ NOT NULL, resolved_at TIMESTAMPTZ
);
CREATE TABLE decisions (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, time TIMESTAMPTZ NOT NULL,
  policy TEXT NOT NULL, source TEXT NOT NULL, alertname TEXT NOT NULL,
  fingerprint TEXT NOT NULL, episode TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,
  outcome TEXT NOT NULL, reason TEXT NOT NULL, approval_id TEXT,
  repeats INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE claims (
  policy TEXT NOT NULL, episode TEXT NOT NULL, decision_id BIGINT NOT NULL,
  outcome TEXT NOT NULL, provisional BOOLEAN NOT NULL, action TEXT NOT NULL,
  target TEXT NOT NULL, dedup_decision_id BIGINT, PRIMARY KEY (policy, episode)
);
CREATE TABLE actions (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, decision_id BIGINT NOT NULL,
  policy TEXT NOT NULL, type TEXT NOT NULL, target TEXT NOT NULL, params TEXT NOT NULL,
  dry_run BOOLEAN NOT NULL, state TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL,
  started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, reason TEXT NOT NULL DEFAULT '',
  owner TEXT NOT NULL DEFAULT '', heartbeat_at TIMESTAMPTZ
);
CREATE INDEX actions_policy_target ON actions (policy, target, created_at);
CREATE INDEX actions_created ON actions (created_at);
CREATE INDEX actions_unfinished ON actions (heartbeat_at) WHERE state IN ('pending', 'running');
CREATE TABLE approvals (
  id TEXT PRIMARY KEY, decision_id BIGINT NOT NULL, policy TEXT NOT NULL, action TEXT NOT NULL,
  target TEXT NOT NULL, params TEXT NOT NULL, episode TEXT NOT NULL, state TEXT NOT NULL,
  requested_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ NOT NULL, required INTEGER NOT NULL,
  approvers TEXT NOT NULL, approved_by TEXT NOT NULL, decided_by TEXT,
  context TEXT NOT NULL DEFAULT '{}', slack_channel TEXT, slack_ts TEXT
);
CREATE INDEX approvals_episode ON approvals (episode, state);
CREATE INDEX approvals_action ON approvals (decision_id);
CREATE TABLE flags (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE cycles (grp TEXT PRIMARY KEY, generation INTEGER NOT NULL, open BOOLEAN NOT NULL);
CREATE TABLE approval_events (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, time TIMESTAMPTZ NOT NULL,
  approval_id TEXT NOT NULL, who TEXT NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE INDEX approval_events_approval ON approval_events (approval_id, id);
"""
# The first PostgreSQL schema is version 4 (SQLite's 1-3 predate this store). Later
# versions add their statements here, keyed by the version they produce.
_FIRST_VERSION = 4
_MIGRATIONS: dict[int, str] = {
    # As SQLite's 6: window counts read an index range bounded by the limit.
    6: """
CREATE INDEX actions_policy_created ON actions (policy, created_at);
CREATE INDEX actions_dry_created ON actions (dry_run, created_at);
""",
    # Retention (as SQLite's 5): when an episode was last seen, and the indexes a prune's
    # "is anything still pointing at it" checks need. An episode recorded before this version
    # counts as seen now, so it keeps its claim a whole retention window after the upgrade.
    5: """
ALTER TABLE episodes ADD COLUMN last_seen TIMESTAMPTZ;
UPDATE episodes SET last_seen = clock_timestamp();
CREATE INDEX claims_episode ON claims (episode);
CREATE INDEX claims_decision ON claims (decision_id);
CREATE INDEX claims_dedup ON claims (dedup_decision_id);
CREATE INDEX actions_decision ON actions (decision_id);
""",
}
# First sight of an episode is kept, every sight moves last_seen (never back); a resolve
# stamps its end (only the first one).
_NOTE_EPISODE = (
    "INSERT INTO episodes (episode, source, fingerprint, alertname, labels, starts_at, "
    "first_seen, resolved_at, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7) "
    "ON CONFLICT (episode) DO UPDATE "
    "SET resolved_at = coalesce(episodes.resolved_at, excluded.resolved_at), "
    "last_seen = greatest(episodes.last_seen, episodes.first_seen, excluded.last_seen)"
)


def _sighting(alert: Alert, now: datetime) -> tuple[object, ...]:
    return (
        alert.episode,
        alert.source,
        alert.fingerprint,
        alert.name,
        json.dumps(dict(alert.labels), sort_keys=True),
        alert.starts_at,
        now,
        now if alert.status == "resolved" else None,
    )


# The decision row `decisions` may still change (base.OPEN_OUTCOMES; `executing` only once
# none of its actions is unfinished). $4..$6: OPEN_OUTCOMES, ACTING, UNFINISHED.
_OUTCOME_OPEN = (
    "(decisions.outcome = ANY($4::text[]) OR (decisions.outcome = $5 AND NOT EXISTS "
    "(SELECT 1 FROM actions WHERE actions.decision_id = decisions.id "
    "AND actions.state = ANY($6::text[]))))"
)

# What a down, restarting or unreachable server raises; all of it is "store unavailable".
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
# Session settings: a replica stuck mid-transaction must not hold the decision lock.
_SERVER_SETTINGS = {
    "application_name": "remediator",
    "lock_timeout": "10s",
    "idle_in_transaction_session_timeout": "30s",
}


class SchemaMissingError(StoreError):
    """The database has no remediator schema, and this store may not create one."""


def redact(url: str) -> str:
    """The state URL as it may appear in a log: no password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _unavailable(exc: BaseException) -> StoreError:
    text = str(exc) or type(exc).__name__
    return StoreError(f"state store unavailable: {text}")


class PgTransaction:
    def __init__(self, conn: _Conn, owner: str) -> None:
        self.conn = conn
        self.owner = owner

    async def claim(self, policy: str, episode: str) -> Claim | None:
        row = await self.conn.fetchrow(
            "SELECT decision_id, outcome, provisional, action, target, dedup_decision_id "
            "FROM claims WHERE policy = $1 AND episode = $2",
            policy,
            episode,
        )
        if row is None:
            return None
        return Claim(row[0], row[1], row[2], row[3], row[4], row[5])

    async def put_claim(self, policy: str, episode: str, claim: Claim) -> None:
        status = await self.conn.execute(
            "INSERT INTO claims (policy, episode, decision_id, outcome, provisional, action, "
            "target, dedup_decision_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT (policy, episode) DO UPDATE SET decision_id = excluded.decision_id, "
            "outcome = excluded.outcome, provisional = excluded.provisional, "
            "action = excluded.action, target = excluded.target, "
            "dedup_decision_id = excluded.dedup_decision_id "
            "WHERE claims.provisional OR claims.decision_id = excluded.decision_id",
            policy,
            episode,
            claim.decision_id,
            claim.outcome,
            claim.provisional,
            claim.action,
            claim.target,
            claim.dedup_decision_id,
        )
        if status != "INSERT 0 1":
            raise ClaimConflictError(f"policy {policy} episode {episode} is already decided")

    async def flags(self) -> list[tuple[str, str]]:
        rows = await self.conn.fetch("SELECT name, value FROM flags ORDER BY name")
        return [(r[0], r[1]) for r in rows]

    async def add_decision(self, decision: NewDecision) -> int:
        alert = decision.alert
        decision_id: int = await self.conn.fetchval(
            "INSERT INTO decisions (time, policy, source, alertname, fingerprint, episode, action, "
            "target, outcome, reason, approval_id, repeats) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
            decision.time,
            decision.policy,
            alert.source,
            alert.name,
            alert.fingerprint,
            alert.episode,
            decision.action,
            decision.target,
            decision.outcome,
            log.redact(decision.reason),
            decision.approval_id,
            decision.repeats,
        )
        return decision_id

    async def set_outcome(self, decision_id: int, outcome: str, reason: str) -> bool:
        status = await self.conn.execute(
            f"UPDATE decisions SET outcome = $1, reason = $2 WHERE id = $3 AND {_OUTCOME_OPEN}",  # noqa: S608  # constants, not input
            outcome,
            log.redact(reason),
            decision_id,
            list(OPEN_OUTCOMES),
            ACTING,
            list(UNFINISHED),
        )
        if status != "UPDATE 1":
            return False
        await self.conn.execute(  # the claim follows the outcome (what dedup and simulate show)
            "UPDATE claims SET outcome = $1 WHERE decision_id = $2", str(outcome), decision_id
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
    ) -> int:
        action_id: int = await self.conn.fetchval(
            "INSERT INTO actions (decision_id, policy, type, target, params, dry_run, state, "
            "created_at, owner, heartbeat_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, clock_timestamp()) RETURNING id",
            decision_id,
            policy,
            action,
            target,
            json.dumps(dict(params)),
            dry_run,
            "dry_run" if dry_run else "pending",
            now,
            self.owner,
        )
        return action_id

    async def last_action_at(self, policy: str, target: str) -> datetime | None:
        last: datetime | None = await self.conn.fetchval(
            "SELECT max(created_at) FROM actions WHERE policy = $1 AND target = $2",
            policy,
            target,
        )
        return last

    async def count_actions(
        self, since: datetime, *, policy: str | None, dry_run: bool | None, limit: int | None = None
    ) -> int:
        """Actions created after `since`; with `limit`, counting stops there (a guard only asks
        whether its limit is reached), so the cost is bounded by the limit, not the history."""
        count: int = await self.conn.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM actions WHERE created_at > $1 "
            "AND ($2::text IS NULL OR policy = $2) AND ($3::boolean IS NULL OR dry_run = $3) "
            "LIMIT $4) AS window_rows",
            since,
            policy,
            dry_run,
            limit,
        )
        return count

    async def note_episode(self, alert: Alert, now: datetime) -> None:
        await self.conn.execute(_NOTE_EPISODE, *_sighting(alert, now))

    # --- one batch: facts read once, rows written once (see core/judge.py) ---------------

    async def claims_of(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], Claim]:
        wanted = set(keys)
        rows = await self.conn.fetch(
            "SELECT policy, episode, decision_id, outcome, provisional, action, target, "
            "dedup_decision_id FROM claims WHERE episode = ANY($1::text[])",
            sorted({episode for _, episode in wanted}),
        )
        return {
            (r[0], r[1]): Claim(r[2], r[3], r[4], r[5], r[6], r[7])
            for r in rows
            if (r[0], r[1]) in wanted
        }

    async def last_actions(
        self, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], datetime]:
        pairs = sorted(set(keys))
        rows = await self.conn.fetch(
            "SELECT a.policy, a.target, max(a.created_at) FROM actions a "
            "JOIN unnest($1::text[], $2::text[]) AS k(policy, target) "
            "ON a.policy = k.policy AND a.target = k.target GROUP BY a.policy, a.target",
            [p for p, _ in pairs],
            [t for _, t in pairs],
        )
        return {(r[0], r[1]): r[2] for r in rows}

    async def pending_for(self, episodes: Collection[str]) -> dict[str, list[Approval]]:
        rows = await self.conn.fetch(
            "SELECT * FROM approvals WHERE state = 'pending' AND episode = ANY($1::text[])",
            sorted(set(episodes)),
        )
        found: dict[str, list[Approval]] = {}
        for row in rows:
            found.setdefault(row["episode"], []).append(approval_from_row(row, _same))
        return found

    async def reserve_ids(self, decisions: int, actions: int) -> Ids:
        """Ids drawn from the tables' own sequences: unique across replicas whatever else
        inserts; one left unused is a gap, as after any rolled-back insert."""
        rows = await self.conn.fetch(
            "SELECT CASE WHEN n <= $1::int "
            "THEN nextval(pg_get_serial_sequence('decisions', 'id')) END, "
            "CASE WHEN n <= $2::int THEN nextval(pg_get_serial_sequence('actions', 'id')) END "
            "FROM generate_series(1, greatest($1::int, $2::int)) AS n",
            decisions,
            actions,
        )
        return Ids(
            iter([r[0] for r in rows if r[0] is not None]),
            iter([r[1] for r in rows if r[1] is not None]),
        )

    async def write(self, decided: Decided, now: datetime) -> None:
        """Every row of one judgement, one statement (pipelined executemany) per table."""
        if decided.sightings:
            await self.conn.executemany(
                _NOTE_EPISODE, [_sighting(a, now) for a in decided.sightings]
            )
        if decided.decisions:
            await self.conn.executemany(
                "INSERT INTO decisions (id, time, policy, source, alertname, fingerprint, "
                "episode, action, target, outcome, reason, approval_id, repeats) "
                "OVERRIDING SYSTEM VALUE "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                [
                    (
                        d.id,
                        d.time,
                        d.policy,
                        d.alert.source,
                        d.alert.name,
                        d.alert.fingerprint,
                        d.alert.episode,
                        d.action,
                        d.target,
                        str(d.outcome),
                        log.redact(d.reason),
                        d.approval_id,
                        d.repeats,
                    )
                    for d in decided.decisions
                ],
            )
        if decided.claims:
            await self._put_claims(decided.claims)
        if decided.actions:
            await self.conn.executemany(
                "INSERT INTO actions (id, decision_id, policy, type, target, params, dry_run, "
                "state, created_at, owner, heartbeat_at) OVERRIDING SYSTEM VALUE "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, clock_timestamp())",
                [
                    (
                        a.id,
                        a.decision_id,
                        a.policy,
                        a.type,
                        a.target,
                        json.dumps(dict(a.params)),
                        a.dry_run,
                        "dry_run" if a.dry_run else "pending",
                        a.time,
                        self.owner,
                    )
                    for a in decided.actions
                ],
            )
        for row in decided.approval_rows:
            await self.add_approval(row.approval, row.episode, row.params, row.context)
        for cancelled in decided.cancelled:
            await self.save_approval(cancelled)
            await self.set_outcome(
                cancelled.decision_id, Outcome.CANCELLED, "the alert resolved before a decision"
            )

    async def _put_claims(self, claims: Mapping[tuple[str, str], Claim]) -> None:
        """One upsert for all; a row it may not replace (a settled claim of another
        decision) is not returned, and the whole transaction rolls back."""
        items = list(claims.items())
        written = await self.conn.fetch(
            "INSERT INTO claims (policy, episode, decision_id, outcome, provisional, action, "
            "target, dedup_decision_id) SELECT * FROM unnest($1::text[], $2::text[], "
            "$3::bigint[], $4::text[], $5::boolean[], $6::text[], $7::text[], $8::bigint[]) "
            "ON CONFLICT (policy, episode) DO UPDATE SET decision_id = excluded.decision_id, "
            "outcome = excluded.outcome, provisional = excluded.provisional, "
            "action = excluded.action, target = excluded.target, "
            "dedup_decision_id = excluded.dedup_decision_id "
            "WHERE claims.provisional OR claims.decision_id = excluded.decision_id RETURNING 1",
            [k[0] for k, _ in items],
            [k[1] for k, _ in items],
            [c.decision_id for _, c in items],
            [str(c.outcome) for _, c in items],
            [c.provisional for _, c in items],
            [c.action for _, c in items],
            [c.target for _, c in items],
            [c.dedup_decision_id for _, c in items],
        )
        if len(written) != len(items):
            raise ClaimConflictError("an episode of this batch is already decided")

    async def episode_cycle(self, group: str, cycle: str) -> str:
        """The episode of `group`'s current cycle: a start after an end opens the next one;
        repeats and ends belong to the latest (a repeat never opens an incident)."""
        row = await self.conn.fetchrow(
            "SELECT generation, open FROM cycles WHERE grp = $1 FOR UPDATE", group
        )
        if row is None:
            generation = 1
            await self.conn.execute(
                "INSERT INTO cycles (grp, generation, open) VALUES ($1, 1, $2)",
                group,
                cycle != "end",
            )
        else:
            generation, is_open = int(row[0]), bool(row[1])
            if cycle == "start" and not is_open:
                generation += 1
                await self.conn.execute(
                    "UPDATE cycles SET generation = $1, open = true WHERE grp = $2",
                    generation,
                    group,
                )
            elif cycle == "end" and is_open:
                await self.conn.execute("UPDATE cycles SET open = false WHERE grp = $1", group)
        return f"{group}:{generation}"

    async def pending_approvals(self, episode: str) -> list[Approval]:
        rows = await self.conn.fetch(
            "SELECT * FROM approvals WHERE episode = $1 AND state = 'pending'", episode
        )
        return [approval_from_row(row, _same) for row in rows]

    async def add_approval(
        self,
        approval: Approval,
        episode: str,
        params: Mapping[str, str],
        context: Mapping[str, object] | None = None,
    ) -> None:
        await self.conn.execute(
            "INSERT INTO approvals (id, decision_id, policy, action, target, params, episode, "
            "context, state, requested_at, expires_at, required, approvers, approved_by, "
            "decided_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            approval.id,
            approval.decision_id,
            approval.policy,
            approval.action,
            approval.target,
            json.dumps(dict(params)),
            episode,
            json.dumps(redacted(dict(context or {}))),
            approval.state.value,
            approval.requested_at,
            approval.expires_at,
            approval.required,
            json.dumps(list(approval.approvers)),
            json.dumps(list(approval.approved_by)),
            approval.decided_by,
        )

    async def save_approval(self, approval: Approval) -> None:
        status = await self.conn.execute(
            "UPDATE approvals SET state = $1, approved_by = $2, decided_by = $3 "
            "WHERE id = $4 AND state = 'pending'",
            approval.state.value,
            json.dumps(list(approval.approved_by)),
            approval.decided_by,
            approval.id,
        )
        if status != "UPDATE 1":
            state = await self.conn.fetchval(
                "SELECT state FROM approvals WHERE id = $1", approval.id
            )
            if state is None:
                raise ApprovalConflictError(f"approval {approval.id} does not exist (any more)")
            raise ApprovalConflictError(f"approval {approval.id} is already {state}")

    async def approval(self, approval_id: str) -> Approval | None:
        row = await self.conn.fetchrow("SELECT * FROM approvals WHERE id = $1", approval_id)
        return approval_from_row(row, _same) if row else None

    async def approval_params(self, approval_id: str) -> dict[str, str]:
        raw = await self.conn.fetchval("SELECT params FROM approvals WHERE id = $1", approval_id)
        return dict(json.loads(raw)) if raw else {}

    async def expired_approvals(self, now: datetime) -> list[Approval]:
        rows = await self.conn.fetch(
            "SELECT * FROM approvals WHERE state = 'pending' AND expires_at <= $1", now
        )
        return [approval_from_row(row, _same) for row in rows]


def _same(value: datetime) -> datetime:
    return value


# `:name` parameters of store/prune.py's statements (not `::type` casts).
_NAMED = re.compile(r"(?<![:\w]):([a-z_]+)")


def _positional(sql: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """`:name` parameters as asyncpg's $1, $2, ... and their values in that order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _NAMED.sub(number, sql), [params[name] for name in names]


class _PruneBatch:
    """store/prune.py's PruneBatch on one PostgreSQL transaction: a key list is an array."""

    def __init__(self, conn: _Conn) -> None:
        self.conn = conn

    def keys_sql(self, sql: str, kind: KeyKind) -> str:
        array = "bigint[]" if kind == "int" else "text[]"
        return sql.replace("{keys}", f"SELECT unnest(:keys::{array})")

    async def keys(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        query, args = _positional(sql, params)
        return [row[0] for row in await self.conn.fetch(query, *args)]

    async def delete(self, sql: str, params: Mapping[str, Any]) -> int:
        query, args = _positional(sql, params)
        status = await self.conn.execute(query, *args)
        return int(status.split()[-1])


class PostgresStore:
    exclusive = False  # other replicas share it: only an expired lease proves an owner dead

    def __init__(
        self,
        url: str,
        *,
        owner: str = "",
        min_size: int = 1,
        max_size: int = 10,
        migrate: bool = True,
    ) -> None:
        self._url = url
        self._may_migrate = migrate  # False: `simulate`, which must change nothing
        self._owner = owner or replica_name()
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        where = redact(self._url)
        try:
            self._pool = await asyncpg.create_pool(
                self._url,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=10,  # connect
                command_timeout=30,
                server_settings=_SERVER_SETTINGS,
            )
        except (*_DB_ERRORS, ValueError) as exc:
            raise StoreError(f"cannot open PostgreSQL state store {where}: {exc}") from None
        try:
            await self._migrate()
        except _DB_ERRORS as exc:
            await self.close()
            raise StoreError(f"cannot open PostgreSQL state store {where}: {exc}") from None
        except BaseException:
            await self.close()
            raise

    @asynccontextmanager
    async def target_lease(self, key: str) -> AsyncIterator[None]:
        """One action per target across replicas: a session advisory lock on a connection
        of its own (not the pool's, which must stay free for decisions), held through the
        action and its verification, released by closing it, also when the process dies."""
        try:
            conn = await asyncpg.connect(
                self._url, timeout=10, server_settings={"application_name": "remediator-target"}
            )
        except (*_DB_ERRORS, ValueError) as exc:
            raise _unavailable(exc) from None
        try:
            delay = 0.05
            while True:
                try:
                    got = await conn.fetchval(
                        "SELECT pg_try_advisory_lock($1, hashtext($2))", TARGET_LOCKS, key
                    )
                except _DB_ERRORS as exc:
                    raise _unavailable(exc) from None
                if got:
                    break
                await asyncio.sleep(delay)  # another replica acts on this target: wait
                delay = min(delay * 2, 1.0)
            yield
        finally:
            with contextlib.suppress(*_DB_ERRORS):
                await asyncio.shield(conn.close(timeout=5))

    async def _migrate(self) -> None:
        """Under a session advisory lock: one replica migrates, the others wait and re-read."""
        async with self._acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATE_LOCK)
            try:
                version = 0
                if await conn.fetchval("SELECT to_regclass('remediator_schema')") is not None:
                    version = int(await conn.fetchval("SELECT version FROM remediator_schema"))
                refuse_newer(redact(self._url), version)
                if version != SCHEMA_VERSION and not self._may_migrate:
                    self._refuse_to_migrate(version)
                if version == 0:
                    async with conn.transaction():
                        await conn.execute(_SCHEMA)
                        await conn.execute(
                            "INSERT INTO remediator_schema (version) VALUES ($1)", _FIRST_VERSION
                        )
                    version = _FIRST_VERSION
                    _log.info("store.schema_created", version=version)
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    async with conn.transaction():
                        await conn.execute(_MIGRATIONS[target])
                        await conn.execute("UPDATE remediator_schema SET version = $1", target)
                    _log.info("store.migrated", version=target)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATE_LOCK)

    def _refuse_to_migrate(self, version: int) -> None:
        where = redact(self._url)
        if version == 0:
            raise SchemaMissingError(f"state store {where} has no remediator schema yet")
        raise StoreError(
            f"state store {where} has schema version {version}, not {SCHEMA_VERSION}; "
            "start the daemon once to migrate it"
        )

    def _pool_or_fail(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("state store is not open")
        return self._pool

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[_Conn]:
        pool = self._pool_or_fail()
        try:
            conn = await pool.acquire(timeout=10)
        except _DB_ERRORS as exc:
            raise _unavailable(exc) from None
        try:
            yield conn
        finally:
            try:
                await pool.release(conn)
            except _DB_ERRORS:  # a connection the server dropped: the pool replaces it
                conn.terminate()

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await pool.close()
            except _DB_ERRORS:
                pool.terminate()

    async def ping(self) -> None:
        try:
            async with self._acquire() as conn:
                await conn.fetchval("SELECT 1", timeout=5)
        except _DB_ERRORS as exc:
            raise _unavailable(exc) from None

    @asynccontextmanager
    async def transaction(self, *, commit: bool = True) -> AsyncIterator[PgTransaction]:
        async with self._acquire() as conn:
            tx = conn.transaction()
            try:
                await tx.start()
                await conn.execute("SELECT pg_advisory_xact_lock($1)", DECIDE_LOCK)
            except _DB_ERRORS as exc:
                await _rollback(tx)
                raise _unavailable(exc) from None
            try:
                yield PgTransaction(conn, self._owner)
                if commit:
                    await tx.commit()
                else:
                    await tx.rollback()
            except _DB_ERRORS as exc:
                await _rollback(tx)
                raise _unavailable(exc) from None
            except BaseException:
                await _rollback(tx)
                raise

    @asynccontextmanager
    async def _plain(self) -> AsyncIterator[_Conn]:
        """A transaction without the decision lock: bookkeeping that decides nothing."""
        async with self._acquire() as conn:
            try:
                async with conn.transaction():
                    yield conn
            except _DB_ERRORS as exc:
                raise _unavailable(exc) from None

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            async with self._acquire() as conn:
                return list(await conn.fetch(sql, *args))
        except _DB_ERRORS as exc:
            raise _unavailable(exc) from None

    async def add_repeats(self, counts: Mapping[int, int], now: datetime | None = None) -> None:
        if not counts:
            return
        async with self._plain() as conn:
            # Repeats answered from memory are sightings too: a long-firing alert that
            # Alertmanager keeps re-sending keeps its claim (see store/prune.py). SKIP LOCKED:
            # an episode row a deciding transaction holds is being stamped by it right now,
            # and never waiting here means a flush cannot deadlock with a webhook.
            await conn.execute(
                "UPDATE episodes SET last_seen = greatest(last_seen, first_seen, $1) "
                "WHERE episode IN (SELECT e.episode FROM episodes AS e JOIN decisions AS d "
                "ON d.episode = e.episode WHERE d.id = ANY($2::bigint[]) "
                "FOR UPDATE OF e SKIP LOCKED)",
                now or datetime.now(UTC),
                list(counts),
            )
            # In id order: two replicas flushing the same decisions take their locks alike.
            await conn.executemany(
                "UPDATE decisions SET repeats = repeats + $1 WHERE id = $2",
                [(counts[decision_id], decision_id) for decision_id in sorted(counts)],
            )

    async def start_action(self, action_id: int, now: datetime) -> bool:
        async with self._plain() as conn:
            status = await conn.execute(
                "UPDATE actions SET state = 'running', started_at = $1, "
                "heartbeat_at = clock_timestamp() "
                "WHERE id = $2 AND state = 'pending' AND owner = $3",
                now,
                action_id,
                self._owner,
            )
        return bool(status == "UPDATE 1")

    async def finish_action(self, action_id: int, outcome: str, reason: str, now: datetime) -> bool:
        if outcome in UNFINISHED:
            raise ValueError(f"{outcome} is not a result")
        reason = log.redact(reason)
        async with self._plain() as conn:
            # Ours and running; or ours, started, and recorded interrupted by another replica
            # while it ran (our lease lapsed): the real result replaces `interrupted`. A sweep
            # holding the row (FOR UPDATE) makes this wait and re-check the new state.
            decision_id = await conn.fetchval(
                "UPDATE actions SET state = $1, finished_at = $2, reason = $3 "
                "WHERE id = $4 AND owner = $5 AND (state = 'running' "
                "OR (state = 'interrupted' AND started_at IS NOT NULL)) RETURNING decision_id",
                outcome,
                now,
                reason,
                action_id,
                self._owner,
            )
            if decision_id is None:
                return False
            await conn.execute(
                "UPDATE decisions SET outcome = $1, reason = $2 WHERE id = $3 "
                "AND outcome IN ($4, 'interrupted')",
                outcome,
                reason,
                decision_id,
                ACTING,
            )
            # The claim follows: what dedup and simulate show is what the audit says. An
            # action held at its turn never ran: its episode stays open, as a held decision.
            await conn.execute(
                "UPDATE claims SET outcome = $1, provisional = provisional OR $2 "
                "WHERE decision_id = $3",
                outcome,
                outcome in HELD,
                decision_id,
            )
        return True

    async def heartbeat(self, action_ids: Sequence[int], now: datetime) -> None:
        if not action_ids:
            return
        async with self._plain() as conn:
            await conn.execute(
                "UPDATE actions SET heartbeat_at = clock_timestamp() "
                "WHERE id = ANY($1::bigint[]) AND owner = $2 AND state = ANY($3::text[])",
                list(action_ids),
                self._owner,
                list(UNFINISHED),
            )

    async def interrupt_stale(self, now: datetime, lease: timedelta | None) -> list[Interrupted]:
        # SKIP LOCKED: two replicas sweeping at once each take different rows, none twice.
        async with self._plain() as conn:
            rows = await conn.fetch(
                "SELECT id, policy, type, state, owner FROM actions "
                "WHERE state = ANY($1::text[]) "
                "AND ($2::interval IS NULL OR heartbeat_at < clock_timestamp() - $2::interval) "
                "FOR UPDATE SKIP LOCKED",
                list(UNFINISHED),
                lease,
            )
            found = [
                await _interrupt(conn, row, stale_reason(row["state"], row["owner"], lease), now)
                for row in rows
            ]
        return [item for item in found if item is not None]

    async def interrupt_actions(
        self, action_ids: Sequence[int], now: datetime, reason: str
    ) -> list[Interrupted]:
        if not action_ids:
            return []
        async with self._plain() as conn:
            rows = await conn.fetch(
                "SELECT id, policy, type FROM actions WHERE id = ANY($1::bigint[]) "
                "AND owner = $2 AND state = ANY($3::text[]) FOR UPDATE",
                list(action_ids),
                self._owner,
                list(UNFINISHED),
            )
            found = [await _interrupt(conn, row, reason, now) for row in rows]
        return [item for item in found if item is not None]

    async def prune(self, before: datetime) -> dict[str, int]:
        @asynccontextmanager
        async def batch() -> AsyncIterator[_PruneBatch]:
            # The decision lock, one batch at a time: no decision (a re-sent episode stamping
            # its last_seen, a claim being read) runs between a batch's check and its delete.
            async with self.transaction() as tx:
                yield _PruneBatch(tx.conn)

        return await prune_batches(batch, before)

    async def decisions(self, limit: int) -> list[DecisionRecord]:
        rows = await self._fetch("SELECT * FROM decisions ORDER BY id DESC LIMIT $1", limit)
        return [decision_from_row(row, _same) for row in rows]

    async def approvals(self, *, pending_only: bool) -> list[Approval]:
        where = " WHERE state = 'pending'" if pending_only else ""
        rows = await self._fetch(f"SELECT * FROM approvals{where} ORDER BY requested_at")  # noqa: S608  # a constant, not input
        return [approval_from_row(row, _same) for row in rows]

    async def approval(self, approval_id: str) -> Approval | None:
        rows = await self._fetch("SELECT * FROM approvals WHERE id = $1", approval_id)
        return approval_from_row(rows[0], _same) if rows else None

    async def approval_context(self, approval_id: str) -> dict[str, Any]:
        rows = await self._fetch("SELECT context FROM approvals WHERE id = $1", approval_id)
        return dict(json.loads(rows[0][0])) if rows else {}

    async def approval_message(self, approval_id: str) -> tuple[str, str] | None:
        rows = await self._fetch(
            "SELECT slack_channel, slack_ts FROM approvals WHERE id = $1", approval_id
        )
        return (rows[0][0], rows[0][1]) if rows and rows[0][0] and rows[0][1] else None

    async def set_approval_message(self, approval_id: str, channel: str, ts: str) -> None:
        async with self._plain() as conn:
            await conn.execute(
                "UPDATE approvals SET slack_channel = $1, slack_ts = $2 WHERE id = $3",
                channel,
                ts,
                approval_id,
            )

    async def unannounced_approvals(self) -> list[Approval]:
        rows = await self._fetch(
            "SELECT * FROM approvals WHERE state = 'pending' AND slack_ts IS NULL"
        )
        return [approval_from_row(row, _same) for row in rows]

    async def approval_for_action(self, action_id: int) -> Approval | None:
        rows = await self._fetch(
            "SELECT approvals.* FROM approvals JOIN actions "
            "ON actions.decision_id = approvals.decision_id WHERE actions.id = $1",
            action_id,
        )
        return approval_from_row(rows[0], _same) if rows else None

    async def add_approval_event(
        self, approval_id: str, who: str, event: str, detail: str, now: datetime
    ) -> None:
        async with self._plain() as conn:
            await conn.execute(
                "INSERT INTO approval_events (time, approval_id, who, event, detail) "
                "VALUES ($1, $2, $3, $4, $5)",
                now,
                approval_id,
                who,
                event,
                log.redact(detail),
            )

    async def approval_events(self, approval_id: str) -> list[dict[str, str]]:
        rows = await self._fetch(
            "SELECT time, who, event, detail FROM approval_events WHERE approval_id = $1 "
            "ORDER BY id",
            approval_id,
        )
        return [
            {"time": _text_time(r[0]), "who": r[1], "event": r[2], "detail": r[3]} for r in rows
        ]

    async def get_flag(self, name: str) -> str | None:
        rows = await self._fetch("SELECT value FROM flags WHERE name = $1", name)
        return str(rows[0][0]) if rows else None

    async def set_flag(self, name: str, value: str | None) -> None:
        # Under the decision lock: once a pause is committed, no decision still in flight on
        # another replica can act on the state from before it.
        async with self.transaction() as tx:
            if value is None:
                await tx.conn.execute("DELETE FROM flags WHERE name = $1", name)
            else:
                await tx.conn.execute(
                    "INSERT INTO flags (name, value) VALUES ($1, $2) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    name,
                    value,
                )

    async def flags(self, prefix: str) -> list[tuple[str, str]]:
        rows = await self._fetch(
            "SELECT name, value FROM flags WHERE starts_with(name, $1) ORDER BY name", prefix
        )
        return [(r[0], r[1]) for r in rows]


async def _rollback(tx: asyncpg.transaction.Transaction) -> None:
    with contextlib.suppress(*_DB_ERRORS):  # the connection is gone: nothing was committed
        await tx.rollback()


async def _interrupt(
    conn: _Conn, row: asyncpg.Record, reason: str, now: datetime
) -> Interrupted | None:
    reason = log.redact(reason)
    decision_id = await conn.fetchval(
        "UPDATE actions SET state = 'interrupted', finished_at = $1, reason = $2 "
        "WHERE id = $3 AND state = ANY($4::text[]) RETURNING decision_id",
        now,
        reason,
        row["id"],
        list(UNFINISHED),
    )
    if decision_id is None:
        return None
    await conn.execute(
        "UPDATE decisions SET outcome = 'interrupted', reason = $1 WHERE id = $2 AND outcome = $3",
        reason,
        decision_id,
        ACTING,
    )
    await conn.execute(
        "UPDATE claims SET outcome = 'interrupted' WHERE decision_id = $1 AND outcome = $2",
        decision_id,
        ACTING,
    )
    return Interrupted(row["id"], row["policy"], row["type"], reason)


def _text_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # as the SQLite store
