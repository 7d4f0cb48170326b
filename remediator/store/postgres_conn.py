"""The statements of one PostgreSQL transaction: PgConn (counts from the command status, ids
RETURNING) and PgTransaction (ids from the identity sequences, claims as one upsert of arrays).

It must not acquire, lock, begin or end anything on its own: postgres.py's PostgresStore
takes the connection and the decision lock and ends the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from remediator.core.dedup import Claim
from remediator.core.judge import Ids
from remediator.store.decisiontx import CLAIM_UPSERT
from remediator.store.dialect import POSTGRES
from remediator.store.sql import SqlTransaction

if TYPE_CHECKING:  # generic only in the stubs
    PoolConn = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]

_PUT_CLAIMS = (
    "INSERT INTO claims (policy, episode, decision_id, outcome, provisional, action, "  # noqa: S608  # constants
    "target, dedup_decision_id) SELECT * FROM unnest($1::text[], $2::text[], "
    "$3::bigint[], $4::text[], $5::boolean[], $6::text[], $7::text[], $8::bigint[]) "
    f"{CLAIM_UPSERT} RETURNING 1"
)


class PgConn:
    """dialect.Conn on an asyncpg connection: counts from the command status, ids RETURNING."""

    dialect = POSTGRES

    def __init__(self, conn: PoolConn) -> None:
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
    def __init__(self, conn: PoolConn, owner: str) -> None:
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
