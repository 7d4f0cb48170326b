"""SqliteStore: the embedded default store (aiosqlite, WAL, one writer connection).

Every statement runs on one connection under one lock, so a transaction is never
interleaved with another writer; the schema version lives in PRAGMA user_version.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import sqlite3
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosqlite
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_random_exponential

from remediator.core.alert import Alert
from remediator.core.approval import Approval
from remediator.core.dedup import Claim
from remediator.core.judge import Decided, Ids
from remediator.core.outcomes import Outcome
from remediator.core.records import NewDecision
from remediator.errors import StoreError
from remediator.log import redact
from remediator.store.base import (
    ACTING,
    HELD,
    OPEN_OUTCOMES,
    SCHEMA_VERSION,
    UNFINISHED,
    ApprovalConflictError,
    ClaimConflictError,
    DecisionRecord,
    Interrupted,
    approval_from_row,
    decision_from_row,
    redacted,
    refuse_newer,
    replica_name,
    stale_reason,
)
from remediator.store.prune import KeyKind, prune_batches

_SCHEMA = """
CREATE TABLE episodes (
  episode TEXT PRIMARY KEY, source TEXT NOT NULL, fingerprint TEXT NOT NULL,
  alertname TEXT NOT NULL, labels TEXT NOT NULL, starts_at TEXT NOT NULL,
  first_seen TEXT NOT NULL, resolved_at TEXT
);
CREATE TABLE decisions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, policy TEXT NOT NULL,
  source TEXT NOT NULL, alertname TEXT NOT NULL, fingerprint TEXT NOT NULL,
  episode TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,
  outcome TEXT NOT NULL, reason TEXT NOT NULL, approval_id TEXT, repeats INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE claims (
  policy TEXT NOT NULL, episode TEXT NOT NULL, decision_id INTEGER NOT NULL,
  outcome TEXT NOT NULL, provisional INTEGER NOT NULL, action TEXT NOT NULL,
  target TEXT NOT NULL, dedup_decision_id INTEGER, PRIMARY KEY (policy, episode)
);
CREATE TABLE actions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, decision_id INTEGER NOT NULL, policy TEXT NOT NULL,
  type TEXT NOT NULL, target TEXT NOT NULL, params TEXT NOT NULL, dry_run INTEGER NOT NULL,
  state TEXT NOT NULL, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT,
  reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX actions_policy_target ON actions (policy, target, created_at);
