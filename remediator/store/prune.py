"""Retention: which audit rows a prune deletes, as one set of statements for both backends.

A prune deletes what is older than `before` and no longer needed. Never a pending approval or
an unfinished action, nor their decision; never what dedup still needs: a claim whose episode
was seen since `before` (note_episode and add_repeats stamp `episodes.last_seen`), the
decisions it names, its episode row and the cycle that numbers it. Deleting such a claim
would make Alertmanager's next re-send of a long-firing alert a new decision: a second action.

Work goes in batches, each its own deciding transaction (the SQLite writer, the PostgreSQL
decision lock), released between batches: a prune never holds either for long, and no decision
runs between its liveness check and its delete. A batch looks at no more than PRUNE_SCAN rows
(a key range read off the primary key or an index) and deletes at most PRUNE_BATCH of them, so
its cost is bounded however large the tables, or the part of them still in the window, grow.
Statements use `:name` parameters and a `{keys}` slot for a batch's key list, which the
backend's dialect fills in (store/dialect.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from remediator.store.dialect import Conn, KeyKind

PRUNE_BATCH = 500
PRUNE_SCAN = 2000
PRUNE_TABLES = (
    "claims",
    "decisions",
    "actions",
    "approvals",
    "approval_events",
    "operator_events",
    "episodes",
    "cycles",
)


# The statements below are composed only from this module's constants (table, alias and key
# names, the conditions); every value is a bound parameter, hence the S608 exemptions.


def _held(decision: str) -> str:
    """True while the decision may still change or act: too recent, waiting for a human or
    running, or with a pending approval or an unfinished action."""
    return (
        f"(EXISTS (SELECT 1 FROM decisions AS hd WHERE hd.id = {decision} AND "  # noqa: S608  # constants only
        "(hd.time >= :before OR hd.outcome IN ('awaiting_approval', 'executing'))) "
        f"OR EXISTS (SELECT 1 FROM approvals AS ha WHERE ha.decision_id = {decision} "
        "AND ha.state = 'pending') "
        f"OR EXISTS (SELECT 1 FROM actions AS hx WHERE hx.decision_id = {decision} "
        "AND hx.state IN ('pending', 'running')))"
    )


def _live(episode: str) -> str:
    """True when the episode was seen (first, re-sent or resolved) since `before`."""
    return (
        f"EXISTS (SELECT 1 FROM episodes AS le WHERE le.episode = {episode} "  # noqa: S608  # constants only
        "AND coalesce(le.last_seen, le.first_seen) >= :before)"
    )


_CLAIM_GONE = (
    f"NOT {_live('c.episode')} AND NOT {_held('c.decision_id')} "
    f"AND (c.dedup_decision_id IS NULL OR NOT {_held('c.dedup_decision_id')})"
)
# Old, settled, and named by no remaining claim (those are what dedup still needs).
_DECISION_GONE = (
    "d.time < :before AND d.outcome NOT IN ('awaiting_approval', 'executing') "
    "AND NOT EXISTS (SELECT 1 FROM approvals AS a WHERE a.decision_id = d.id "
    "AND a.state = 'pending') "
    "AND NOT EXISTS (SELECT 1 FROM actions AS x WHERE x.decision_id = d.id "
    "AND x.state IN ('pending', 'running')) "
    "AND NOT EXISTS (SELECT 1 FROM claims AS c WHERE c.decision_id = d.id) "
    "AND NOT EXISTS (SELECT 1 FROM claims AS c WHERE c.dedup_decision_id = d.id)"
)
_EPISODE_GONE = (
    "coalesce(e.last_seen, e.first_seen) < :before "
    "AND NOT EXISTS (SELECT 1 FROM claims AS c WHERE c.episode = e.episode) "
    "AND NOT EXISTS (SELECT 1 FROM approvals AS a WHERE a.episode = e.episode "
    "AND a.state = 'pending')"
)
# A cycle group whose current episode row is gone (pruned: unseen for the whole window).
_CYCLE_GONE = (
    "NOT EXISTS (SELECT 1 FROM episodes AS e WHERE e.episode = g.grp || ':' || g.generation)"
)
# Rows whose decision (or approval) no longer exists: only when old and settled themselves.
_ORPHAN_ACTION = (
    "x.created_at < :before AND x.state NOT IN ('pending', 'running') "
    "AND NOT EXISTS (SELECT 1 FROM decisions AS d WHERE d.id = x.decision_id)"
)
_ORPHAN_APPROVAL = (
    "a.requested_at < :before AND a.state <> 'pending' "
    "AND NOT EXISTS (SELECT 1 FROM decisions AS d WHERE d.id = a.decision_id)"
)
_ORPHAN_EVENT = (
    "v.time < :before AND NOT EXISTS (SELECT 1 FROM approvals AS a WHERE a.id = v.approval_id)"
)
# Before deleting a batch of decisions (or orphan approvals): their settled approvals' events,
# their settled approvals, their finished actions.
_OF_DECISIONS = (
    (
        "approval_events",
        "DELETE FROM approval_events WHERE approval_id IN (SELECT a.id FROM approvals AS a "
        "WHERE a.decision_id IN ({keys}) AND a.state <> 'pending')",
    ),
    ("approvals", "DELETE FROM approvals WHERE decision_id IN ({keys}) AND state <> 'pending'"),
    (
        "actions",
        "DELETE FROM actions WHERE decision_id IN ({keys}) AND state NOT IN ('pending', 'running')",
    ),
)
_OF_APPROVALS = (("approval_events", "DELETE FROM approval_events WHERE approval_id IN ({keys})"),)


@dataclass(frozen=True, slots=True)
class Step:
    """`window`: the last key of the next PRUNE_SCAN rows after `:after` (NULL: none left).
    `select`: the keys in (`:after`, `:upto`] whose rows may go; `deletes` (table, statement)
    run on them, each re-checking its condition, so a delete never outruns its select."""

    kind: KeyKind
    window: str
    select: str
    deletes: tuple[tuple[str, str], ...]

    @property
    def first(self) -> int | str:
        return 0 if self.kind == "int" else ""


def _step(
    kind: KeyKind,
    table: str,
    alias: str,
    key: str,
    gone: str,
    first: tuple[tuple[str, str], ...] = (),
) -> Step:
    """Rows of `table AS alias` for which `gone` holds, keyed by `key`, in key order;
    `first` runs on each batch's keys before the rows themselves go."""
    column = f"{alias}.{key}"
    window = (
        f"SELECT max(w.k) FROM (SELECT {column} AS k FROM {table} AS {alias} "  # noqa: S608  # constants only
        f"WHERE {column} > :after ORDER BY {column} LIMIT :scan) AS w"
    )
    select = (
        f"SELECT DISTINCT {column} FROM {table} AS {alias} WHERE {column} > :after "  # noqa: S608  # constants only
        f"AND {column} <= :upto AND {gone} ORDER BY {column} LIMIT :limit"
    )
    delete = f"DELETE FROM {table} AS {alias} WHERE {column} IN ({{keys}}) AND {gone}"  # noqa: S608  # constants only
    return Step(kind, window, select, (*first, (table, delete)))


