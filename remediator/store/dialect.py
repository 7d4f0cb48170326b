"""What differs between the SQLite and PostgreSQL stores, and nothing else.

The statements are written once (store/sql.py and its role modules) with `?` placeholders
and a few `{slots}` for what a backend spells its own way. A Dialect renders a statement for
its backend once per statement text (cached: the hot path pays one dict lookup) and converts
the values stored differently. `Conn` is how a backend runs a statement on its driver (row
counts from the cursor or from the command status, new ids from the cursor or RETURNING);
`Backend` the transactions, locks and connections it provides. No statement lives here.

                 SQLite                              PostgreSQL
  placeholders   ?                                   $1, $2, ... (numbered once per text)
  times          fixed-width UTC text (sorts)        TIMESTAMPTZ
  later of       max(...), NULL if any is NULL       greatest(...), NULLs ignored
  key lists      IN (SELECT value FROM json_each(?)) = ANY(?::text[]) / ?::bigint[]
  explicit ids   AUTOINCREMENT takes them            OVERRIDING SYSTEM VALUE (identity)
  lease clock    the caller's `now` (one process)    clock_timestamp() (replicas' clocks differ)
  booleans       0/1 (TRUE/FALSE are 1/0; binds bool) BOOLEAN
  row locks      none: one writer holds the file     FOR UPDATE [SKIP LOCKED]
  and, in the backend modules:
  deciding lock  BEGIN IMMEDIATE (the one writer)    pg_advisory_xact_lock(DECIDE_LOCK)
  target lease   none: one process owns the file     session advisory lock, own connection
  ids reserved   sqlite_sequence, under the lock     nextval() of the identity sequences
  batch claims   executemany, cursor.rowcount        one upsert of arrays, RETURNING
  row counts     cursor.rowcount, lastrowid          command status, RETURNING id
"""

from __future__ import annotations

import functools
import itertools
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from remediator import jsontext

KeyKind = Literal["int", "text"]
_SLOT = re.compile(r"\{([a-z_]+)\}")
# `:name` parameters of store/prune.py's statements (not `::type` casts).
_NAMED = re.compile(r"(?<![:\w]):([a-z_]+)")
_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def sql_list(values: Iterable[str]) -> str:
    """`('a', 'b')`: a list of this code's own constants (never input) as SQL literals."""
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


def iso(value: datetime) -> str:
    """A time as the fixed-width UTC text SQLite stores (and the audit API shows)."""
    return value.astimezone(UTC).strftime(_TIME)


@functools.lru_cache(maxsize=1024)
def _text_time(value: datetime) -> str:
    # Fixed-width UTC text sorts like time, so range queries can compare strings. Cached:
    # a batch writes the same `now` and the same startsAt many times.
    return iso(value)


def _parse_time(value: str) -> datetime:
    return datetime.strptime(value, _TIME).replace(tzinfo=UTC)


def _same(value: Any) -> Any:
    return value


