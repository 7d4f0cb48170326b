"""postgres.execute against a real PostgreSQL: runbook 000's "terminate queries running over
N minutes" ends exactly the old queries; alert values stay bound arguments; the statement
timeout is the server's; the DSN's secret is filled in only when connecting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import urlsplit

import asyncpg
import pytest
from pydantic import SecretStr

from remediator.actions.base import ActionRequest
from remediator.actions.postgres import PostgresExecutor
from remediator.core.verify import VerifyPlan
from remediator.errors import ActionError
from tests.fixtures.postgres import Postgres

TERMINATE = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE application_name = $1 AND state = 'active' "
    "AND now() - query_start > $2::text::interval AND pid <> pg_backend_pid()"
)


def request(dsn: str, statement: str, *args: str, timeout: str = "10s") -> ActionRequest:
    params = {"dsn": dsn, "statement": statement, "timeout": timeout}
    params |= {f"args.{i}": value for i, value in enumerate(args)}
    return ActionRequest(
        1, "p", "postgres.execute", "db", params, VerifyPlan(timedelta(seconds=10))
    )


@pytest.fixture
def database(postgres: Postgres) -> str:
    return postgres.database()


@pytest.fixture
def executor() -> PostgresExecutor:
    return PostgresExecutor({"PG_PASSWORD": SecretStr("p@ss/w:rd?#")})


async def _sleeper(dsn: str) -> tuple[asyncpg.Connection, asyncio.Task[object]]:
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "victim"})
    return conn, asyncio.create_task(conn.execute("SELECT pg_sleep(60)"))


async def _active(dsn: str, application: str = "victim") -> list[int]:
    """Active sessions of `application` on this test's database."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 "
            "AND datname = current_database() AND state = 'active' ORDER BY query_start",
            application,
        )
    finally:
        await conn.close()
    return [row[0] for row in rows]


async def _until_active(dsn: str, count: int) -> list[int]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while len(found := await _active(dsn)) < count:
        if loop.time() > deadline:
            pytest.fail(f"never saw {count} active sleepers")
        await asyncio.sleep(0.05)
    return found


@pytest.fixture
async def sleepers(
    database: str,
) -> AsyncIterator[list[tuple[asyncpg.Connection, asyncio.Task[object]]]]:
    made: list[tuple[asyncpg.Connection, asyncio.Task[object]]] = []
    yield made
    for conn, task in made:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        conn.terminate()


async def test_only_queries_older_than_the_threshold_are_terminated(
    database: str,
    executor: PostgresExecutor,
    sleepers: list[tuple[asyncpg.Connection, asyncio.Task[object]]],
) -> None:
    sleepers.append(await _sleeper(database))
    [old_pid] = await _until_active(database, 1)
    await asyncio.sleep(1.5)  # the first query is now older than the 1 s threshold
    sleepers.append(await _sleeper(database))
    await _until_active(database, 2)

    result = await executor.execute(request(database, TERMINATE, "victim", "1 second"))

    assert result.ok, result.detail
    assert result.facts == {"status": "SELECT 1", "rows": "1"}
    where = urlsplit(database)
    assert result.detail == (
        f"ran the statement on 127.0.0.1:{where.port}{where.path}: SELECT 1 (1 rows)"
    )
    _, old_task = sleepers[0]
    with pytest.raises((asyncpg.AdminShutdownError, asyncpg.ConnectionDoesNotExistError)):
        await asyncio.wait_for(old_task, 10)
    remaining = await _active(database)
    assert old_pid not in remaining and len(remaining) == 1
    assert not sleepers[1][1].done()


async def test_an_alert_value_carrying_sql_stays_a_bound_value(
    database: str, executor: PostgresExecutor
) -> None:
    setup = await asyncpg.connect(database)
    await setup.execute("CREATE TABLE keep (x int); INSERT INTO keep VALUES (1)")
    hostile = "victim' OR true; DROP TABLE keep; --"
    result = await executor.execute(request(database, TERMINATE, hostile, "0 seconds"))
    assert result.ok, result.detail
    assert result.facts["rows"] == "0"
    assert await setup.fetchval("SELECT count(*) FROM keep") == 1
    await setup.close()


async def test_the_statement_timeout_is_the_servers(
    database: str, executor: PostgresExecutor
) -> None:
    result = await executor.execute(request(database, "SELECT pg_sleep(10)", timeout="1s"))
    assert not result.ok
    assert result.detail.endswith("cancelled after 1s")
    assert await _active(database, "remediator") == []  # cancelled by the server, and gone


async def test_the_dsn_secret_is_filled_in_only_when_connecting(
    postgres: Postgres, database: str, executor: PostgresExecutor
) -> None:
    where = urlsplit(database)
    dsn = f"postgresql://{where.username}:${{secret:PG_PASSWORD}}@{where.hostname}:{where.port}{where.path}"
    result = await executor.execute(request(dsn, "SELECT 1"))
    assert result.ok, result.detail
    assert "p@ss" not in result.detail
    missing = PostgresExecutor({})
    with pytest.raises(ActionError, match="no secret 'PG_PASSWORD' is configured"):
        await missing.execute(request(dsn, "SELECT 1"))


async def test_an_unreachable_database_fails_before_sending_anything(
    executor: PostgresExecutor,
) -> None:
    with pytest.raises(ActionError, match=r"cannot connect to 127\.0\.0\.1:9/db") as caught:
        await executor.execute(request("postgresql://u@127.0.0.1:9/db", "SELECT 1"))
    assert caught.value.retryable
