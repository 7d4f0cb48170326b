"""PostgresStore: the shared store for several replicas (asyncpg, one pool per process).

Exactly-once across replicas rests on one rule: every deciding transaction first takes the
transaction-scoped advisory lock DECIDE_LOCK, so deciding transactions run one at a time
across all replicas, as SQLite's one writer does in one process. Claims, cooldowns and rate
limits read under the lock are therefore still true at commit. One lock (not one per policy)
cannot deadlock, and only new decisions take it: repeats of a known episode are answered from
each replica's memory. The claims primary key with a never-overwrite upsert is the backstop.

The statements are the shared ones (store/sql.py); this module keeps the pool, the schema and
its migrations, the locks (decision, migration, targets), and what PostgreSQL does its own
way: ids drawn from the identity sequences, a batch's claims as one upsert of arrays.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from remediator import log
from remediator.core.dedup import Claim
from remediator.core.judge import Ids
from remediator.errors import StoreError
from remediator.store.decisiontx import CLAIM_UPSERT
from remediator.store.dialect import POSTGRES, Conn
from remediator.store.records import replica_name
from remediator.store.roles.store import SCHEMA_VERSION, refuse_newer
from remediator.store.sql import SqlStore, SqlTransaction

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
    # As SQLite's 9: the audit API's page indexes and the operator-events journal.
    9: """
CREATE INDEX decisions_policy ON decisions (policy, id);
CREATE INDEX decisions_outcome ON decisions (outcome, id);
CREATE INDEX decisions_target ON decisions (target, id);
CREATE INDEX decisions_time ON decisions (time, id);
CREATE TABLE operator_events (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, time TIMESTAMPTZ NOT NULL,
  who TEXT NOT NULL, act TEXT NOT NULL, policy TEXT, decision_id BIGINT, approval_id TEXT,
  detail TEXT NOT NULL
);
CREATE INDEX operator_events_who ON operator_events (who, id);
CREATE INDEX operator_events_act ON operator_events (act, id);
CREATE INDEX operator_events_policy ON operator_events (policy, id);
CREATE INDEX operator_events_time ON operator_events (time, id);
CREATE INDEX operator_events_decision ON operator_events (decision_id, id);
""",
    # As SQLite's 10: whether an action may have reached its target (the counters counted
    # again without those that never did), an episode's annotations and generator URL, and
    # the held claims' index.
    10: """
ALTER TABLE actions ADD COLUMN reached BOOLEAN NOT NULL DEFAULT TRUE;
UPDATE actions SET reached = FALSE WHERE state IN ('paused', 'tripped', 'cooldown')
  OR (state = 'interrupted' AND started_at IS NULL);
ALTER TABLE episodes ADD COLUMN annotations TEXT;
ALTER TABLE episodes ADD COLUMN generator_url TEXT NOT NULL DEFAULT '';
CREATE INDEX claims_held ON claims (policy) WHERE provisional;
DELETE FROM action_counts;
INSERT INTO action_counts (policy, dry_run, minute, n)
SELECT policy, dry_run, date_trunc('minute', created_at), count(*) FROM actions WHERE reached
GROUP BY 1, 2, 3;
INSERT INTO action_counts (policy, dry_run, minute, n)
SELECT '', dry_run, date_trunc('minute', created_at), count(*) FROM actions WHERE reached
GROUP BY 2, 3;
""",
    # As SQLite's 8: per-minute action counters, counted from the actions already there.
    8: """
