"""What the store counts toward the guards, on both backends: actions that provably never
reached their target count toward nothing (and the store, not a cache, knows it after a
restart); dry runs and live actions are read apart; held episodes are found with what it
takes to decide them again, and deciding them again is done once however many replicas try;
and a version 8 store is migrated to all of this."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from remediator.core.alert import Alert
from remediator.core.outcomes import EXECUTING, Outcome
from remediator.core.policy import Policy, parse_policies
from remediator.core.records import NewDecision
from remediator.errors import StoreError
from remediator.pipeline import Decided, Gates, decide
from remediator.store import postgres_schema, sqlite_schema
from remediator.store.postgres import PostgresStore
from remediator.store.roles.decisionlog import WindowCount
from remediator.store.roles.store import SCHEMA_VERSION, Store
from remediator.store.sqlite import SqliteStore
from tests.integration.test_store_contract import SETTINGS, alert, policy

T0 = datetime(2026, 11, 22, 12, 0, 30, tzinfo=UTC)
P = "restart"  # the policy of test_store_contract.policy()
HOUR = timedelta(hours=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Opener:
    """Store objects on one fresh database, each as another process (or replica) would open
    it; `url` is the PostgreSQL database's ("" on SQLite, whose file is `path`)."""

    def __init__(self, url: str, path: Path) -> None:
        self.url = url
        self.path = path
        self.opened: list[Store] = []

    async def __call__(self) -> Store:
        owner = f"replica-{len(self.opened)}"
        store: Store = (
            PostgresStore(self.url, owner=owner, max_size=8)
            if self.url
            else SqliteStore(str(self.path), owner=owner)
        )
        await store.open()
        self.opened.append(store)
        return store


@pytest.fixture
async def opener(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Opener]:
    url = request.getfixturevalue("postgres").database() if backend == "postgresql" else ""
    made = Opener(url, tmp_path / "state.db")
    yield made
    for store in made.opened:
        await store.close()


async def _action(store: Store, target: str, *, dry_run: bool = False, at: datetime = T0) -> int:
    a = alert(1, container=target)
    async with store.transaction() as tx:
        decision = await tx.add_decision(
            NewDecision(at, P, a, "docker.restart", target, "executing", "")
        )
        return await tx.add_action(
            decision, P, "docker.restart", target, {}, dry_run=dry_run, now=at
        )


async def _budget(store: Store, *targets: str) -> tuple[dict[str, datetime], list[int]]:
    """The last live action per target and the live counts (policy P, all policies), as the
    pipeline reads them."""
    async with store.transaction(commit=False) as tx:
        rows = await tx.facts(
            set(),
            {(P, t) for t in targets},
            [WindowCount(T0 - HOUR, P, False, 100), WindowCount(T0 - HOUR, None, False, 100)],
        )
    return {t: when for (_, t), when in rows.last_live_actions.items()}, rows.counts


async def test_an_action_that_never_reached_its_target_counts_toward_nothing_after_a_restart(
    opener: Opener,
) -> None:
    store = await opener()
    refused, reached = await _action(store, "web-1"), await _action(store, "web-2")
    held, _never_started, cut_off = [await _action(store, t) for t in ("web-3", "web-4", "web-5")]
    for action_id in (refused, reached, held, cut_off):
        assert await store.start_action(action_id, T0)
    assert await store.finish_action(refused, "failed", "refused", T0, reached=False)
    assert await store.finish_action(reached, "failed", "HTTP 500", T0)
    assert await store.finish_action(held, "paused", "paused at its turn", T0, reached=False)
    # A daemon that died: what never started never reached anything; what ran may have.
    await store.interrupt_stale(T0, None)
    assert not await store.finish_action(refused, "failed", "again", T0, reached=False)
    await store.close()

    again = await opener()  # a restart: nothing in memory, the store alone knows
    last, counts = await _budget(again, "web-1", "web-2", "web-3", "web-4", "web-5")
    assert last == {"web-2": T0, "web-5": T0}
    assert counts == [2, 2]  # the refused one, the held one, the never started one: none
    async with again.transaction(commit=False) as tx:
        assert await tx.last_action_at(P, "web-1") is None
        assert await tx.last_action_at(P, "web-2") == T0
        assert await tx.count_actions(T0 - HOUR, policy=P, dry_run=None) == 2
        assert await tx.count_actions(T0, policy=None, dry_run=False) == 0  # strictly after
    # A decision reads the same: web-1 may act again at once, web-2 waits for its cooldown.
    pol = policy("guards: {cooldown: 1h, rate_limit: 3/1h}\n")
    fresh = [alert(9, container=t)._replace(episode=f"am:{t}:2") for t in ("web-1", "web-2")]
    async with again.transaction() as tx:
        decided = await decide(fresh, [pol], tx, T0 + timedelta(minutes=5), Gates(), SETTINGS)
    assert [(v.target, v.outcome) for v in decided.verdicts] == [
        ("web-1", EXECUTING),
        ("web-2", Outcome.COOLDOWN),
    ]


