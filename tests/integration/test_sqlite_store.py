"""The SQLite store's schema versioning: migrate forward, never touch a newer schema."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remediator.errors import StoreError
from remediator.store import sqlite_schema
from remediator.store.roles.store import SCHEMA_VERSION
from remediator.store.sqlite import SqliteStore

# What schema 10 added, taken away again (with schema 9, the audit indexes, below).
_UNDO_10 = (
    "DROP INDEX claims_held; ALTER TABLE actions DROP COLUMN reached; "
    "ALTER TABLE episodes DROP COLUMN annotations; "
    "ALTER TABLE episodes DROP COLUMN generator_url;"
)


def _version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


async def test_a_new_store_gets_the_current_schema(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    await store.open()
    await store.close()
    assert _version(tmp_path / "s.db") == SCHEMA_VERSION


async def test_a_version_1_store_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as db:
        db.executescript(sqlite_schema.SCHEMA + "PRAGMA user_version = 1;")
        db.execute("INSERT INTO flags (name, value) VALUES ('paused', '1')")
    store = SqliteStore(str(path))
    await store.open()
    assert await store.get_flag("paused") == "1"
    async with store.transaction() as tx:
        assert await tx.episode_cycle("dd:m:1:", "start") == "dd:m:1::1"  # the v2 table works
    await store.close()
    assert _version(path) == SCHEMA_VERSION


async def test_a_version_4_store_is_migrated_and_its_episodes_count_as_seen_now(
    tmp_path: Path,
) -> None:
    """v5 stamps when an episode was last seen; what v4 recorded was never stamped, so it
    counts as seen at the upgrade and keeps its claim a whole retention window."""
    path = tmp_path / "v4.db"
    old = datetime.now(UTC) - timedelta(days=60)
    stamp = old.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with sqlite3.connect(path) as db:
        db.executescript(
            ";".join([sqlite_schema.SCHEMA, *(sqlite_schema.MIGRATIONS[v] for v in (2, 3, 4))])
            + ";PRAGMA user_version = 4;"
        )
        db.execute(
            "INSERT INTO episodes (episode, source, fingerprint, alertname, labels, starts_at, "
            "first_seen) VALUES ('am:fp1:1', 'alertmanager', 'fp1', 'Down', '{}', ?, ?)",
            (stamp, stamp),
        )
        db.execute(
            "INSERT INTO claims VALUES ('p', 'am:fp1:1', 1, 'executed', 0, 'x', 'web-1', NULL)"
        )
    store = SqliteStore(str(path))
    await store.open()
    try:
        assert (await store.prune(datetime.now(UTC) - timedelta(days=30)))["claims"] == 0
        async with store.transaction() as tx:
            assert await tx.claim("p", "am:fp1:1") is not None
    finally:
        await store.close()
    assert _version(path) == SCHEMA_VERSION
    with sqlite3.connect(path) as db:
        [(last_seen,)] = db.execute("SELECT last_seen FROM episodes").fetchall()
    seen = datetime.strptime(last_seen, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert datetime.now(UTC) - timedelta(minutes=5) < seen <= datetime.now(UTC)


async def test_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = SqliteStore(str(path))
    with pytest.raises(StoreError, match="newer than this remediator understands"):
        await store.open()
    assert _version(path) == SCHEMA_VERSION + 1


async def test_cycles_are_numbered(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "c.db"))
    await store.open()
    seen = []
    async with store.transaction() as tx:
        for cycle in ("repeat", "start", "end", "end", "repeat", "start", "start", "end"):
            seen.append(await tx.episode_cycle("g", cycle))
    await store.close()
    # a repeat first opens 1; an end closes it; a late repeat stays in 1; a start opens 2
    assert seen == ["g:1", "g:1", "g:1", "g:1", "g:1", "g:2", "g:2", "g:2"]


async def test_an_unopenable_store_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreError, match="cannot open SQLite state store"):
        await SqliteStore(str(tmp_path / "dir.db")).open()


async def test_a_version_7_store_gets_its_action_counters_from_the_actions_it_holds(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v7.db"
    store = SqliteStore(str(path))
    await store.open()
    t0 = datetime(2026, 11, 22, 12, 0, 30, tzinfo=UTC)
    async with store.transaction() as tx:
        for minutes, policy, dry in ((0, "p", False), (1, "p", True), (2, "q", False)):
            await tx.add_action(
                1,
                policy,
                "docker.restart",
                "w",
                {},
                dry_run=dry,
                now=t0 + timedelta(minutes=minutes),
            )
    await store.close()
    with sqlite3.connect(path) as db:  # as version 7 left it: no counters, no audit indexes
        db.executescript(
            "DROP TABLE action_counts; DROP TABLE operator_events; "
            "DROP INDEX decisions_policy; DROP INDEX decisions_outcome; "
            f"DROP INDEX decisions_target; DROP INDEX decisions_time; {_UNDO_10} "
            "PRAGMA user_version = 7;"
        )
    store = SqliteStore(str(path))
    await store.open()
    async with store.transaction() as tx:
        since = t0 - timedelta(hours=1)
        assert await tx.count_actions(since, policy=None, dry_run=None) == 3
        assert await tx.count_actions(since, policy="p", dry_run=None) == 2
        assert await tx.count_actions(since, policy=None, dry_run=False) == 2
        assert await tx.count_actions(t0, policy=None, dry_run=None) == 2  # its own minute too
    await store.close()
    assert _version(path) == SCHEMA_VERSION