CREATE INDEX actions_created ON actions (created_at);
CREATE INDEX actions_state ON actions (state);
CREATE TABLE approvals (
  id TEXT PRIMARY KEY, decision_id INTEGER NOT NULL, policy TEXT NOT NULL, action TEXT NOT NULL,
  target TEXT NOT NULL, params TEXT NOT NULL, episode TEXT NOT NULL, state TEXT NOT NULL,
  requested_at TEXT NOT NULL, expires_at TEXT NOT NULL, required INTEGER NOT NULL,
  approvers TEXT NOT NULL, approved_by TEXT NOT NULL, decided_by TEXT
);
CREATE INDEX approvals_episode ON approvals (episode, state);
CREATE TABLE flags (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Schema changes after version 1, applied in order to an existing store.
_MIGRATIONS = {
    2: "CREATE TABLE cycles (grp TEXT PRIMARY KEY, generation INTEGER NOT NULL, "
    "open INTEGER NOT NULL);",
    # What an approval message shows, where it was posted, and who was refused.
    3: "ALTER TABLE approvals ADD COLUMN context TEXT NOT NULL DEFAULT '{}'; "
    "ALTER TABLE approvals ADD COLUMN slack_channel TEXT; "
    "ALTER TABLE approvals ADD COLUMN slack_ts TEXT; "
    "CREATE TABLE approval_events (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, "
    "approval_id TEXT NOT NULL, who TEXT NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL);",
    # Action leases: which process holds an action and when it last said it is alive.
    4: "ALTER TABLE actions ADD COLUMN owner TEXT NOT NULL DEFAULT ''; "
    "ALTER TABLE actions ADD COLUMN heartbeat_at TEXT;",
    # Retention: when an episode was last seen (what keeps its claim from a prune), and the
    # indexes a prune's "is anything still pointing at it" checks need. An episode recorded
    # before this version counts as seen now: its repeats were never stamped, so it keeps
    # its claim for a whole retention window after the upgrade rather than lose it early.
    5: "ALTER TABLE episodes ADD COLUMN last_seen TEXT; "
    "UPDATE episodes SET last_seen = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'); "
    "CREATE INDEX claims_episode ON claims (episode); "
    "CREATE INDEX claims_decision ON claims (decision_id); "
    "CREATE INDEX claims_dedup ON claims (dedup_decision_id); "
    "CREATE INDEX actions_decision ON actions (decision_id); "
    "CREATE INDEX approvals_decision ON approvals (decision_id); "
    "CREATE INDEX approval_events_approval ON approval_events (approval_id, id);",
    # Window counts per policy and per kind (live or dry run) read an index range bounded
    # by the limit, never the history (core/guards.py Facts).
    6: "CREATE INDEX actions_policy_created ON actions (policy, created_at); "
    "CREATE INDEX actions_dry_created ON actions (dry_run, created_at);",
}
# The decision row `decisions` may still change (base.OPEN_OUTCOMES; `executing` only once
# none of its actions is unfinished).
_OUTCOME_OPEN = (
    f"(decisions.outcome IN ({', '.join('?' * len(OPEN_OUTCOMES))}) OR "  # noqa: S608  # placeholders only
    "(decisions.outcome = ? AND NOT EXISTS (SELECT 1 FROM actions WHERE "
    "actions.decision_id = decisions.id AND actions.state IN (?, ?))))"
)
_OUTCOME_OPEN_ARGS = (*OPEN_OUTCOMES, ACTING, *UNFINISHED)

_PUT_CLAIM = (
    "INSERT INTO claims (policy, episode, decision_id, outcome, provisional, action, "
    "target, dedup_decision_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (policy, episode) DO UPDATE SET decision_id = excluded.decision_id, "
    "outcome = excluded.outcome, provisional = excluded.provisional, "
    "action = excluded.action, target = excluded.target, "
    "dedup_decision_id = excluded.dedup_decision_id "
    "WHERE claims.provisional OR claims.decision_id = excluded.decision_id"
)
# First sight of an episode is kept, every sight moves last_seen (never back); a resolve
# stamps its end (only the first one).
_NOTE_EPISODE = (
    "INSERT INTO episodes (episode, source, fingerprint, alertname, labels, starts_at, "
    "first_seen, resolved_at, last_seen) VALUES (?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT (episode) DO UPDATE "
    "SET resolved_at = coalesce(episodes.resolved_at, excluded.resolved_at), "
    "last_seen = max(coalesce(episodes.last_seen, episodes.first_seen), "
    "excluded.last_seen)"
)
# Bound parameters per statement stay far below SQLite's limit (32766 since 3.32).
_CHUNK = 500


def _chunks(items: Sequence[str]) -> list[list[str]]:
    return [list(items[i : i + _CHUNK]) for i in range(0, len(items), _CHUNK)]


def _marks(chunk: Sequence[object]) -> str:
    return ", ".join("?" * len(chunk))


def _claim_row(key: tuple[str, str], claim: Claim) -> tuple[object, ...]:
    return (
        *key,
        claim.decision_id,
        str(claim.outcome),
        int(claim.provisional),
        claim.action,
        claim.target,
        claim.dedup_decision_id,
    )


def _sighting(alert: Alert, now: datetime) -> tuple[object, ...]:
    return (
        alert.episode,
        alert.source,
        alert.fingerprint,
        alert.name,
        json.dumps(dict(alert.labels), sort_keys=True),
        _ts(alert.starts_at),
        _ts(now),
        _ts(now) if alert.status == "resolved" else None,
        _ts(now),
    )


def _decision_row(d: NewDecision) -> tuple[object, ...]:
    alert = d.alert
    return (
        d.id,
        _ts(d.time),
        d.policy,
        alert.source,
        alert.name,
        alert.fingerprint,
        alert.episode,
        d.action,
        d.target,
        str(d.outcome),
        redact(d.reason),
        d.approval_id,
        d.repeats,
    )


async def _rollback(db: aiosqlite.Connection) -> None:
    """ROLLBACK, queued after whatever the connection's thread still has to run, and shielded
    so a second cancellation cannot skip it; "no transaction is active" is fine."""
    with contextlib.suppress(sqlite3.Error, ValueError):
        await asyncio.shield(db.execute("ROLLBACK"))


@functools.lru_cache(maxsize=1024)
def _ts(value: datetime) -> str:
    # Fixed-width UTC text sorts like time, so range queries can compare strings. Cached:
    # a batch writes the same `now` and the same startsAt many times.
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _row_id(value: int | None) -> int:
    if value is None:  # sqlite3 always sets it after an INSERT; None means the insert failed
        raise StoreError("insert did not return a row id")
    return value


def _parse(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _approval(row: sqlite3.Row) -> Approval:
    return approval_from_row(row, _parse)


def _busy(exc: BaseException) -> bool:
    """SQLITE_BUSY (any extended code): another connection holds a lock right now."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.OperationalError)
        and code is not None
        and (code & 0xFF == sqlite3.SQLITE_BUSY)
    )


class SqliteTransaction:
    def __init__(self, db: aiosqlite.Connection, owner: str) -> None:
        self.db = db
        self.owner = owner

    async def _one(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Row | None:
        async with self.db.execute(sql, args) as cursor:
            return await cursor.fetchone()

    async def claim(self, policy: str, episode: str) -> Claim | None:
        row = await self._one(
            "SELECT decision_id, outcome, provisional, action, target, dedup_decision_id "
            "FROM claims WHERE policy = ? AND episode = ?",
            (policy, episode),
        )
        if row is None:
            return None
        return Claim(row[0], row[1], bool(row[2]), row[3], row[4], row[5])

    async def put_claim(self, policy: str, episode: str, claim: Claim) -> None:
        cursor = await self.db.execute(_PUT_CLAIM, _claim_row((policy, episode), claim))
        if cursor.rowcount != 1:
            raise ClaimConflictError(f"policy {policy} episode {episode} is already decided")

    async def flags(self) -> list[tuple[str, str]]:
        async with self.db.execute("SELECT name, value FROM flags ORDER BY name") as cursor:
            return [(r[0], r[1]) for r in await cursor.fetchall()]

    async def add_decision(self, decision: NewDecision) -> int:
        alert = decision.alert
        cursor = await self.db.execute(
            "INSERT INTO decisions (time, policy, source, alertname, fingerprint, episode, action, "
            "target, outcome, reason, approval_id, repeats) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                _ts(decision.time),
                decision.policy,
                alert.source,
                alert.name,
                alert.fingerprint,
                alert.episode,
                decision.action,
                decision.target,
                decision.outcome,
                redact(decision.reason),
                decision.approval_id,
                decision.repeats,
            ),
        )
        return _row_id(cursor.lastrowid)

    async def set_outcome(self, decision_id: int, outcome: str, reason: str) -> bool:
        cursor = await self.db.execute(
            f"UPDATE decisions SET outcome = ?, reason = ? WHERE id = ? AND {_OUTCOME_OPEN}",  # noqa: S608  # constants, not input
            (outcome, redact(reason), decision_id, *_OUTCOME_OPEN_ARGS),
        )
        if cursor.rowcount != 1:
            return False
        await self.db.execute(  # the claim follows the outcome (what dedup and simulate show)
            "UPDATE claims SET outcome = ? WHERE decision_id = ?", (str(outcome), decision_id)
        )
        return True

    async def add_action(
        self,
        decision_id: int,
        policy: str,
        action: str,
        target: str,
        params: Mapping[str, str],
        *,
        dry_run: bool,
        now: datetime,
    ) -> int:
        cursor = await self.db.execute(
            "INSERT INTO actions (decision_id, policy, type, target, params, dry_run, state, "
            "created_at, owner, heartbeat_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                decision_id,
                policy,
                action,
                target,
                json.dumps(dict(params)),
                int(dry_run),
                "dry_run" if dry_run else "pending",
                _ts(now),
                self.owner,
                _ts(now),
            ),
        )
        return _row_id(cursor.lastrowid)

    async def last_action_at(self, policy: str, target: str) -> datetime | None:
        row = await self._one(
            "SELECT max(created_at) FROM actions WHERE policy = ? AND target = ?", (policy, target)
        )
        return _parse(row[0]) if row and row[0] else None

    async def count_actions(
        self, since: datetime, *, policy: str | None, dry_run: bool | None, limit: int | None = None
    ) -> int:
        """Actions created after `since`; with `limit`, counting stops there (a guard only asks
        whether its limit is reached), so the cost is bounded by the limit, not the history."""
        sql = "SELECT 1 FROM actions WHERE created_at > ?"
        args: list[str | int] = [_ts(since)]
        if policy is not None:
            sql += " AND policy = ?"
            args.append(policy)
        if dry_run is not None:
            sql += " AND dry_run = ?"
            args.append(int(dry_run))
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        row = await self._one(f"SELECT count(*) FROM ({sql})", args)  # noqa: S608  # constants
        return int(row[0]) if row else 0

    async def note_episode(self, alert: Alert, now: datetime) -> None:
        """First sight of an episode is kept, every sight moves last_seen (never back); a
        resolve stamps its end (only the first one)."""
        await self.db.execute(_NOTE_EPISODE, _sighting(alert, now))

    async def episode_cycle(self, group: str, cycle: str) -> str:
        """The episode of `group`'s current cycle: a start after an end opens the next one;
        repeats and ends belong to the latest (a repeat never opens an incident)."""
        row = await self._one("SELECT generation, open FROM cycles WHERE grp = ?", (group,))
        if row is None:
            generation = 1
            await self.db.execute(
                "INSERT INTO cycles (grp, generation, open) VALUES (?, 1, ?)",
                (group, int(cycle != "end")),
            )
        else:
            generation, is_open = int(row[0]), bool(row[1])
            if cycle == "start" and not is_open:
                generation += 1
                await self.db.execute(
                    "UPDATE cycles SET generation = ?, open = 1 WHERE grp = ?", (generation, group)
                )
            elif cycle == "end" and is_open:
                await self.db.execute("UPDATE cycles SET open = 0 WHERE grp = ?", (group,))
        return f"{group}:{generation}"

    # --- one batch: facts read once, rows written once (see core/judge.py) ---------------

    async def claims_of(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], Claim]:
        wanted = set(keys)
        found: dict[tuple[str, str], Claim] = {}
        for chunk in _chunks(sorted({episode for _, episode in wanted})):
            async with self.db.execute(
                "SELECT policy, episode, decision_id, outcome, provisional, action, target, "  # noqa: S608  # placeholders only
                f"dedup_decision_id FROM claims WHERE episode IN ({_marks(chunk)})",
                chunk,
            ) as cursor:
                for row in await cursor.fetchall():
                    key = (row[0], row[1])
                    if key in wanted:
                        found[key] = Claim(row[2], row[3], bool(row[4]), row[5], row[6], row[7])
        return found

    async def last_actions(
        self, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], datetime]:
        by_policy: dict[str, list[str]] = {}
        for policy, target in set(keys):
            by_policy.setdefault(policy, []).append(target)
        found: dict[tuple[str, str], datetime] = {}
        for policy, targets in by_policy.items():
            for chunk in _chunks(sorted(targets)):
                async with self.db.execute(
                    "SELECT target, max(created_at) FROM actions WHERE policy = ? "  # noqa: S608  # placeholders only
                    f"AND target IN ({_marks(chunk)}) GROUP BY target",
                    (policy, *chunk),
                ) as cursor:
                    for row in await cursor.fetchall():
                        found[(policy, row[0])] = _parse(row[1])
        return found

    async def pending_for(self, episodes: Collection[str]) -> dict[str, list[Approval]]:
        found: dict[str, list[Approval]] = {}
        for chunk in _chunks(sorted(set(episodes))):
            async with self.db.execute(
                f"SELECT * FROM approvals WHERE state = 'pending' AND episode IN ({_marks(chunk)})",  # noqa: S608  # placeholders only
                chunk,
            ) as cursor:
                for row in await cursor.fetchall():
                    found.setdefault(row["episode"], []).append(_approval(row))
        return found

    async def reserve_ids(self, decisions: int, actions: int) -> Ids:
        """Under the write lock (BEGIN IMMEDIATE) nobody else inserts: the ids after the
        highest ever used (sqlite_sequence, AUTOINCREMENT's record) are ours to assign."""
        row = await self._one(
            "SELECT (SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'decisions'), "
            "(SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'actions')"
        )
        first_decision, first_action = (int(row[0]) + 1, int(row[1]) + 1) if row else (1, 1)
        return Ids(itertools.count(first_decision), itertools.count(first_action))

    async def write(self, decided: Decided, now: datetime) -> None:
        """Every row of one judgement, one executemany per table."""
        if decided.sightings:
            await self.db.executemany(_NOTE_EPISODE, [_sighting(a, now) for a in decided.sightings])
        if decided.decisions:
            await self.db.executemany(
                "INSERT INTO decisions (id, time, policy, source, alertname, fingerprint, "
                "episode, action, target, outcome, reason, approval_id, repeats) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [_decision_row(d) for d in decided.decisions],
            )
        if decided.claims:
            cursor = await self.db.executemany(
                _PUT_CLAIM, [_claim_row(key, claim) for key, claim in decided.claims.items()]
            )
            if cursor.rowcount != len(decided.claims):
                raise ClaimConflictError("an episode of this batch is already decided")
        if decided.actions:
            await self.db.executemany(
                "INSERT INTO actions (id, decision_id, policy, type, target, params, dry_run, "
                "state, created_at, owner, heartbeat_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        a.id,
                        a.decision_id,
                        a.policy,
                        a.type,
                        a.target,
                        json.dumps(dict(a.params)),
                        int(a.dry_run),
                        "dry_run" if a.dry_run else "pending",
                        _ts(a.time),
                        self.owner,
                        _ts(a.time),
                    )
                    for a in decided.actions
                ],
            )
        for row in decided.approval_rows:
            await self.add_approval(row.approval, row.episode, row.params, row.context)
        for cancelled in decided.cancelled:
            await self.save_approval(cancelled)
            await self.set_outcome(
                cancelled.decision_id, Outcome.CANCELLED, "the alert resolved before a decision"
            )

    async def pending_approvals(self, episode: str) -> list[Approval]:
        async with self.db.execute(
            "SELECT * FROM approvals WHERE episode = ? AND state = 'pending'", (episode,)
        ) as cursor:
            return [_approval(row) for row in await cursor.fetchall()]

    async def add_approval(
        self,
        approval: Approval,
        episode: str,
        params: Mapping[str, str],
        context: Mapping[str, object] | None = None,
    ) -> None:
        await self.db.execute(
            "INSERT INTO approvals (id, decision_id, policy, action, target, params, episode, "
            "context, state, "
            "requested_at, expires_at, required, approvers, approved_by, decided_by) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                approval.id,
                approval.decision_id,
                approval.policy,
                approval.action,
                approval.target,
                json.dumps(dict(params)),
                episode,
                json.dumps(redacted(dict(context or {}))),
                approval.state.value,
                _ts(approval.requested_at),
                _ts(approval.expires_at),
                approval.required,
                json.dumps(list(approval.approvers)),
                json.dumps(list(approval.approved_by)),
                approval.decided_by,
            ),
        )

    async def save_approval(self, approval: Approval) -> None:
        cursor = await self.db.execute(
            "UPDATE approvals SET state = ?, approved_by = ?, decided_by = ? "
            "WHERE id = ? AND state = 'pending'",
            (
                approval.state.value,
                json.dumps(list(approval.approved_by)),
                approval.decided_by,
                approval.id,
            ),
        )
        if cursor.rowcount != 1:
            row = await self._one("SELECT state FROM approvals WHERE id = ?", (approval.id,))
            raise ApprovalConflictError(_not_pending(approval.id, row[0] if row else None))

    async def approval(self, approval_id: str) -> Approval | None:
        row = await self._one("SELECT * FROM approvals WHERE id = ?", (approval_id,))
        return _approval(row) if row else None

    async def approval_params(self, approval_id: str) -> dict[str, str]:
        row = await self._one("SELECT params FROM approvals WHERE id = ?", (approval_id,))
        return dict(json.loads(row[0])) if row else {}

    async def expired_approvals(self, now: datetime) -> list[Approval]:
        async with self.db.execute(
            "SELECT * FROM approvals WHERE state = 'pending' AND expires_at <= ?", (_ts(now),)
        ) as cursor:
            return [_approval(row) for row in await cursor.fetchall()]


