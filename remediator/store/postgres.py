"""PostgresStore: the shared store for several replicas (asyncpg, one pool per process).

Exactly-once across replicas rests on one rule: every deciding transaction first takes the
transaction-scoped advisory lock DECIDE_LOCK, so deciding transactions run one at a time
across all replicas, as SQLite's one writer does in one process. Claims, cooldowns and rate
limits read under the lock are therefore still true at commit. One lock (not one per policy)
cannot deadlock, and only new decisions take it: repeats of a known episode are answered from
each replica's memory. The claims primary key with a never-overwrite upsert is the backstop.

The statements are the shared ones (store/sql.py); this module keeps the pool, the locks
(decision, migration, targets) and the transactions, and applies the schema and its migrations
(postgres_schema.py); what PostgreSQL does its own way (ids drawn from the identity sequences,
a batch's claims as one upsert of arrays) is in postgres_conn.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from remediator import log
from remediator.errors import StoreError
from remediator.store.dialect import POSTGRES, Conn
from remediator.store.postgres_conn import PgConn, PgTransaction
from remediator.store.postgres_schema import FIRST_VERSION, MIGRATIONS, SCHEMA
from remediator.store.records import replica_name
from remediator.store.roles.store import SCHEMA_VERSION, refuse_newer
from remediator.store.sql import SqlStore

if TYPE_CHECKING:
    from remediator.store.postgres_conn import PoolConn

_log = log.get("remediator.store")

# Advisory lock keys (64-bit, arbitrary but fixed): ASCII "remdecid" and "remmigra".
DECIDE_LOCK = 0x72656D6465636964
MIGRATE_LOCK = 0x72656D6D69677261
# Targets take two-int advisory locks (a lock space apart from the bigint keys above):
# (TARGET_LOCKS, hashtext(backend/target)). A hash collision only makes two targets wait
# for each other, never lets one target run twice at once.
TARGET_LOCKS = 0x72746774

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
                        await conn.execute(SCHEMA)
                        await conn.execute(
                            "INSERT INTO remediator_schema (version) VALUES ($1)", FIRST_VERSION
                        )
                    version = FIRST_VERSION
                    _log.info("store.schema_created", version=version)
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    async with conn.transaction():
                        await conn.execute(MIGRATIONS[target])
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
    async def _acquire(self) -> AsyncIterator[PoolConn]:
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