# In order: claims first (what remains is what dedup needs), then the decisions no remaining
# claim names (with their approvals, events and actions), orphans, episodes, cycles.
STEPS = (
    _step("text", "claims", "c", "episode", _CLAIM_GONE),
    _step("int", "decisions", "d", "id", _DECISION_GONE, _OF_DECISIONS),
    _step("int", "actions", "x", "id", _ORPHAN_ACTION),
    _step("text", "approvals", "a", "id", _ORPHAN_APPROVAL, _OF_APPROVALS),
    _step("int", "approval_events", "v", "id", _ORPHAN_EVENT),
    # The operator-events journal: an act older than the window goes, like the rows it
    # changed (a journal entry of a decision outlives it by at most one prune).
    _step("int", "operator_events", "o", "id", "o.time < :before"),
    _step("text", "episodes", "e", "episode", _EPISODE_GONE),
    _step("text", "cycles", "g", "grp", _CYCLE_GONE),
)


async def _keys(conn: Conn, sql: str, params: Mapping[str, Any]) -> list[Any]:
    text, args = conn.dialect.named(sql, params)
    return [row[0] for row in await conn.rows(text, *args)]


async def _delete(conn: Conn, sql: str, kind: KeyKind, params: Mapping[str, Any]) -> int:
    d = conn.dialect
    sql = sql.replace("{keys}", d.key_rows(kind))
    text, args = d.named(sql, {**params, "keys": d.keys(params["keys"])})
    return await conn.run(text, *args)


async def prune_batches(
    batch: Callable[[], AbstractAsyncContextManager[Conn]],
    before: Any,
    *,
    size: int | None = None,
    scan: int | None = None,
) -> dict[str, int]:
    """Run every step in batches (at most `scan` rows looked at, `size` deleted; defaults
    PRUNE_SCAN, PRUNE_BATCH), one transaction each; `before` is the backend's own value for
    the cut-off time. Returns rows deleted per table."""
    size, scan = size or PRUNE_BATCH, scan or PRUNE_SCAN
    counts = dict.fromkeys(PRUNE_TABLES, 0)
    for step in STEPS:
        after: Any = step.first
        while True:
            async with batch() as conn:
                [upto] = await _keys(conn, step.window, {"after": after, "scan": scan})
                if upto is None:  # no rows after `after`: this table is done
                    break
                keys = await _keys(
                    conn,
                    step.select,
                    {"before": before, "after": after, "upto": upto, "limit": size},
                )
                for table, sql in step.deletes if keys else ():
                    counts[table] += await _delete(
                        conn, sql, step.kind, {"before": before, "keys": keys}
                    )
            # Full batch: the window may hold more; else the whole window was looked at.
            after = keys[-1] if len(keys) == size else upto
    return counts