def _not_pending(approval_id: str, state: str | None) -> str:
    if state is None:
        return f"approval {approval_id} does not exist (any more)"
    return f"approval {approval_id} is already {state}"


class _PruneBatch:
    """store/prune.py's PruneBatch on one SQLite transaction: a key list is a JSON array."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    def keys_sql(self, sql: str, kind: KeyKind) -> str:
        return sql.replace("{keys}", "SELECT value FROM json_each(:keys)")

    async def keys(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        async with self.db.execute(sql, dict(params)) as cursor:
            return [row[0] for row in await cursor.fetchall()]

    async def delete(self, sql: str, params: Mapping[str, Any]) -> int:
        cursor = await self.db.execute(sql, {**params, "keys": json.dumps(list(params["keys"]))})
        return int(cursor.rowcount)


async def _join_worker(connection: aiosqlite.Connection) -> None:
    # On a failed connect aiosqlite queues a stop for its worker thread without waiting;
    # the thread would then report to an event loop that may have closed meanwhile.
    worker = getattr(connection, "_thread", None)
    if worker is not None and worker.is_alive():
        await asyncio.to_thread(worker.join, 5)


class SqliteStore:
    exclusive = True  # one daemon per file: the one writer lock is in this process

    def __init__(self, path: str, *, busy_timeout_ms: int = 5000, owner: str = "") -> None:
        self._path = path
        self._owner = owner or replica_name()
        self._busy_timeout_ms = busy_timeout_ms
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        connecting = aiosqlite.connect(self._path, isolation_level=None)
        try:
            self._db = await connecting
        except (sqlite3.Error, OSError) as exc:
            await _join_worker(connecting)
            raise StoreError(f"cannot open SQLite state store {self._path}: {exc}") from None
        try:
            self._db.row_factory = sqlite3.Row
            await self._db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            if self._path != ":memory:":
                await self._wal(self._db)
            # FULL: an acknowledged decision must survive power loss, not a process crash only.
            await self._db.execute("PRAGMA synchronous = FULL")
            await self._migrate()
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise StoreError(f"cannot open SQLite state store {self._path}: {exc}") from None
        except BaseException:
            # A refused schema (StoreError) or a cancellation must not leave aiosqlite's
            # non-daemon thread running: it would keep the process from exiting.
            await self.close()
            raise

    async def _wal(self, db: aiosqlite.Connection) -> None:
        """PRAGMA journal_mode = WAL, retried on SQLITE_BUSY for up to busy_timeout.

        Switching a new file to WAL reads its header (a read transaction), then upgrades to
        the exclusive lock to rewrite it. SQLite calls the busy handler only while no
        transaction is open (sqlite3BtreeBeginTrans: two connections upgrading their read
        locks would otherwise wait for each other forever), so busy_timeout does not apply
        to that upgrade: whenever another connection holds any lock at that instant (a second
        replica opening the same new file, or its migration), the pragma fails at once with
        "database is locked" (4 processes opening a new file at once: 3 to 21 rounds in 200).
        The failed statement changes nothing and drops its read lock, and once the file is
        WAL the mode is persistent and later opens need no exclusive lock, so retrying is
        sound; random backoff keeps two openers from colliding in step. A flock on a sidecar
        file would serialise remediator's own openers only (not a sqlite3 shell or a backup
        tool) and leave a file beside the state; a bounded retry covers any contender.
        """
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_busy),
            stop=stop_after_delay(self._busy_timeout_ms / 1000),
            wait=wait_random_exponential(multiplier=0.005, max=0.1),
            reraise=True,
        ):
            with attempt:
                await db.execute("PRAGMA journal_mode = WAL")

    async def _migrate(self) -> None:
        """Under the write lock (BEGIN IMMEDIATE), like PostgreSQL's advisory lock: two
        processes opening a new file at once create the schema once."""
        db = self._conn()
        await db.execute("BEGIN IMMEDIATE")
        try:
            async with db.execute("PRAGMA user_version") as cursor:
                row = await cursor.fetchone()
            version = int(row[0]) if row else 0
            refuse_newer(self._path, version)
            script = [_SCHEMA] if version == 0 else []
            script += [
                _MIGRATIONS[target] for target in range(max(version, 1) + 1, SCHEMA_VERSION + 1)
            ]
            for statement in ";".join(script).split(";"):
                if statement.strip():
                    await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            await db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error, ValueError):
                await db.execute("ROLLBACK")
            raise

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("state store is not open")
        return self._db

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def ping(self) -> None:
        try:
            async with self._lock, self._conn().execute("SELECT 1") as cursor:
                await cursor.fetchone()
        except (sqlite3.Error, ValueError) as exc:
            raise StoreError(f"state store unavailable: {exc}") from None

    @asynccontextmanager
    async def transaction(self, *, commit: bool = True) -> AsyncIterator[SqliteTransaction]:
        async with self._lock:
            db = self._conn()
            try:
                await db.execute("BEGIN IMMEDIATE")
            except (sqlite3.Error, ValueError) as exc:
                raise StoreError(f"state store unavailable: {exc}") from None
            except BaseException:
                # Cancelled while BEGIN was queued or running in aiosqlite's thread: it still
                # runs there, so undo it, or the next BEGIN finds a transaction left open.
                await _rollback(db)
                raise
            try:
                yield SqliteTransaction(db, self._owner)
                await db.execute("COMMIT" if commit else "ROLLBACK")
            except BaseException as exc:
                # If the connection is gone, nothing was committed either way.
                await _rollback(db)
                if isinstance(exc, sqlite3.Error):  # a full disk, a lost file: a 503, retried
                    raise StoreError(f"state store unavailable: {exc}") from None
                raise

    @asynccontextmanager
    async def target_lease(self, key: str) -> AsyncIterator[None]:
        """One process owns a SQLite store: the runner's in-process target locks suffice."""
        yield

    async def _write(self, sql: str, args: Sequence[Any]) -> None:
        async with self.transaction() as tx:
            await tx.db.execute(sql, args)

    async def add_repeats(self, counts: Mapping[int, int], now: datetime | None = None) -> None:
        if not counts:
            return
        seen = _ts(now or datetime.now(UTC))
        async with self.transaction() as tx:
            await tx.db.executemany(
                "UPDATE decisions SET repeats = repeats + ? WHERE id = ?",
                [(n, decision_id) for decision_id, n in counts.items()],
            )
            # Repeats answered from memory are sightings too: a long-firing alert that
            # Alertmanager keeps re-sending keeps its claim (see store/prune.py).
            await tx.db.execute(
                "UPDATE episodes SET last_seen = max(coalesce(last_seen, first_seen), ?) "
                "WHERE episode IN (SELECT episode FROM decisions "
                "WHERE id IN (SELECT value FROM json_each(?)))",
                (seen, json.dumps(list(counts))),
            )

    async def start_action(self, action_id: int, now: datetime) -> bool:
        async with self.transaction() as tx:
            cursor = await tx.db.execute(
                "UPDATE actions SET state = 'running', started_at = ?, heartbeat_at = ? "
                "WHERE id = ? AND state = 'pending' AND owner = ?",
                (_ts(now), _ts(now), action_id, self._owner),
            )
            return cursor.rowcount == 1

    async def finish_action(self, action_id: int, outcome: str, reason: str, now: datetime) -> bool:
        if outcome in UNFINISHED:
            raise ValueError(f"{outcome} is not a result")
        reason = redact(reason)
        async with self.transaction() as tx:
            # Ours and running; or ours, started, and recorded interrupted by another replica
            # while it ran (our lease lapsed): the real result replaces `interrupted`.
            cursor = await tx.db.execute(
                "UPDATE actions SET state = ?, finished_at = ?, reason = ? "
                "WHERE id = ? AND owner = ? AND (state = 'running' "
                "OR (state = 'interrupted' AND started_at IS NOT NULL))",
                (outcome, _ts(now), reason, action_id, self._owner),
            )
            if cursor.rowcount != 1:
                return False
            await tx.db.execute(
                "UPDATE decisions SET outcome = ?, reason = ? WHERE id = "
                "(SELECT decision_id FROM actions WHERE id = ?) AND outcome IN (?, 'interrupted')",
                (outcome, reason, action_id, ACTING),
            )
            # The claim follows: what dedup and simulate show is what the audit says. An
            # action held at its turn never ran: its episode stays open, as a held decision.
            await tx.db.execute(
                "UPDATE claims SET outcome = ?, provisional = provisional OR ? WHERE "
                "decision_id = (SELECT decision_id FROM actions WHERE id = ?)",
                (outcome, int(outcome in HELD), action_id),
            )
            return True

    async def heartbeat(self, action_ids: Sequence[int], now: datetime) -> None:
        if not action_ids:
            return
        async with self.transaction() as tx:
            await tx.db.executemany(
                "UPDATE actions SET heartbeat_at = ? WHERE id = ? AND owner = ? "
                "AND state IN (?, ?)",
                [(_ts(now), action_id, self._owner, *UNFINISHED) for action_id in action_ids],
            )

    async def interrupt_stale(self, now: datetime, lease: timedelta | None) -> list[Interrupted]:
        sql = (
            "SELECT id, policy, type, state, owner, heartbeat_at FROM actions WHERE state IN (?, ?)"
        )
        args: list[str] = list(UNFINISHED)
        if lease is not None:  # one process, one clock: its own is the store's
            sql += " AND coalesce(heartbeat_at, created_at) < ?"
            args.append(_ts(now - lease))
        async with self.transaction() as tx:
            async with tx.db.execute(sql, args) as cursor:
                rows = list(await cursor.fetchall())
            found = [
                await self._interrupt(tx, row, stale_reason(row["state"], row["owner"], lease), now)
                for row in rows
            ]
        return [item for item in found if item is not None]

    async def interrupt_actions(
        self, action_ids: Sequence[int], now: datetime, reason: str
    ) -> list[Interrupted]:
        found = []
        async with self.transaction() as tx:
            for action_id in action_ids:
                async with tx.db.execute(
                    "SELECT id, policy, type FROM actions WHERE id = ? AND owner = ? "
                    "AND state IN (?, ?)",
                    (action_id, self._owner, *UNFINISHED),
                ) as cursor:
                    row = await cursor.fetchone()
                if row is not None:
                    found.append(await self._interrupt(tx, row, reason, now))
        return [item for item in found if item is not None]

    @staticmethod
    async def _interrupt(
        tx: SqliteTransaction, row: sqlite3.Row, reason: str, now: datetime
    ) -> Interrupted | None:
        reason = redact(reason)
        cursor = await tx.db.execute(
            "UPDATE actions SET state = 'interrupted', finished_at = ?, reason = ? "
            "WHERE id = ? AND state IN (?, ?)",
            (_ts(now), reason, row["id"], *UNFINISHED),
        )
        if cursor.rowcount != 1:
            return None
        await tx.db.execute(
            "UPDATE decisions SET outcome = 'interrupted', reason = ? WHERE id = "
            "(SELECT decision_id FROM actions WHERE id = ?) AND outcome = ?",
            (reason, row["id"], ACTING),
        )
        await tx.db.execute(
            "UPDATE claims SET outcome = 'interrupted' WHERE outcome = ? AND decision_id = "
            "(SELECT decision_id FROM actions WHERE id = ?)",
            (ACTING, row["id"]),
        )
        return Interrupted(row["id"], row["policy"], row["type"], reason)

    async def prune(self, before: datetime) -> dict[str, int]:
        @asynccontextmanager
        async def batch() -> AsyncIterator[_PruneBatch]:
            async with self.transaction() as tx:  # the writer, for one batch at a time
                yield _PruneBatch(tx.db)

        return await prune_batches(batch, _ts(before))

    async def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            async with self._lock, self._conn().execute(sql, args) as cursor:
                return list(await cursor.fetchall())
        except (sqlite3.Error, ValueError) as exc:
            raise StoreError(f"state store unavailable: {exc}") from None

    async def decisions(self, limit: int) -> list[DecisionRecord]:
        rows = await self._fetch("SELECT * FROM decisions ORDER BY id DESC LIMIT ?", (limit,))
        return [decision_from_row(r, _parse) for r in rows]

    async def approvals(self, *, pending_only: bool) -> list[Approval]:
        where = " WHERE state = 'pending'" if pending_only else ""
        rows = await self._fetch(f"SELECT * FROM approvals{where} ORDER BY requested_at")  # noqa: S608  # a constant, not input
        return [_approval(row) for row in rows]

    async def approval(self, approval_id: str) -> Approval | None:
        rows = await self._fetch("SELECT * FROM approvals WHERE id = ?", (approval_id,))
        return _approval(rows[0]) if rows else None

    async def approval_context(self, approval_id: str) -> dict[str, Any]:
        rows = await self._fetch("SELECT context FROM approvals WHERE id = ?", (approval_id,))
        return dict(json.loads(rows[0][0])) if rows else {}

    async def approval_message(self, approval_id: str) -> tuple[str, str] | None:
        rows = await self._fetch(
            "SELECT slack_channel, slack_ts FROM approvals WHERE id = ?", (approval_id,)
        )
        return (rows[0][0], rows[0][1]) if rows and rows[0][0] and rows[0][1] else None

    async def set_approval_message(self, approval_id: str, channel: str, ts: str) -> None:
        await self._write(
            "UPDATE approvals SET slack_channel = ?, slack_ts = ? WHERE id = ?",
            (channel, ts, approval_id),
        )

    async def unannounced_approvals(self) -> list[Approval]:
        rows = await self._fetch(
            "SELECT * FROM approvals WHERE state = 'pending' AND slack_ts IS NULL"
        )
        return [_approval(row) for row in rows]

    async def approval_for_action(self, action_id: int) -> Approval | None:
        rows = await self._fetch(
            "SELECT approvals.* FROM approvals JOIN actions "
            "ON actions.decision_id = approvals.decision_id WHERE actions.id = ?",
            (action_id,),
        )
        return _approval(rows[0]) if rows else None

    async def add_approval_event(
        self, approval_id: str, who: str, event: str, detail: str, now: datetime
    ) -> None:
        await self._write(
            "INSERT INTO approval_events (time, approval_id, who, event, detail) "
            "VALUES (?, ?, ?, ?, ?)",
            (_ts(now), approval_id, who, event, redact(detail)),
        )

    async def approval_events(self, approval_id: str) -> list[dict[str, str]]:
        rows = await self._fetch(
            "SELECT time, who, event, detail FROM approval_events WHERE approval_id = ? "
            "ORDER BY id",
            (approval_id,),
        )
        return [{"time": r[0], "who": r[1], "event": r[2], "detail": r[3]} for r in rows]

    async def get_flag(self, name: str) -> str | None:
        rows = await self._fetch("SELECT value FROM flags WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else None

    async def set_flag(self, name: str, value: str | None) -> None:
        if value is None:
            await self._write("DELETE FROM flags WHERE name = ?", (name,))
        else:
            await self._write(
                "INSERT INTO flags (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    async def flags(self, prefix: str) -> list[tuple[str, str]]:
        rows = await self._fetch(
            "SELECT name, value FROM flags WHERE substr(name, 1, ?) = ? ORDER BY name",
            (len(prefix), prefix),
        )
        return [(r[0], r[1]) for r in rows]
