"""The statements of one SQLite transaction: SqliteConn (one trip to aiosqlite's thread per
call) and SqliteTransaction (ids from sqlite_sequence, a batch's claims as one executemany).

It must not take the write lock, begin or end a transaction on its own (sqlite.py's
SqliteStore.transaction does), nor hold the schema.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import aiosqlite

from remediator.core.dedup import Claim
from remediator.core.judge import Decided, Ids
from remediator.errors import StoreError
from remediator.store.decisiontx import PUT_CLAIM
from remediator.store.dialect import SQLITE, Row
from remediator.store.roles.decisionlog import ClaimConflictError
from remediator.store.rows import claim_row
from remediator.store.sql import SqlTransaction

_T = TypeVar("_T")


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
        self.writes = 0  # statements that may have changed rows (reserve_ids below)

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