CREATE TABLE action_counts (
  policy TEXT NOT NULL, dry_run BOOLEAN NOT NULL, minute TIMESTAMPTZ NOT NULL,
  n BIGINT NOT NULL, PRIMARY KEY (policy, dry_run, minute)
);
INSERT INTO action_counts (policy, dry_run, minute, n)
SELECT policy, dry_run, date_trunc('minute', created_at), count(*) FROM actions GROUP BY 1, 2, 3;
INSERT INTO action_counts (policy, dry_run, minute, n)
SELECT '', dry_run, date_trunc('minute', created_at), count(*) FROM actions GROUP BY 2, 3;
""",
    # As SQLite's 7: what an executor reports beside the reason; a decision's ladder rung.
    7: "ALTER TABLE actions ADD COLUMN result TEXT NOT NULL DEFAULT '{}'; "
    "ALTER TABLE decisions ADD COLUMN step INTEGER;",
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
_PUT_CLAIMS = (
    "INSERT INTO claims (policy, episode, decision_id, outcome, provisional, action, "  # noqa: S608  # constants
    "target, dedup_decision_id) SELECT * FROM unnest($1::text[], $2::text[], "
    "$3::bigint[], $4::text[], $5::boolean[], $6::text[], $7::text[], $8::bigint[]) "
    f"{CLAIM_UPSERT} RETURNING 1"
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


async def _rollback(tx: asyncpg.transaction.Transaction) -> None:
    with contextlib.suppress(*_DB_ERRORS):  # the connection is gone: nothing was committed
        await tx.rollback()


class PgConn:
    """dialect.Conn on an asyncpg connection: counts from the command status, ids RETURNING."""

    dialect = POSTGRES

    def __init__(self, conn: _Conn) -> None:
        self.conn = conn

    async def rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self.conn.fetch(POSTGRES.sql(sql), *args)

    async def row(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self.conn.fetchrow(POSTGRES.sql(sql), *args)

    async def value(self, sql: str, *args: Any) -> Any:
        return await self.conn.fetchval(POSTGRES.sql(sql), *args)

    async def run(self, sql: str, *args: Any) -> int:
        status = await self.conn.execute(POSTGRES.sql(sql), *args)
        return int(status.rsplit(" ", 1)[-1])  # "UPDATE 1", "INSERT 0 1", "DELETE 3"

    async def run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.conn.executemany(POSTGRES.sql(sql), rows)

    async def rows_many(
        self, queries: Sequence[tuple[str, Sequence[Any]]]
    ) -> list[list[asyncpg.Record]]:
        return [await self.rows(sql, *args) for sql, args in queries]

    async def run_many_all(self, steps: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> list[int]:
        for sql, rows in steps:
            await self.run_many(sql, rows)
        return [-1] * len(steps)  # asyncpg's executemany reports no counts

    async def insert(self, sql: str, *args: Any) -> int:
        return int(await self.conn.fetchval(POSTGRES.sql(f"{sql} RETURNING id"), *args))


class PgTransaction(SqlTransaction):
    def __init__(self, conn: _Conn, owner: str) -> None:
        super().__init__(PgConn(conn), owner)
        self.conn = conn

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

    async def _put_claims(self, claims: Mapping[tuple[str, str], Claim]) -> int:
        """One upsert of arrays for all (asyncpg's executemany reports no row counts); a row
        it may not replace (a settled claim of another decision) is not returned."""
        items = list(claims.items())
        written = await self.conn.fetch(
            _PUT_CLAIMS,
            [k[0] for k, _ in items],
            [k[1] for k, _ in items],
            [c.decision_id for _, c in items],
            [str(c.outcome) for _, c in items],
            [c.provisional for _, c in items],
            [c.action for _, c in items],
            [c.target for _, c in items],
            [c.dedup_decision_id for _, c in items],
        )
        return len(written)


class PostgresStore(SqlStore):
    dialect = POSTGRES
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
    async def _bookkeeping(self) -> AsyncIterator[Conn]:
        """A transaction without the decision lock: bookkeeping that decides nothing."""
        async with self._acquire() as conn:
            try:
                async with conn.transaction():
                    yield PgConn(conn)
            except _DB_ERRORS as exc:
                raise _unavailable(exc) from None

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[Conn]:
        try:
            async with self._acquire() as conn:
                yield PgConn(conn)
        except _DB_ERRORS as exc:
            raise _unavailable(exc) from None