async def test_dry_runs_and_live_actions_are_read_apart(
    opener: Opener,
) -> None:
    store = await opener()
    await _action(store, "web-1", dry_run=True, at=T0)
    await _action(store, "web-1", dry_run=False, at=T0 - timedelta(minutes=30))
    await _action(store, "web-2", dry_run=True, at=T0)
    async with store.transaction(commit=False) as tx:
        rows = await tx.facts(
            set(),
            {(P, "web-1"), (P, "web-2")},
            [WindowCount(T0 - HOUR, P, False), WindowCount(T0 - HOUR, P, None)],
        )
        assert await tx.last_action_at(P, "web-1", dry_run=False) == T0 - timedelta(minutes=30)
    assert rows.last_actions == {(P, "web-1"): T0, (P, "web-2"): T0}
    assert rows.last_live_actions == {(P, "web-1"): T0 - timedelta(minutes=30)}
    assert rows.counts == [1, 3]


_POLICY_TEXT = (
    "name: restart\n"
    "match: {matchers: ['alertname=\"Down\"']}\n"
    "action: {type: docker.restart, params: {container: '{{ labels.container }}'},"
    " allow_targets: ['web-*']}\n"
)


def _held(n: int, **labels: str) -> Alert:
    return alert(n, **labels)._replace(
        annotations={"summary": f"web-{n} is down", "runbook": "https://runbooks/004"},
        generator_url=f"http://prometheus/graph?g0.expr=up{n}",
    )


async def _decided(store: Store, alerts: list[Alert], pol: Policy, gates: Gates) -> Decided:
    async with store.transaction() as tx:
        return await decide(alerts, [pol], tx, datetime.now(UTC), gates, SETTINGS)


async def test_held_episodes_are_the_unresolved_ones_a_gate_holds_with_their_alert(
    opener: Opener,
) -> None:
    store = await opener()
    pol = policy()
    [other] = parse_policies(_POLICY_TEXT.replace("name: restart", "name: other"), "t.yaml")[0]
    await _decided(store, [_held(1), _held(2), _held(3)], pol, Gates(paused=True))
    await _decided(store, [_held(4)], other, Gates(tripped=frozenset({"other"})))
    await _decided(store, [_held(5)], pol, Gates())  # decided: nothing holds it
    await _decided(store, [_held(2)._replace(status="resolved")], pol, Gates(paused=True))
    held = await store.held_episodes()
    assert [(name, a.episode) for name, a in held] == [
        ("restart", "am:fp1:1"),
        ("restart", "am:fp3:1"),
        ("other", "am:fp4:1"),
    ]
    assert held[0][1] == _held(1)  # labels, annotations, generator URL, startsAt: all of it
    assert [a.episode for _, a in await store.held_episodes("other")] == ["am:fp4:1"]