class Dialect:
    """One backend's statement text and stored values."""

    def __init__(
        self,
        name: str,
        slots: Mapping[str, str],
        *,
        numbered: bool,
        ts: Callable[[datetime], Any],
        when: Callable[[Any], datetime],
    ) -> None:
        self.name = name
        self._slots = slots
        self._numbered = numbered
        self._rendered: dict[str, str] = {}
        # Values: what a datetime is stored as, and how a stored time is read back.
        self.ts = ts
        self.when = when

    def sql(self, text: str) -> str:
        """`text` (`?` placeholders, `{slots}`) as this backend runs it."""
        try:
            return self._rendered[text]
        except KeyError:
            rendered = self._rendered[text] = self._render(text)
            return rendered

    def _render(self, text: str) -> str:
        text = _SLOT.sub(lambda slot: self._slots[slot.group(1)], text)
        if self._numbered:
            number = itertools.count(1)
            text = re.sub(r"\?", lambda _: f"${next(number)}", text)
        return text

    def keys(self, values: Iterable[str] | Iterable[int]) -> Any:
        """The value of an `{in_texts}` / `{in_ids}` key list."""
        return list(values) if self._numbered else jsontext.dumps(list(values))

    def pairs(self, pairs: Collection[tuple[str, str]]) -> tuple[Any, ...]:
        """The values of a `{pairs}` table (columns policy, target)."""
        if self._numbered:
            return [p for p, _ in pairs], [t for _, t in pairs]
        return (jsontext.dumps(list(pairs)),)

    def clock(self, now: datetime) -> tuple[Any, ...]:
        """The values of a `{clock}`: SQLite binds `now`, PostgreSQL reads its own clock."""
        return () if self._numbered else (self.ts(now),)

    def stale(self, now: datetime, lease: timedelta) -> tuple[Any, ...]:
        """The value of a `{stale}` condition: older than `lease` by the store's clock."""
        return (lease,) if self._numbered else (self.ts(now - lease),)

    def key_rows(self, kind: KeyKind) -> str:
        """A subquery over the `:keys` list (store/prune.py's statements)."""
        if not self._numbered:
            return "SELECT value FROM json_each(:keys)"
        return f"SELECT unnest(:keys::{'bigint' if kind == 'int' else 'text'}[])"

    def named(self, sql: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """A statement with `:name` parameters as positional ones, and their values."""
        text, names = _positional(sql, self._numbered)
        return text, [params[name] for name in names]


@functools.lru_cache(maxsize=256)
def _positional(sql: str, numbered: bool) -> tuple[str, tuple[str, ...]]:
    """`:name` as `?` (each use its own) or as `$n` (one per name)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if not numbered:
            names.append(match.group(1))
            return "?"
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _NAMED.sub(number, sql), tuple(names)


SQLITE = Dialect(
    "sqlite",
    {
        "greatest": "max",
        "overriding": "",
        "clock": "?",
        "stale": "coalesce(heartbeat_at, created_at) < ?",
        "in_texts": "IN (SELECT value FROM json_each(?))",
        "in_ids": "IN (SELECT value FROM json_each(?))",
        "pairs": "(SELECT json_extract(value, '$[0]') AS policy, "
        "json_extract(value, '$[1]') AS target FROM json_each(?)) AS k",
        "for_update": "",
        "skip_locked": "",
        "skip_locked_episodes": "",
    },
    numbered=False,
    ts=_text_time,
    when=_parse_time,
)
POSTGRES = Dialect(
    "postgresql",
    {
        "greatest": "greatest",
        "overriding": "OVERRIDING SYSTEM VALUE ",
        "clock": "clock_timestamp()",
        "stale": "heartbeat_at < clock_timestamp() - ?::interval",
        "in_texts": "= ANY(?::text[])",
        "in_ids": "= ANY(?::bigint[])",
        "pairs": "unnest(?::text[], ?::text[]) AS k(policy, target)",
        "for_update": " FOR UPDATE",
        # Two replicas sweeping at once each take different rows, none twice.
        "skip_locked": " FOR UPDATE SKIP LOCKED",
        "skip_locked_episodes": " FOR UPDATE OF e SKIP LOCKED",
    },
    numbered=True,
    ts=_same,
    when=_same,
)


class Row(Protocol):
    """A result row of either driver (sqlite3.Row, asyncpg.Record): by position or name."""

    def __getitem__(self, key: Any, /) -> Any: ...


class Conn(Protocol):
    """One connection of a backend, inside a transaction, running the shared statements."""

    dialect: Dialect

    async def rows(self, sql: str, *args: Any) -> Sequence[Row]: ...
    async def row(self, sql: str, *args: Any) -> Row | None: ...
    async def value(self, sql: str, *args: Any) -> Any: ...
    async def run(self, sql: str, *args: Any) -> int:
        """How many rows the statement changed."""
        ...

    async def run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """One statement for each of `rows`, in one round trip."""
        ...

    async def insert(self, sql: str, *args: Any) -> int:
        """The id of the row the INSERT added."""
        ...

    async def rows_many(
        self, queries: Sequence[tuple[str, Sequence[Any]]]
    ) -> Sequence[Sequence[Row]]:
        """Each query's rows, in order; in one round trip where the driver allows."""
        ...

    async def run_many_all(self, steps: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> list[int]:
        """Each statement run for each of its rows, in order; how many rows each changed
        (-1 where the driver does not say); in one round trip where the driver allows."""
        ...


class Tx:
    """What every part of a shared transaction holds: its connection and this replica."""

    def __init__(self, sql: Conn, owner: str) -> None:
        self.sql = sql
        self.owner = owner


class Backend(ABC):
    """The transactions, connections and leases a backend provides to the shared store."""

    dialect: Dialect
    exclusive: bool
    _owner: str

    @abstractmethod
    def transaction(self, *, commit: bool = True) -> AbstractAsyncContextManager[Tx]:
        """A deciding transaction: serialized with every other (roles/decisionlog.py)."""

    @abstractmethod
    def _bookkeeping(self) -> AbstractAsyncContextManager[Conn]:
        """A transaction for writes that decide nothing (leases, repeats, messages): on
        PostgreSQL without the decision lock; SQLite has one writer either way."""

    @abstractmethod
    def _reading(self) -> AbstractAsyncContextManager[Conn]:
        """A connection for reads outside any transaction."""

    @abstractmethod
    def target_lease(self, key: str) -> AbstractAsyncContextManager[None]:
        """See roles.leases.LeaseStore.target_lease."""

    async def _fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        async with self._reading() as conn:
            return await conn.rows(sql, *args)
