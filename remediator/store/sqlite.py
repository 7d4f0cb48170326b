"""SqliteStore: the embedded default store (aiosqlite, WAL, one writer connection).

Every statement runs on one connection under one lock, so a transaction is never
interleaved with another writer; the schema version lives in PRAGMA user_version. The
statements are the shared ones (store/sql.py); this module keeps the connection, the schema
and its migrations, and what SQLite does its own way: ids reserved from sqlite_sequence
under the write lock, a batch's claims as one executemany.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

import aiosqlite
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_random_exponential

from remediator.core.dedup import Claim
from remediator.core.judge import Decided, Ids
from remediator.errors import StoreError
from remediator.store.decisiontx import PUT_CLAIM
from remediator.store.dialect import SQLITE, Conn, Row
from remediator.store.records import replica_name
from remediator.store.roles.decisionlog import ClaimConflictError
from remediator.store.roles.store import SCHEMA_VERSION, refuse_newer
from remediator.store.rows import claim_row
from remediator.store.sql import SqlStore, SqlTransaction

_SCHEMA = """
CREATE TABLE episodes (
  episode TEXT PRIMARY KEY, source TEXT NOT NULL, fingerprint TEXT NOT NULL,
  alertname TEXT NOT NULL, labels TEXT NOT NULL, starts_at TEXT NOT NULL,
  first_seen TEXT NOT NULL, resolved_at TEXT
);
CREATE TABLE decisions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, policy TEXT NOT NULL,
  source TEXT NOT NULL, alertname TEXT NOT NULL, fingerprint TEXT NOT NULL,
  episode TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,
  outcome TEXT NOT NULL, reason TEXT NOT NULL, approval_id TEXT, repeats INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE claims (
  policy TEXT NOT NULL, episode TEXT NOT NULL, decision_id INTEGER NOT NULL,
  outcome TEXT NOT NULL, provisional INTEGER NOT NULL, action TEXT NOT NULL,
  target TEXT NOT NULL, dedup_decision_id INTEGER, PRIMARY KEY (policy, episode)
);
CREATE TABLE actions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, decision_id INTEGER NOT NULL, policy TEXT NOT NULL,
  type TEXT NOT NULL, target TEXT NOT NULL, params TEXT NOT NULL, dry_run INTEGER NOT NULL,
  state TEXT NOT NULL, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT,
  reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX actions_policy_target ON actions (policy, target, created_at);