async def test_a_held_episode_is_decided_again_once_however_many_replicas_try(
    opener: Opener,
) -> None:
    first, second = await opener(), await opener()
    pol = policy()
    await _decided(first, [_held(1)], pol, Gates(paused=True))
    reopen = {("restart", "am:fp1:1")}

    async def again(store: Store) -> Decided:
        for _ in range(40):  # a busy SQLite file or a lock timeout: retried, as a 503 is
            try:
                async with store.transaction() as tx:
                    return await decide(
                        [_held(1)], [pol], tx, datetime.now(UTC), Gates(), SETTINGS, reopen=reopen
                    )
            except StoreError:
                await asyncio.sleep(0.05)
        pytest.fail("the store stayed unavailable")

    results = await asyncio.gather(*(again((first, second)[n % 2]) for n in range(10)))
    verdicts = [v for r in results for v in r.verdicts]
    assert [(v.target, v.outcome) for v in verdicts] == [("web-1", EXECUTING)]
    assert [d.outcome for d in await first.decisions(10)] == ["executing", "paused"]
    assert await first.held_episodes() == []


# --- a version 8 store ----------------------------------------------------------------------

_UNDO_9_10_SQLITE = (
    "DROP INDEX claims_held; ALTER TABLE actions DROP COLUMN reached; "
    "ALTER TABLE episodes DROP COLUMN annotations; "
    "ALTER TABLE episodes DROP COLUMN generator_url; DROP TABLE action_counts; "
    "DROP TABLE operator_events; DROP INDEX decisions_policy; DROP INDEX decisions_outcome; "
    "DROP INDEX decisions_target; DROP INDEX decisions_time; "
)
_UNDO_9_10_POSTGRES = (
    "DROP INDEX claims_held; ALTER TABLE actions DROP COLUMN reached; "
    "ALTER TABLE episodes DROP COLUMN annotations; "
    "ALTER TABLE episodes DROP COLUMN generator_url; DROP TABLE action_counts; "
    "DROP TABLE operator_events; DROP INDEX decisions_policy; DROP INDEX decisions_outcome; "
    "DROP INDEX decisions_target; DROP INDEX decisions_time; "
)


async def _as_version_8(opener: Opener) -> None:
    """Take schemas 9 (audit) and 10's additions away again, counters as version 8 kept them (every action)."""
    if not opener.url:
        with sqlite3.connect(opener.path) as db:
            db.executescript(
                _UNDO_9_10_SQLITE + sqlite_schema.MIGRATIONS[8] + "; PRAGMA user_version = 8;"
            )
        return
    conn = await asyncpg.connect(opener.url)
    try:
        await conn.execute(_UNDO_9_10_POSTGRES + postgres_schema.MIGRATIONS[8])
        await conn.execute("UPDATE remediator_schema SET version = 8")
    finally:
        await conn.close()


async def test_a_version_8_store_counts_again_without_what_never_reached_its_target(
    opener: Opener, backend: str, tmp_path: Path
) -> None:
    store = await opener()
    ran, held, _never_started = [await _action(store, t) for t in ("web-1", "web-2", "web-3")]
    for action_id in (ran, held):
        assert await store.start_action(action_id, T0)
    assert await store.finish_action(ran, "executed", "restarted", T0)
    assert await store.finish_action(held, "paused", "paused at its turn", T0)
    await store.interrupt_stale(T0, None)
    await _decided(store, [_held(7)], policy(), Gates(paused=True))
    await store.close()
    await _as_version_8(opener)

    again = await opener()
    last, counts = await _budget(again, "web-1", "web-2", "web-3")
    assert (last, counts) == ({"web-1": T0}, [1, 1])
    # Recorded before annotations were kept: its next sighting decides it, not a resume.
    assert await again.held_episodes() == []
    await _decided(again, [_held(7)], policy(), Gates(paused=True))  # seen again, still held
    assert [a for _, a in await again.held_episodes()] == [_held(7)]
    if backend == "sqlite":
        with sqlite3.connect(opener.path) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    else:
        conn = await asyncpg.connect(opener.url)
        try:
            assert await conn.fetchval("SELECT version FROM remediator_schema") == SCHEMA_VERSION
        finally:
            await conn.close()
