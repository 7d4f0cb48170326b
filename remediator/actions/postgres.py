"""The `postgres.execute` action: one fixed statement on one database, its arguments bound.

A connection is opened for the action and closed after it (remediation statements are rare;
a pool would hold a session open on the production database between incidents). The DSN's
`${secret:NAME}` is filled from the config's `secrets` only here, escaped so it stays the
password; the statement runs with `statement_timeout` set, so a statement that runs long is
cancelled by the server, not left behind. Rows affected come from the command status
(`UPDATE 3`, `SELECT 2`: a `SELECT pg_terminate_backend(pid) ...` answers one row per
session it ended).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from urllib.parse import quote

import asyncpg
from pydantic import SecretStr

from remediator.actions.base import ActionRequest, ActionResult
from remediator.core.kinds.postgres import statement_of
from remediator.core.render import SECRET_REF
from remediator.errors import ActionError

# Connecting is bounded apart from the statement: an unreachable database fails fast.
CONNECT_TIMEOUT = 10.0
_ROWS = re.compile(r"(\d+)$")


class PostgresExecutor:
    def __init__(self, secrets: Mapping[str, SecretStr]) -> None:
        self._secrets = secrets

    def _dsn(self, dsn: str) -> str:
        def secret(match: re.Match[str]) -> str:
            found = self._secrets.get(match[1])
            if found is None:
                raise ActionError(
                    f"postgres.execute: no secret {match[1]!r} is configured (config key `secrets`)"
                )
            return quote(found.get_secret_value(), safe="")

        return SECRET_REF.sub(secret, dsn)

    async def execute(self, request: ActionRequest) -> ActionResult:
        try:
            statement = statement_of(request.params)
        except ValueError as exc:
            raise ActionError(f"postgres.execute: {exc}") from exc
        where = statement.target
        try:
            conn = await asyncpg.connect(
                self._dsn(statement.dsn),
                timeout=CONNECT_TIMEOUT,
                server_settings={
                    "application_name": "remediator",
                    "statement_timeout": str(int(statement.timeout * 1000)),
                },
            )
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            # Nothing was sent: a retry cannot run the statement twice, and the database never
            # saw it (no cooldown starts). A refusal by the server (a wrong password) is not
            # retried: it would only be refused again.
            reason = f"postgres.execute: cannot connect to {where}: {type(exc).__name__}"
            retryable = isinstance(exc, OSError | TimeoutError)
            raise ActionError(reason, retryable=retryable, reached=False) from exc
        try:
            status = await conn.execute(
                statement.sql, *statement.args, timeout=statement.timeout + CONNECT_TIMEOUT
            )
        except asyncpg.QueryCanceledError:
            return ActionResult(
                ok=False,
                detail=f"statement on {where} cancelled after {statement.timeout:g}s",
                facts={"status": "cancelled"},
            )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            detail = f"statement on {where} failed: {type(exc).__name__}: {exc}"
            return ActionResult(ok=False, detail=detail, facts={"status": "error"})
        finally:
            await asyncio.shield(conn.close(timeout=5))
        found = _ROWS.search(status)
        rows = found[1] if found else "0"
        return ActionResult(
            ok=True,
            detail=f"ran the statement on {where}: {status} ({rows} rows)",
            facts={"status": status, "rows": rows},
        )

    async def probe(self) -> str | None:
        return None  # each action names its own database: nothing to reach between actions

    async def close(self) -> None:
        return None