CREATE INDEX actions_created ON actions (created_at);
CREATE INDEX actions_state ON actions (state);
CREATE TABLE approvals (
  id TEXT PRIMARY KEY, decision_id INTEGER NOT NULL, policy TEXT NOT NULL, action TEXT NOT NULL,
  target TEXT NOT NULL, params TEXT NOT NULL, episode TEXT NOT NULL, state TEXT NOT NULL,
  requested_at TEXT NOT NULL, expires_at TEXT NOT NULL, required INTEGER NOT NULL,
  approvers TEXT NOT NULL, approved_by TEXT NOT NULL, decided_by TEXT
);
CREATE INDEX approvals_episode ON approvals (episode, state);
CREATE TABLE flags (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Schema changes after version 1, applied in order to an existing store.
_MIGRATIONS = {
    2: "CREATE TABLE cycles (grp TEXT PRIMARY KEY, generation INTEGER NOT NULL, "
    "open INTEGER NOT NULL);",
    # What an approval message shows, where it was posted, and who was refused.
    3: "ALTER TABLE approvals ADD COLUMN context TEXT NOT NULL DEFAULT '{}'; "
    "ALTER TABLE approvals ADD COLUMN slack_channel TEXT; "
    "ALTER TABLE approvals ADD COLUMN slack_ts TEXT; "
    "CREATE TABLE approval_events (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, "
    "approval_id TEXT NOT NULL, who TEXT NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL);",
    # Action leases: which process holds an action and when it last said it is alive.
    4: "ALTER TABLE actions ADD COLUMN owner TEXT NOT NULL DEFAULT ''; "
    "ALTER TABLE actions ADD COLUMN heartbeat_at TEXT;",
    # Retention: when an episode was last seen (what keeps its claim from a prune), and the
    # indexes a prune's "is anything still pointing at it" checks need. An episode recorded
    # before this version counts as seen now: its repeats were never stamped, so it keeps
    # its claim for a whole retention window after the upgrade rather than lose it early.
    5: "ALTER TABLE episodes ADD COLUMN last_seen TEXT; "
    "UPDATE episodes SET last_seen = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'); "
    "CREATE INDEX claims_episode ON claims (episode); "
    "CREATE INDEX claims_decision ON claims (decision_id); "
    "CREATE INDEX claims_dedup ON claims (dedup_decision_id); "
    "CREATE INDEX actions_decision ON actions (decision_id); "
    "CREATE INDEX approvals_decision ON approvals (decision_id); "
    "CREATE INDEX approval_events_approval ON approval_events (approval_id, id);",
    # Window counts per policy and per kind (live or dry run) read an index range bounded
    # by the limit, never the history (core/guards.py Facts).
    6: "CREATE INDEX actions_policy_created ON actions (policy, created_at); "
    "CREATE INDEX actions_dry_created ON actions (dry_run, created_at);",
    # What an executor reports beside the reason (docker.exec: exit codes, output tails).
    # and which rung of an escalation ladder a decision is (NULL: a policy of one action).
    7: "ALTER TABLE actions ADD COLUMN result TEXT NOT NULL DEFAULT '{}'; "
    "ALTER TABLE decisions ADD COLUMN step INTEGER;",
    # Per-minute action counters: window counts read a minute's row, not its actions
    # (store/facts.py), counted from the actions already there.
    8: "CREATE TABLE action_counts (policy TEXT NOT NULL, dry_run INTEGER NOT NULL, "
    "minute TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (policy, dry_run, minute)); "
    "INSERT INTO action_counts (policy, dry_run, minute, n) "
    "SELECT policy, dry_run, substr(created_at, 1, 16) || ':00.000000Z', count(*) "
    "FROM actions GROUP BY 1, 2, 3; "
    "INSERT INTO action_counts (policy, dry_run, minute, n) "
    "SELECT '', dry_run, substr(created_at, 1, 16) || ':00.000000Z', count(*) "
    "FROM actions GROUP BY 2, 3;",
    # The audit API: each filter of a decisions page an index range in page order (id), and
    # the operator-events journal (who approved, denied, paused, resumed, reset, reloaded).
    9: "CREATE INDEX decisions_policy ON decisions (policy, id); "
    "CREATE INDEX decisions_outcome ON decisions (outcome, id); "
    "CREATE INDEX decisions_target ON decisions (target, id); "
    "CREATE INDEX decisions_time ON decisions (time, id); "
    "CREATE TABLE operator_events (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, "
    "who TEXT NOT NULL, act TEXT NOT NULL, policy TEXT, decision_id INTEGER, approval_id TEXT, "
    "detail TEXT NOT NULL); "
    "CREATE INDEX operator_events_who ON operator_events (who, id); "
    "CREATE INDEX operator_events_act ON operator_events (act, id); "
    "CREATE INDEX operator_events_policy ON operator_events (policy, id); "
    "CREATE INDEX operator_events_time ON operator_events (time, id); "
    "CREATE INDEX operator_events_decision ON operator_events (decision_id, id);",
    # Honest budgets (10) and re-deciding held episodes. `reached`: FALSE once an action provably
    # never reached its target (refused before sending, held when its turn came, interrupted
    # before it started); such an action counts toward no cooldown or rate limit, so the
    # counters are counted again without them. An episode's annotations and generator URL:
    # what resume and reset need to decide it again (NULL for those recorded before: they
    # wait for their next repeat). A partial index finds the held claims.
    10: "ALTER TABLE actions ADD COLUMN reached INTEGER NOT NULL DEFAULT 1; "
    "UPDATE actions SET reached = 0 WHERE state IN ('paused', 'tripped', 'cooldown') "
    "OR (state = 'interrupted' AND started_at IS NULL); "
    "ALTER TABLE episodes ADD COLUMN annotations TEXT; "
    "ALTER TABLE episodes ADD COLUMN generator_url TEXT NOT NULL DEFAULT ''; "
    "CREATE INDEX claims_held ON claims (policy) WHERE provisional; "
    "DELETE FROM action_counts; "
    "INSERT INTO action_counts (policy, dry_run, minute, n) "
    "SELECT policy, dry_run, substr(created_at, 1, 16) || ':00.000000Z', count(*) "
    "FROM actions WHERE reached GROUP BY 1, 2, 3; "
    "INSERT INTO action_counts (policy, dry_run, minute, n) "
    "SELECT '', dry_run, substr(created_at, 1, 16) || ':00.000000Z', count(*) "
    "FROM actions WHERE reached GROUP BY 2, 3;",
}

_T = TypeVar("_T")


async def _rollback(db: aiosqlite.Connection) -> None:
    """ROLLBACK, queued after whatever the connection's thread still has to run, and shielded
    so a second cancellation cannot skip it; "no transaction is active" is fine."""
    with contextlib.suppress(sqlite3.Error, ValueError):
        await asyncio.shield(db.execute("ROLLBACK"))


def _busy(exc: BaseException) -> bool:
    """SQLITE_BUSY (any extended code): another connection holds a lock right now."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.OperationalError)
        and code is not None
        and (code & 0xFF == sqlite3.SQLITE_BUSY)
    )


async def _join_worker(connection: aiosqlite.Connection) -> None:
    # On a failed connect aiosqlite queues a stop for its worker thread without waiting;
    # the thread would then report to an event loop that may have closed meanwhile.
    worker = getattr(connection, "_thread", None)
    if worker is not None and worker.is_alive():
        await asyncio.to_thread(worker.join, 5)


class SqliteConn:
    """dialect.Conn on the aiosqlite connection: counts and ids from the cursor.

    Every call is ONE trip to aiosqlite's thread (a trip costs ~60 us of hand-off and loop
    wake-up, more than most of these statements): it runs a function there through
    aiosqlite's `_execute` on its sqlite3 connection `_conn`, private but stable across the
    versions pyproject admits (the store contract tests exercise every call on each run).
    A deciding transaction's BEGIN IMMEDIATE is not a trip of its own: it runs at the head
    of the transaction's first statement (`begin`), which then fails as BEGIN would.
    """

    dialect = SQLITE

    def __init__(
        self, db: aiosqlite.Connection, *, begin: str | None = None, end: str = "COMMIT"
    ) -> None:
        self.db = db
        self.pending_begin = begin
        self.end = end  # how the transaction ends: COMMIT, or ROLLBACK (commit=False)
        self.ended = False  # ended in a trip of its own statements (write_and_end)
        self.writes = 0  # statements that may have changed rows (sqlite.py's id reservation)

    async def _trip(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        if self.ended:  # a statement now would run outside the transaction: autocommitted
            raise StoreError("statement after the end of its transaction")
        begin, self.pending_begin = self.pending_begin, None

        def run() -> _T:
            conn = self.db._conn  # private: see the class docstring
            if begin is not None:
                conn.execute(begin)
            return work(conn)

        try:
            result: _T = await self.db._execute(run)  # type: ignore[no-untyped-call]
        except ValueError as exc:  # aiosqlite: the connection is closed
            raise StoreError(f"state store unavailable: {exc}") from None
        return result

    async def rows(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        text = SQLITE.sql(sql)
        return await self._trip(lambda conn: conn.execute(text, args).fetchall())

    async def row(self, sql: str, *args: Any) -> sqlite3.Row | None:
        return next(iter(await self.rows(sql, *args)), None)

    async def rows_many(
        self, queries: Sequence[tuple[str, Sequence[Any]]]
    ) -> list[list[sqlite3.Row]]:
        compiled = [(SQLITE.sql(sql), args) for sql, args in queries]
        return await self._trip(
            lambda conn: [conn.execute(sql, args).fetchall() for sql, args in compiled]
        )

    async def run_many_all(self, steps: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> list[int]:
        compiled = [(SQLITE.sql(sql), rows) for sql, rows in steps]
        self.writes += 1
        return await self._trip(
            lambda conn: [conn.executemany(sql, rows).rowcount for sql, rows in compiled]
        )

    async def write_and_end(
        self,
        steps: Sequence[tuple[str, Sequence[Sequence[Any]]]],
        done: Callable[[list[int]], bool],
    ) -> list[int]:
        """As run_many_all, then, if `done(counts)`, the transaction ends (`end`) in the same
        trip; if not, it is left open for the caller's exit to roll back."""
        compiled = [(SQLITE.sql(sql), rows) for sql, rows in steps]
        end = self.end
        self.writes += 1

        def work(conn: sqlite3.Connection) -> tuple[list[int], bool]:
            counts = [conn.executemany(sql, rows).rowcount for sql, rows in compiled]
            if not done(counts):
                return counts, False
            conn.execute(end)
            return counts, True

        counts, self.ended = await self._trip(work)
        return counts

    async def value(self, sql: str, *args: Any) -> Any:
        row = await self.row(sql, *args)
        return row[0] if row is not None else None

    async def run(self, sql: str, *args: Any) -> int:
        text = SQLITE.sql(sql)
        self.writes += 1
        return await self._trip(lambda conn: conn.execute(text, args).rowcount)

    async def run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        text, listed = SQLITE.sql(sql), list(rows)
        self.writes += 1
        await self._trip(lambda conn: conn.executemany(text, listed))

    async def insert(self, sql: str, *args: Any) -> int:
        text = SQLITE.sql(sql)
        self.writes += 1
        row_id = await self._trip(lambda conn: conn.execute(text, args).lastrowid)
        if row_id is None:  # sqlite3 always sets it after an INSERT
            raise StoreError("insert did not return a row id")
        return row_id


