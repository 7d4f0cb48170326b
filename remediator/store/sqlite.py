"""SqliteStore: the embedded default store (aiosqlite, WAL, one writer connection).

Every statement runs on one connection under one lock, so a transaction is never
interleaved with another writer; the schema version lives in PRAGMA user_version. This
module keeps the connection, its lock and its transactions, and applies the schema and its
migrations (sqlite_schema.py); the statements a transaction runs are in sqlite_conn.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiosqlite
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_random_exponential

from remediator.errors import StoreError
from remediator.store.dialect import SQLITE, Conn
from remediator.store.records import replica_name
from remediator.store.roles.store import SCHEMA_VERSION, refuse_newer
from remediator.store.sql import SqlStore
from remediator.store.sqlite_conn import SqliteConn, SqliteTransaction
from remediator.store.sqlite_schema import MIGRATIONS, SCHEMA


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
            script = [SCHEMA] if version == 0 else []
            script += [
                MIGRATIONS[target] for target in range(max(version, 1) + 1, SCHEMA_VERSION + 1)
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
