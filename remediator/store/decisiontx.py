"""The decision log inside a deciding transaction: its claims, decisions, actions and episodes,
and the statements a batch writes them with (store/sql.py). Nothing here knows which backend
runs it (store/dialect.py), and nothing here reads a batch's facts (store/facts.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from remediator.core.alert import Alert
from remediator.core.dedup import Claim
from remediator.core.ladder import Rung
from remediator.core.records import NewDecision
from remediator.core.verify import Checks
from remediator.log import redact
from remediator.store.dialect import Conn, Tx, sql_list
from remediator.store.records import params_json
from remediator.store.roles.decisionlog import ACTING, OPEN_OUTCOMES, UNFINISHED, ClaimConflictError
from remediator.store.rows import claim_row, counter_rows, decision_row, sighting_row

# Statements are composed only from this module's constants; every value is bound (S608).
_UNFINISHED = sql_list(UNFINISHED)
# What replaces a claim: a new one, or a provisional one (a held decision may be decided
# again), or the same decision's; never a settled claim of another decision.
CLAIM_UPSERT = (
    "ON CONFLICT (policy, episode) DO UPDATE SET decision_id = excluded.decision_id, "
    "outcome = excluded.outcome, provisional = excluded.provisional, "
    "action = excluded.action, target = excluded.target, "
    "dedup_decision_id = excluded.dedup_decision_id "
    "WHERE claims.provisional OR claims.decision_id = excluded.decision_id"
)
PUT_CLAIM = (
    "INSERT INTO claims (policy, episode, decision_id, outcome, provisional, action, "  # noqa: S608  # constants
    f"target, dedup_decision_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?) {CLAIM_UPSERT}"
)
# First sight of an episode is kept, every sight moves last_seen (never back, never below
# first_seen); a resolve stamps its end (only the first one). The coalesce is for SQLite, whose
# max() is NULL when any argument is (last_seen of a row from before schema 5).
# Annotations and generator_url (schema 10) are what resume and reset need to decide a held
# episode again without its alert; an episode recorded before them gets them at its next
# sighting that reaches the store.
NOTE_EPISODE = (
    "INSERT INTO episodes (episode, source, fingerprint, alertname, labels, starts_at, "
    "first_seen, resolved_at, last_seen, annotations, generator_url) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (episode) DO UPDATE "
    "SET resolved_at = coalesce(episodes.resolved_at, excluded.resolved_at), "
    "last_seen = {greatest}(coalesce(episodes.last_seen, episodes.first_seen), "
    "episodes.first_seen, excluded.last_seen), "
    "generator_url = CASE WHEN episodes.annotations IS NULL THEN excluded.generator_url "
    "ELSE episodes.generator_url END, "
    "annotations = coalesce(episodes.annotations, excluded.annotations)"
)
_DECISION_COLUMNS = (
    "time, policy, source, alertname, fingerprint, episode, action, target, outcome, reason, "
    "approval_id, repeats, step"
)
ADD_DECISIONS = (
    f"INSERT INTO decisions (id, {_DECISION_COLUMNS}) {{overriding}}"
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_ACTION_COLUMNS = (
    "decision_id, policy, type, target, params, dry_run, state, created_at, owner, heartbeat_at"
)
# heartbeat_at is the store's clock: SQLite binds the action's time, PostgreSQL reads its own.
ADD_ACTIONS = (
    f"INSERT INTO actions (id, {_ACTION_COLUMNS}) {{overriding}}"
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {clock})"
)
# Per-minute action counters (schema 8), one row per (policy, dry_run, minute) that
# rows.counter_rows names.
COUNT_ACTIONS = (
    "INSERT INTO action_counts (policy, dry_run, minute, n) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (policy, dry_run, minute) DO UPDATE SET n = action_counts.n + excluded.n"
)
# An action that turned out never to have reached its target leaves its minute's counters
# (schema 10: actions.reached): the counters hold what may have reached a target, nothing else.
UNCOUNT_ACTION = (
    "UPDATE action_counts SET n = n - ? WHERE policy = ? AND dry_run = ? AND minute = ?"
)


async def unreached(sql: Conn, action_id: int) -> None:
    """The action provably never reached its target: it counts toward no cooldown or rate
    limit from now on (once: a second call changes nothing). Counters are touched in
    counter_rows' order, as COUNT_ACTIONS's are, so the two never wait for each other in
    opposite orders."""
    if await sql.run("UPDATE actions SET reached = FALSE WHERE id = ? AND reached", action_id) != 1:
        return
    row = await sql.row("SELECT policy, dry_run, created_at FROM actions WHERE id = ?", action_id)
    if row is None:  # pragma: no cover  # the row was just updated in this transaction
        return
    d = sql.dialect
    created = d.when(row[2])
    rows = counter_rows(d, [(str(row[0]), bool(row[1]), created)])
    await sql.run_many(UNCOUNT_ACTION, [(n, p, dry, m) for p, dry, m, n in rows])


# The decision row `decisions` may still change (roles.decisionlog.OPEN_OUTCOMES; `executing`
# only once none of its actions is unfinished).
_OUTCOME_OPEN = (
    f"(decisions.outcome IN {sql_list(OPEN_OUTCOMES)} OR (decisions.outcome = '{ACTING}' "  # noqa: S608  # constants
    "AND NOT EXISTS (SELECT 1 FROM actions WHERE actions.decision_id = decisions.id "
    f"AND actions.state IN {_UNFINISHED})))"
)


class DecisionTx(Tx):
    """roles.decisionlog.DecisionTransaction, less its facts' reads (store/facts.py) and what a
    backend writes its own way (store/sql.py)."""

    async def claim(self, policy: str, episode: str) -> Claim | None:
        row = await self.sql.row(
            "SELECT decision_id, outcome, provisional, action, target, dedup_decision_id "
            "FROM claims WHERE policy = ? AND episode = ?",
            policy,
            episode,
        )
        if row is None:
            return None
        return Claim(row[0], row[1], bool(row[2]), row[3], row[4], row[5])

    async def put_claim(self, policy: str, episode: str, claim: Claim) -> None:
        if await self.sql.run(PUT_CLAIM, *claim_row((policy, episode), claim)) != 1:
            raise ClaimConflictError(f"policy {policy} episode {episode} is already decided")

    async def add_decision(self, decision: NewDecision) -> int:
        return await self.sql.insert(
            f"INSERT INTO decisions ({_DECISION_COLUMNS}) "  # noqa: S608  # constants
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            *decision_row(self.sql.dialect, decision),
        )

    async def set_outcome(self, decision_id: int, outcome: str, reason: str) -> bool:
        changed = await self.sql.run(
            f"UPDATE decisions SET outcome = ?, reason = ? WHERE id = ? AND {_OUTCOME_OPEN}",  # noqa: S608  # constants
            str(outcome),
            redact(reason),
            decision_id,
        )
        if changed != 1:
            return False
        await self.sql.run(  # the claim follows the outcome (what dedup and simulate show)
            "UPDATE claims SET outcome = ? WHERE decision_id = ?", str(outcome), decision_id
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
        verify: Checks | None = None,
        ladder: Sequence[Rung] = (),
    ) -> int:
        d = self.sql.dialect
        action_id = await self.sql.insert(
            f"INSERT INTO actions ({_ACTION_COLUMNS}) "  # noqa: S608  # constants
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, {clock})",
            decision_id,
            policy,
            action,
            target,
            params_json(params, verify, ladder),
            dry_run,
            "dry_run" if dry_run else "pending",
            d.ts(now),
            self.owner,
            *d.clock(now),
        )
        await self.sql.run_many(COUNT_ACTIONS, counter_rows(d, [(policy, dry_run, now)]))
        return action_id

    async def note_episode(self, alert: Alert, now: datetime) -> None:
        await self.sql.run(NOTE_EPISODE, *sighting_row(self.sql.dialect, alert, now))

    async def episode_cycle(self, group: str, cycle: str) -> str:
        """The episode of `group`'s current cycle: a start after an end opens the next one;
        repeats and ends belong to the latest (a repeat never opens an incident)."""
        row = await self.sql.row(
            "SELECT generation, open FROM cycles WHERE grp = ?{for_update}", group
        )
        if row is None:
            generation = 1
            await self.sql.run(
                "INSERT INTO cycles (grp, generation, open) VALUES (?, 1, ?)", group, cycle != "end"
            )
        else:
            generation, is_open = int(row[0]), bool(row[1])
            if cycle == "start" and not is_open:
                generation += 1
                await self.sql.run(
                    "UPDATE cycles SET generation = ?, open = TRUE WHERE grp = ?", generation, group
                )
            elif cycle == "end" and is_open:
                await self.sql.run("UPDATE cycles SET open = FALSE WHERE grp = ?", group)
        return f"{group}:{generation}"