class SqliteTransaction(SqlTransaction):
    claims_in_batch = True  # sqlite3's executemany counts the rows it wrote

    def __init__(self, conn: SqliteConn, owner: str) -> None:
        super().__init__(conn, owner)
        self.conn = conn
        # The id sequences as read with the facts (same trip), and the write count then.
        self._sequences: tuple[int, int, int] | None = None

    async def _facts_trip(
        self, queries: Sequence[tuple[str, Sequence[object]]]
    ) -> Sequence[Sequence[Row]]:
        """The facts, and in the same trip the id sequences reserve_ids needs next."""
        *found, sequences = await self.sql.rows_many([*queries, (_SEQUENCE_SQL, ())])
        row = sequences[0]
        self._sequences = (int(row[0]), int(row[1]), self.conn.writes)
        return found

    async def write(self, decided: Decided, now: datetime) -> None:
        """As every store's; a batch with nothing after its rows (no approval to request or
        cancel: nearly every batch) also ends the transaction in the same trip, once its
        claims are counted there: a conflict ends nothing, and the exit rolls it back."""
        if decided.approval_rows or decided.cancelled:
            await super().write(decided, now)
            return
        steps, claims_at = self._write_steps(decided, now)
        wanted = len(decided.claims)
        counts = await self.conn.write_and_end(
            steps, lambda counts: claims_at is None or counts[claims_at] == wanted
        )
        if claims_at is not None and counts[claims_at] != wanted:
            raise ClaimConflictError("an episode of this batch is already decided")

    async def reserve_ids(self, decisions: int, actions: int) -> Ids:
        """Under the write lock (BEGIN IMMEDIATE) nobody else inserts: the ids after the
        highest ever used (sqlite_sequence, AUTOINCREMENT's record) are ours to assign. Read
        with the facts when nothing was written since, else now."""
        known, self._sequences = self._sequences, None
        if known is not None and known[2] == self.conn.writes:
            last_decision, last_action = known[0], known[1]
        else:
            row = await self.sql.row(_SEQUENCE_SQL)
            last_decision, last_action = (int(row[0]), int(row[1])) if row else (0, 0)
        return Ids(itertools.count(last_decision + 1), itertools.count(last_action + 1))

    async def _put_claims(self, claims: Mapping[tuple[str, str], Claim]) -> int:
        """One executemany; the cursor counts the rows it wrote, over all of them."""
        rows = [claim_row(key, claim) for key, claim in claims.items()]
        (written,) = await self.sql.run_many_all([(PUT_CLAIM, rows)])
        return written


