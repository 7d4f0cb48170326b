"""The store's dialects: one statement text, rendered for SQLite and for PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from remediator.store.dialect import POSTGRES, SQLITE, sql_list

NOW = datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "sqlite", "postgres"),
    [
        ("SELECT 1", "SELECT 1", "SELECT 1"),
        (
            "UPDATE t SET a = ? WHERE b = ? AND c = ?",
            "UPDATE t SET a = ? WHERE b = ? AND c = ?",
            "UPDATE t SET a = $1 WHERE b = $2 AND c = $3",
        ),
        (
            "SELECT x FROM claims WHERE episode {in_texts}",
            "SELECT x FROM claims WHERE episode IN (SELECT value FROM json_each(?))",
            "SELECT x FROM claims WHERE episode = ANY($1::text[])",
        ),
        (
            "UPDATE actions SET heartbeat_at = {clock} WHERE id {in_ids} AND owner = ?",
            "UPDATE actions SET heartbeat_at = ? WHERE id IN (SELECT value FROM json_each(?)) "
            "AND owner = ?",
            "UPDATE actions SET heartbeat_at = clock_timestamp() WHERE id = ANY($1::bigint[]) "
            "AND owner = $2",
        ),
        (
            "INSERT INTO t (id) {overriding}VALUES (?)",
            "INSERT INTO t (id) VALUES (?)",
            "INSERT INTO t (id) OVERRIDING SYSTEM VALUE VALUES ($1)",
        ),
        (
            "SELECT g FROM cycles WHERE grp = ?{for_update}",
            "SELECT g FROM cycles WHERE grp = ?",
            "SELECT g FROM cycles WHERE grp = $1 FOR UPDATE",
        ),
        ("SELECT {greatest}(a, b)", "SELECT max(a, b)", "SELECT greatest(a, b)"),
    ],
)
def test_a_statement_is_rendered_for_each_backend(text: str, sqlite: str, postgres: str) -> None:
    assert SQLITE.sql(text) == sqlite
    assert POSTGRES.sql(text) == postgres
    assert POSTGRES.sql(text) is POSTGRES.sql(text)  # rendered once, then cached


def test_an_unknown_slot_is_an_error_not_sql() -> None:
    with pytest.raises(KeyError):
        SQLITE.sql("SELECT {nonsense}")


def test_values_are_stored_as_each_backend_keeps_them() -> None:
    assert SQLITE.ts(NOW) == "2026-11-22T12:00:00.123456Z"
    assert SQLITE.when(SQLITE.ts(NOW)) == NOW
    assert POSTGRES.ts(NOW) is NOW
    assert SQLITE.keys(["a", "b"]) == '["a","b"]'
    assert POSTGRES.keys(["a", "b"]) == ["a", "b"]
    assert SQLITE.pairs([("p", "t")]) == ('[["p","t"]]',)
    assert POSTGRES.pairs([("p", "t")]) == (["p"], ["t"])
    # The lease clock: SQLite binds the caller's time, PostgreSQL reads its own.
    assert SQLITE.clock(NOW) == (SQLITE.ts(NOW),)
    assert POSTGRES.clock(NOW) == ()
    lease = timedelta(seconds=30)
    assert SQLITE.stale(NOW, lease) == (SQLITE.ts(NOW - lease),)
    assert POSTGRES.stale(NOW, lease) == (lease,)


def test_named_parameters_become_positional() -> None:
    sql = "SELECT k FROM t WHERE a > :after AND b >= :before AND c < :before LIMIT :limit"
    params = {"after": 1, "before": 2, "limit": 3, "unused": 4}
    assert SQLITE.named(sql, params) == (
        "SELECT k FROM t WHERE a > ? AND b >= ? AND c < ? LIMIT ?",
        [1, 2, 2, 3],
    )
    assert POSTGRES.named(sql, params) == (
        "SELECT k FROM t WHERE a > $1 AND b >= $2 AND c < $2 LIMIT $3",
        [1, 2, 3],
    )
    keys = "DELETE FROM t WHERE id IN ({keys})".replace("{keys}", POSTGRES.key_rows("int"))
    assert POSTGRES.named(keys, {"keys": [1]}) == (
        "DELETE FROM t WHERE id IN (SELECT unnest($1::bigint[]))",
        [[1]],
    )


def test_constant_lists_are_quoted() -> None:
    assert sql_list(("pending", "running")) == "('pending', 'running')"
