"""The switches (the kill switch, breakers) in the shared statements.

Setting one is a deciding transaction (the SQLite writer, the PostgreSQL decision lock): once
a pause is committed, no decision still in flight on another replica acts on the state from
before it.
"""

from __future__ import annotations

from remediator.core.audit import OperatorEvent
from remediator.store.audit import insert_operator_event
from remediator.store.dialect import Backend, Tx

# Every switch, as a deciding transaction reads them (also with a batch's facts).
FLAGS_SQL = "SELECT name, value FROM flags ORDER BY name"


class SwitchesTx(Tx):
    async def flags(self) -> list[tuple[str, str]]:
        rows = await self.sql.rows(FLAGS_SQL)
        return [(r[0], r[1]) for r in rows]


class SwitchesSql(Backend):
    """roles.store.SwitchStore on any Backend."""

    async def get_flag(self, name: str) -> str | None:
        rows = await self._fetch("SELECT value FROM flags WHERE name = ?", name)
        return str(rows[0][0]) if rows else None

    async def set_flag(
        self, name: str, value: str | None, act: OperatorEvent | None = None
    ) -> None:
        async with self.transaction() as tx:
            if act is not None:  # the act and its change commit together
                await insert_operator_event(tx.sql, act)
            if value is None:
                await tx.sql.run("DELETE FROM flags WHERE name = ?", name)
            else:
                await tx.sql.run(
                    "INSERT INTO flags (name, value) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    name,
                    value,
                )

    async def flags(self, prefix: str) -> list[tuple[str, str]]:
        rows = await self._fetch(
            "SELECT name, value FROM flags WHERE substr(name, 1, ?) = ? ORDER BY name",
            len(prefix),
            prefix,
        )
        return [(r[0], r[1]) for r in rows]
