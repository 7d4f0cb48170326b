"""The `postgres.execute` kind: one fixed statement from the policy, run on one database, with
alert values only as bound arguments. Its params, its static check and its target. Pure.

`statement` is SQL as the policy wrote it, never a template: no alert value can reach the
SQL text. `args` is a list of templates, each bound as one text parameter ($1, $2, ...), so
the statement casts where it needs another type (`$1::text::interval`). `dsn` is a
`postgresql://` URL whose password comes from `${secret:NAME}`, filled in by the executor
only; the target is `host:port/dbname` as rendered, which `allow_targets` globs match.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import unquote, urlsplit

from remediator.core.durations import parse_timeout
from remediator.core.kinds.base import (
    ActionKind,
    Backend,
    is_static,
    list_param,
    parse_static_timeout,
)
from remediator.core.render import Template
from remediator.errors import RenderError

ARGS = "args"
DEFAULT_TIMEOUT = "30s"
_PARAMETER = re.compile(r"\$(\d+)")


@dataclass(frozen=True, slots=True)
class Statement:
    """Read params: the DSN (secrets unexpanded), the SQL, its text arguments, the timeout
    in seconds, and the target it names."""

    dsn: str
    sql: str
    args: tuple[str, ...]
    timeout: float
    target: str


def database_of(dsn: str) -> str:
    """`host:port/dbname` of a postgresql:// URL; ValueError when it is not one."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError("dsn must be a postgresql:// URL")
    if not parts.hostname:
        raise ValueError("dsn names no host")
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ValueError("dsn names no database (postgresql://user@host:5432/DBNAME)")
    try:
        port = parts.port or 5432
    except ValueError:
        raise ValueError("dsn has an invalid port") from None
    return f"{parts.hostname}:{port}/{database}"


def args_of(params: Mapping[str, str]) -> tuple[str, ...]:
    return list_param(params, ARGS)


def _check_sql(sql: str, args: int) -> None:
    if "{{" in sql or "{%" in sql:
        raise ValueError(
            "statement is fixed SQL, never a template: pass alert values in args ($1, $2, ...)"
        )
    used = {int(n) for n in _PARAMETER.findall(sql)}
    if used != set(range(1, args + 1)):
        expected = ", ".join(f"${n}" for n in range(1, args + 1)) or "none"
        raise ValueError(
            f"statement uses {', '.join(f'${n}' for n in sorted(used)) or 'no parameters'}; "
            f"args give {expected}"
        )


def statement_of(params: Mapping[str, str]) -> Statement:
    """The one reading of rendered postgres.execute params; ValueError says what is wrong."""
    unknown = sorted(n for n in params if n not in _OWN and not n.startswith(ARGS + "."))
    if unknown:
        raise ValueError(f"unknown param(s) {', '.join(unknown)}")
    args = args_of(params)
    sql = params.get("statement", "")
    _check_sql(sql, len(args))
    dsn = params.get("dsn", "")
    try:
        timeout = parse_timeout(params.get("timeout", DEFAULT_TIMEOUT))
    except ValueError as exc:
        raise ValueError(f"param timeout: {exc}") from None
    return Statement(dsn, sql, args, timeout.total_seconds(), database_of(dsn))


_OWN = frozenset({"dsn", "statement", "timeout"})


class PostgresExecute(ActionKind):
    type = "postgres.execute"
    backend = Backend.POSTGRES
    allowed = _OWN
    required = frozenset({"dsn", "statement"})
    prefixes = (ARGS + ".",)
    lists = (ARGS,)
    params_doc = MappingProxyType(
        {
            "dsn": "The database, `postgresql://user:${secret:NAME}@host:5432/db`; the "
            "target is host:port/dbname.",
            "statement": "One fixed SQL statement, the policy's own (never a template).",
            ARGS: "A list of templates bound as $1..$n (never spliced into the SQL).",
            "timeout": f"How long the statement may run (default {DEFAULT_TIMEOUT}).",
        }
    )

    def check_static(self, params: Mapping[str, Template]) -> None:
        statement = params["statement"]
        if not is_static(statement):
            raise ValueError("statement is fixed SQL, never a template: pass alert values in args")
        sources = {name: t.source for name, t in params.items()}
        _check_sql(statement.source, len(args_of(sources)))
        dsn = params["dsn"]
        if "${secret:" not in dsn.source and "@" in dsn.source.split("//", 1)[-1].split("/")[0]:
            userinfo = dsn.source.split("//", 1)[-1].split("@")[0]
            if ":" in userinfo:
                raise ValueError("dsn: write its password as ${secret:NAME}, never in the policy")
        if is_static(dsn):
            database_of(dsn.source)
        timeout = params.get("timeout")
        if timeout is not None and is_static(timeout):
            parse_static_timeout(timeout.source)

    def target(self, params: Mapping[str, str]) -> str:
        try:
            return statement_of(params).target
        except ValueError as exc:
            raise RenderError(f"rendered {exc}") from None


POSTGRES_EXECUTE = PostgresExecute()