_SEQUENCE_SQL = (
    "SELECT (SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'decisions'), "
    "(SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'actions')"
)


class SqliteStore(SqlStore):
    dialect = SQLITE
    exclusive = True  # one daemon per file: the one writer lock is in this process

    def __init__(self, path: str, *, busy_timeout_ms: int = 5000, owner: str = "") -> None:
        self._path = path
        self._owner = owner or replica_name()
        self._busy_timeout_ms = busy_timeout_ms
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        connecting = aiosqlite.connect(self._path, isolation_level=None)
        try:
            self._db = await connecting
        except (sqlite3.Error, OSError) as exc:
            await _join_worker(connecting)
            raise StoreError(f"cannot open SQLite state store {self._path}: {exc}") from None
        try:
            self._db.row_factory = sqlite3.Row
            await self._db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            if self._path != ":memory:":
                await self._wal(self._db)
            # FULL: an acknowledged decision must survive power loss, not a process crash only.
            await self._db.execute("PRAGMA synchronous = FULL")
            await self._migrate()
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise StoreError(f"cannot open SQLite state store {self._path}: {exc}") from None
        except BaseException:
            # A refused schema (StoreError) or a cancellation must not leave aiosqlite's
            # non-daemon thread running: it would keep the process from exiting.
            await self.close()
            raise

    async def _wal(self, db: aiosqlite.Connection) -> None:
        """PRAGMA journal_mode = WAL, retried on SQLITE_BUSY for up to busy_timeout.

        Switching a new file to WAL reads its header (a read transaction), then upgrades to
        the exclusive lock to rewrite it. SQLite calls the busy handler only while no
        transaction is open (sqlite3BtreeBeginTrans: two connections upgrading their read
        locks would otherwise wait for each other forever), so busy_timeout does not apply
        to that upgrade: whenever another connection holds any lock at that instant (a second
        replica opening the same new file, or its migration), the pragma fails at once with
        "database is locked" (4 processes opening a new file at once: 3 to 21 rounds in 200).
        The failed statement changes nothing and drops its read lock, and once the file is
        WAL the mode is persistent and later opens need no exclusive lock, so retrying is
        sound; random backoff keeps two openers from colliding in step. A flock on a sidecar
        file would serialise remediator's own openers only (not a sqlite3 shell or a backup
        tool) and leave a file beside the state; a bounded retry covers any contender.
        """
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_busy),
            stop=stop_after_delay(self._busy_timeout_ms / 1000),
            wait=wait_random_exponential(multiplier=0.005, max=0.1),
            reraise=True,
        ):
            with attempt:
                await db.execute("PRAGMA journal_mode = WAL")

    async def _migrate(self) -> None:
        """Under the write lock (BEGIN IMMEDIATE), like PostgreSQL's advisory lock: two
        processes opening a new file at once create the schema once."""
        db = self._conn()
        await db.execute("BEGIN IMMEDIATE")
        try:
            async with db.execute("PRAGMA user_version") as cursor:
                row = await cursor.fetchone()
            version = int(row[0]) if row else 0
            refuse_newer(self._path, version)
            script = [_SCHEMA] if version == 0 else []
            script += [
                _MIGRATIONS[target] for target in range(max(version, 1) + 1, SCHEMA_VERSION + 1)
            ]
            for statement in ";".join(script).split(";"):
                if statement.strip():
                    await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            await db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error, ValueError):
                await db.execute("ROLLBACK")
            raise

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("state store is not open")
        return self._db

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def ping(self) -> None:
        try:
            async with self._lock, self._conn().execute("SELECT 1") as cursor:
                await cursor.fetchone()
        except (sqlite3.Error, ValueError) as exc:
            raise StoreError(f"state store unavailable: {exc}") from None

    @asynccontextmanager
    async def transaction(self, *, commit: bool = True) -> AsyncIterator[SqliteTransaction]:
        async with self._lock:
            db = self._conn()
            # BEGIN IMMEDIATE runs at the head of the first statement's trip (SqliteConn).
            conn = SqliteConn(db, begin="BEGIN IMMEDIATE", end="COMMIT" if commit else "ROLLBACK")
            try:
                yield SqliteTransaction(conn, self._owner)
                if conn.pending_begin is None and not conn.ended:  # else nothing to end
                    await db.execute(conn.end)
            except BaseException as exc:
                # If BEGIN ran (even in a trip whose caller was cancelled) this undoes it; if
                # the connection is gone, nothing was committed either way.
                if conn.pending_begin is None and not conn.ended:
                    await _rollback(db)
                if isinstance(exc, sqlite3.Error):  # a full disk, a lost file: a 503, retried
                    raise StoreError(f"state store unavailable: {exc}") from None
                raise

    @asynccontextmanager
    async def _bookkeeping(self) -> AsyncIterator[Conn]:
        """One writer: bookkeeping is a write transaction like any other."""
        async with self.transaction() as tx:
            yield tx.sql

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[Conn]:
        try:
            async with self._lock:
                yield SqliteConn(self._conn())
        except (sqlite3.Error, ValueError) as exc:
            raise StoreError(f"state store unavailable: {exc}") from None

    @asynccontextmanager
    async def target_lease(self, key: str) -> AsyncIterator[None]:
        """One process owns a SQLite store: the runner's in-process target locks suffice."""
        yield
