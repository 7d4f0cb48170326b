"""postgres.execute as a policy writes it: a fixed statement, alert values only in `args`
(one bound text parameter each), a DSN whose password is a ${secret:...}; its target is
`host:port/dbname`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from remediator.core.alert import Alert
from remediator.core.job import render_job, secret_names
from remediator.core.kinds.postgres import Statement, statement_of
from remediator.core.policy import parse_policies

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DSN = "postgresql://ops:${secret:PG_PASSWORD}@{{ labels.db_host }}:5432/app"
TERMINATE = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE state = 'active' AND now() - query_start > $1::text::interval"
)


def policy_text(params: str) -> str:
    return (
        "name: kill-long-queries\n"
        "match: {matchers: ['alertname=\"LongRunningQuery\"']}\n"
        "action: {type: postgres.execute, allow_targets: ['db-*:5432/app'], "
        f"params: {params}}}\n"
    )


def test_a_policy_renders_to_a_statement_with_bound_arguments() -> None:
    [policy], found = parse_policies(
        policy_text(f'{{dsn: "{DSN}", statement: "{TERMINATE}", args: ["{{{{ labels.age }}}}"]}}'),
        "p.yaml",
    )
    assert found == []
    assert secret_names(policy) == {"PG_PASSWORD"}
    alert = Alert(
        "alertmanager",
        "firing",
        {"alertname": "LongRunningQuery", "db_host": "db-1", "age": "10 minutes'; DROP"},
        {},
        NOW,
        "f1",
        "e1",
    )
    job = render_job(policy, alert, NOW)
    assert job.error is None and job.target == "db-1:5432/app"
    assert statement_of(job.params) == Statement(
        "postgresql://ops:${secret:PG_PASSWORD}@db-1:5432/app",
        TERMINATE,
        ("10 minutes'; DROP",),
        30.0,
        "db-1:5432/app",
    )


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        (f'{{dsn: "{DSN}", statement: "SELECT {{{{ labels.x }}}}"}}', "never a template"),
        (f'{{dsn: "{DSN}", statement: "SELECT $1"}}', "statement uses $1; args give none"),
        (f'{{dsn: "{DSN}", statement: "SELECT 1", args: [a]}}', "args give $1"),
        ('{dsn: "postgresql://ops:hunter2@db-1/app", statement: "SELECT 1"}', "${secret:NAME}"),
        ('{dsn: "mysql://db-1/app", statement: "SELECT 1"}', "postgresql:// URL"),
        ('{dsn: "postgresql://db-1", statement: "SELECT 1"}', "names no database"),
        (f'{{dsn: "{DSN}"}}', "missing param(s) statement"),
        (f'{{dsn: "{DSN}", statement: "SELECT 1", timeout: soon}}', "invalid duration"),
    ],
)
def test_what_the_static_check_refuses(params: str, problem: str) -> None:
    _, found = parse_policies(policy_text(params), "p.yaml")
    assert len(found) == 1 and problem in found[0], found
