"""The Store contract, run against both backends: SQLite and a real PostgreSQL.

Every test takes `store` (one store) or `pair` (two store objects on one database, as two
replicas have), parametrized over both backends, so neither can drift from the other.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from remediator.core.alert import Alert
from remediator.core.approval import Approval, ApprovalState
from remediator.core.dedup import Claim
from remediator.core.durations import parse_rate
from remediator.core.outcomes import EXECUTING, Outcome
from remediator.core.policy import Policy, parse_policies
from remediator.errors import StoreError
from remediator.pipeline import Decided, Gates, Settings, decide
from remediator.store.base import SCHEMA_VERSION, ClaimConflictError, NewDecision, Store
from remediator.store.postgres import PostgresStore
from remediator.store.sqlite import SqliteStore
from tests.fixtures.postgres import Postgres
from tests.fixtures.procs import free_port

BACKENDS = ["sqlite", "postgresql"]
Opener = Callable[[], Awaitable[Store]]


def utcnow() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(params=BACKENDS)
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens store objects on one fresh database of the backend; closes them all after."""
    opened: list[Store] = []
    if request.param == "sqlite":
        path = str(tmp_path / "state.db")

        def make() -> Store:
            return SqliteStore(path, owner=f"replica-{len(opened)}")
    else:
        server: Postgres = request.getfixturevalue("postgres")
        url = server.database()

        def make() -> Store:
            return PostgresStore(url, owner=f"replica-{len(opened)}", max_size=20)

    async def open_one() -> Store:
        store = make()
        await store.open()
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        await store.close()


@pytest.fixture
async def store(opener: Opener) -> Store:
    return await opener()


@pytest.fixture
async def pair(opener: Opener) -> tuple[Store, Store]:
    return await opener(), await opener()


def alert(n: int = 1, *, status: str = "firing", **labels: str) -> Alert:
    return Alert(
        source="alertmanager",
        status=status,  # type: ignore[arg-type]  # the tests pass valid literals
        labels={"alertname": "Down", "container": f"web-{n}", **labels},
        annotations={},
        starts_at=datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=UTC),
        fingerprint=f"fp{n}",
        episode=f"am:fp{n}:1",
    )


def decision(a: Alert, outcome: str = "executed", policy: str = "p") -> NewDecision:
    return NewDecision(utcnow(), policy, a, "docker.restart", a.labels["container"], outcome, "r")


def policy(extra: str = "") -> Policy:
    doc = (
        "name: restart\n"
        "match: {matchers: ['alertname=\"Down\"']}\n"
        "action: {type: docker.restart, params: {container: '{{ labels.container }}'},"
        " allow_targets: ['web-*']}\n" + extra
    )
    policies, problems = parse_policies(doc, "t.yaml")
    assert not problems, problems
    return policies[0]


SETTINGS = Settings(global_rate=parse_rate("1000/1h"), approval_ttl=timedelta(minutes=15))


def approval(decision_id: int, *, expires_in: timedelta = timedelta(minutes=15)) -> Approval:
    now = utcnow()
    return Approval(
        id=f"ap-{decision_id}",
        decision_id=decision_id,
        policy="p",
        action="docker.restart",
        target="web-1",
        state=ApprovalState.PENDING,
        requested_at=now,
        expires_at=now + expires_in,
        required=1,
        approvers=("U1", "U2"),
    )


# --- schema ---------------------------------------------------------------------------------


async def test_replicas_opening_a_new_store_at_once_create_the_schema_once(opener: Opener) -> None:
    stores = await asyncio.gather(*(opener() for _ in range(4)))
    first, *_ = stores
    async with first.transaction() as tx:
        await tx.add_decision(decision(alert()))
    for other in stores:
        assert [d.outcome for d in await other.decisions(10)] == ["executed"]


async def test_data_survives_reopening(opener: Opener) -> None:
    store = await opener()
    async with store.transaction() as tx:
        decision_id = await tx.add_decision(decision(alert()))
    await store.close()
    again = await opener()
    [found] = await again.decisions(10)
    assert found.id == decision_id


async def test_a_postgres_schema_newer_than_the_code_is_refused_untouched(
    postgres: Postgres,
) -> None:
    url = postgres.database()
    store = PostgresStore(url)
    await store.open()
    async with store.transaction() as tx:
        await tx.conn.execute("UPDATE remediator_schema SET version = $1", SCHEMA_VERSION + 1)
        await tx.add_decision(decision(alert()))
    await store.close()
    newer = PostgresStore(url)
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        await newer.open()
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM decisions") == 1
        assert await conn.fetchval("SELECT version FROM remediator_schema") == SCHEMA_VERSION + 1
    finally:
        await conn.close()


async def test_an_unreachable_postgres_is_a_store_error_without_the_password() -> None:
    store = PostgresStore(f"postgresql://remediator:hunter2@127.0.0.1:{free_port()}/x")
    with pytest.raises(StoreError) as caught:
        await store.open()
    assert "hunter2" not in str(caught.value)
    assert "remediator:***@127.0.0.1" in str(caught.value)


# --- transactions and claims ----------------------------------------------------------------


async def test_a_transaction_sees_its_own_writes_and_commits_them(store: Store) -> None:
    claim = Claim(1, "executed", False, "docker.restart", "web-1")
    async with store.transaction() as tx:
        assert await tx.claim("p", "e1") is None
        await tx.put_claim("p", "e1", claim)
        assert await tx.claim("p", "e1") == claim
    async with store.transaction() as tx:
        assert await tx.claim("p", "e1") == claim
        assert await tx.claim("p", "other") is None
        assert await tx.claim("other", "e1") is None


async def test_a_failed_or_dry_transaction_leaves_nothing(store: Store) -> None:
    async with store.transaction(commit=False) as tx:
        await tx.add_decision(decision(alert()))
        await tx.put_claim("p", "e1", Claim(1, "executed", False, "docker.restart", "web-1"))

    async def fails() -> None:
        async with store.transaction() as tx:
            await tx.add_decision(decision(alert()))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fails()
    assert await store.decisions(10) == []
    async with store.transaction() as tx:
        assert await tx.claim("p", "e1") is None


async def test_a_provisional_claim_is_replaced_but_a_settled_one_never(store: Store) -> None:
    paused = Claim(1, "paused", True, "docker.restart", "web-1")
    settled = Claim(2, "executed", False, "docker.restart", "web-1")
    async with store.transaction() as tx:
        await tx.put_claim("p", "e1", paused)
        await tx.put_claim("p", "e1", settled)  # the pause lifted: decided afresh
        # The same decision may record its `deduplicated` record's id.
        await tx.put_claim("p", "e1", replace(settled, dedup_decision_id=3))

    async def overwrite() -> None:
        async with store.transaction() as tx:
            await tx.add_decision(decision(alert()))
            await tx.put_claim("p", "e1", Claim(9, "executed", False, "docker.restart", "web-1"))

    with pytest.raises(ClaimConflictError):
        await overwrite()
    async with store.transaction() as tx:
        assert await tx.claim("p", "e1") == replace(settled, dedup_decision_id=3)
    assert await store.decisions(10) == []  # the conflicting transaction rolled back whole


async def test_decisions_list_newest_first_with_outcomes_and_repeats(store: Store) -> None:
    async with store.transaction() as tx:
        first = await tx.add_decision(decision(alert(1)))
        second = await tx.add_decision(decision(alert(2), "awaiting_approval"))
        await tx.set_outcome(second, "denied", "denied by ana")
    await store.add_repeats({first: 3})
    await store.add_repeats({first: 2, second: 1})
    await store.add_repeats({})
    newest, oldest = await store.decisions(10)
    assert (newest.id, newest.outcome, newest.reason, newest.repeats) == (
        second,
        "denied",
        "denied by ana",
        1,
    )
    assert (oldest.id, oldest.repeats, oldest.fingerprint, oldest.target) == (
        first,
        5,
        "fp1",
        "web-1",
    )
    assert oldest.time.tzinfo is not None
    assert [d.id for d in await store.decisions(1)] == [second]


async def test_episodes_and_cycles(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.note_episode(alert(), utcnow())
        await tx.note_episode(alert(status="resolved"), utcnow())
        await tx.note_episode(alert(), utcnow())  # idempotent
        numbered = [
            await tx.episode_cycle("dd:1", cycle)
            for cycle in ("start", "repeat", "end", "end", "repeat", "start", "start")
        ]
    assert numbered == ["dd:1:1", "dd:1:1", "dd:1:1", "dd:1:1", "dd:1:1", "dd:1:2", "dd:1:2"]
    async with store.transaction() as tx:
        assert await tx.episode_cycle("dd:2", "end") == "dd:2:1"  # an end first: closed
        assert await tx.episode_cycle("dd:2", "start") == "dd:2:2"


# --- actions and limits ---------------------------------------------------------------------


async def test_limits_count_recorded_actions(store: Store) -> None:
    t0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    async with store.transaction() as tx:
        d = await tx.add_decision(decision(alert()))
        await tx.add_action(d, "p", "docker.restart", "web-1", {}, dry_run=False, now=t0)
        await tx.add_action(
            d, "p", "docker.restart", "web-1", {}, dry_run=True, now=t0 + timedelta(minutes=1)
        )
        await tx.add_action(
            d, "q", "docker.restart", "web-2", {}, dry_run=False, now=t0 + timedelta(minutes=2)
        )
        assert await tx.last_action_at("p", "web-1") == t0 + timedelta(minutes=1)
        assert await tx.last_action_at("p", "web-2") is None
        assert await tx.count_actions(t0 - timedelta(seconds=1), policy=None, dry_run=None) == 3
        assert await tx.count_actions(t0, policy=None, dry_run=None) == 2  # strictly after
        assert await tx.count_actions(t0 - timedelta(hours=1), policy="p", dry_run=None) == 2
        assert await tx.count_actions(t0 - timedelta(hours=1), policy=None, dry_run=False) == 2
        assert await tx.count_actions(t0 - timedelta(hours=1), policy="p", dry_run=True) == 1


async def _pending_action(store: Store) -> tuple[int, int]:
    async with store.transaction() as tx:
        d = await tx.add_decision(decision(alert(), EXECUTING))
        a = await tx.add_action(
            d, "p", "docker.restart", "web-1", {"container": "web-1"}, dry_run=False, now=utcnow()
        )
    return d, a


async def test_an_action_starts_once_and_its_result_is_its_decisions(store: Store) -> None:
    d, a = await _pending_action(store)
    assert await store.start_action(a, utcnow()) is True
    assert await store.start_action(a, utcnow()) is False  # already running
    await store.finish_action(a, "executed", "restarted in 1.2s", utcnow())
    [record] = await store.decisions(10)
    assert (record.id, record.outcome, record.reason) == (d, "executed", "restarted in 1.2s")
    assert await store.interrupt_stale(utcnow(), None) == []  # finished is never interrupted


async def test_a_dead_owners_actions_are_interrupted_and_never_start(opener: Opener) -> None:
    store = await opener()
    _, a = await _pending_action(store)
    found = await store.interrupt_stale(utcnow(), None)
    assert [(i.action_id, i.policy, i.type) for i in found] == [(a, "p", "docker.restart")]
    assert await store.start_action(a, utcnow()) is False
    [record] = await store.decisions(10)
    assert record.outcome == "interrupted" and "not re-run" in record.reason
    assert await store.interrupt_stale(utcnow(), None) == []  # recorded once


async def test_a_renewed_lease_holds_and_an_expired_one_is_interrupted(store: Store) -> None:
    _, held = await _pending_action(store)
    _, abandoned = await _pending_action(store)
    lease = timedelta(seconds=0.5)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    interrupted: list[int] = []
    while abandoned not in interrupted:  # a deadline, renewing `held` as its owner would
        assert loop.time() < deadline, "the abandoned action's lease never ran out"
        await store.heartbeat([held], utcnow())
        found = await store.interrupt_stale(utcnow(), lease)
        interrupted += [i.action_id for i in found]
        await asyncio.sleep(0.05)
    assert held not in interrupted
    assert await store.start_action(held, utcnow()) is True
    assert await store.start_action(abandoned, utcnow()) is False
    reasons = {d.outcome: d.reason for d in await store.decisions(10)}
    assert "replica-0 did not renew its lease for 0.5s" in reasons["interrupted"]


async def test_a_drain_interrupts_only_the_named_unfinished_actions(store: Store) -> None:
    _, running = await _pending_action(store)
    _, done = await _pending_action(store)
    _, other = await _pending_action(store)
    await store.start_action(running, utcnow())
    await store.start_action(done, utcnow())
    await store.finish_action(done, "executed", "ok", utcnow())
    found = await store.interrupt_actions([running, done], utcnow(), "drain timed out")
    assert [i.action_id for i in found] == [running]
    assert await store.start_action(other, utcnow()) is True  # not named: untouched


# --- approvals, switches --------------------------------------------------------------------


async def test_approvals_round_trip(store: Store) -> None:
    async with store.transaction() as tx:
        d = await tx.add_decision(decision(alert(), "awaiting_approval"))
        a = await tx.add_action(d, "p", "docker.restart", "web-1", {}, dry_run=False, now=utcnow())
        request = approval(d)
        await tx.add_approval(request, "am:fp1:1", {"container": "web-1"}, {"summary": "down"})
        expired = approval(d + 1000, expires_in=timedelta(seconds=-1))
        await tx.add_approval(expired, "am:fp2:1", {})
        assert await tx.approval(request.id) == request
        assert await tx.pending_approvals("am:fp1:1") == [request]
        assert await tx.approval_params(request.id) == {"container": "web-1"}
        assert await tx.expired_approvals(utcnow()) == [expired]
        await tx.save_approval(replace(expired, state=ApprovalState.EXPIRED))
    assert await store.approval(request.id) == request
    assert await store.approval("nope") is None
    assert [x.id for x in await store.approvals(pending_only=True)] == [request.id]
    assert len(await store.approvals(pending_only=False)) == 2
    assert await store.approval_context(request.id) == {"summary": "down"}
    assert await store.unannounced_approvals() == [request]
    assert await store.approval_message(request.id) is None
    await store.set_approval_message(request.id, "C1", "1700000000.000100")
    assert await store.approval_message(request.id) == ("C1", "1700000000.000100")
    assert await store.unannounced_approvals() == []
    assert await store.approval_for_action(a) == request
    now = utcnow()
    await store.add_approval_event(request.id, "U9", "refused", "not an approver", now)
    [event] = await store.approval_events(request.id)
    assert event == {
        "time": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "who": "U9",
        "event": "refused",
        "detail": "not an approver",
    }
    approved = replace(request, state=ApprovalState.APPROVED, approved_by=("U1",), decided_by="U1")
    async with store.transaction() as tx:
        await tx.save_approval(approved)
    assert await store.approval(request.id) == approved
    assert json.dumps(await store.approvals(pending_only=True), default=str) == "[]"


async def test_switches(store: Store) -> None:
    assert await store.get_flag("paused") is None
    await store.set_flag("paused", "1")
    await store.set_flag("tripped:a", "verify failed")
    await store.set_flag("tripped:b", "x")
    await store.set_flag("tripped:b", "y")
    await store.set_flag("tripped:a", None)
    assert await store.get_flag("paused") == "1"
    assert await store.flags("tripped:") == [("tripped:b", "y")]
    async with store.transaction() as tx:
        assert await tx.flags() == [("paused", "1"), ("tripped:b", "y")]


async def test_ping_and_a_closed_store(opener: Opener) -> None:
    store = await opener()
    await store.ping()
    await store.close()
    with pytest.raises(StoreError):
        await store.ping()
    with pytest.raises(StoreError):
        async with store.transaction():
            pass


# --- two replicas, one store ----------------------------------------------------------------


async def _decide(store: Store, alerts: list[Alert], pol: Policy) -> Decided:
    for _ in range(20):  # a busy SQLite file or a lock timeout is a 503: the sender retries
        try:
            async with store.transaction() as tx:
                return await decide(alerts, [pol], tx, utcnow(), Gates(), SETTINGS)
        except StoreError:
            await asyncio.sleep(0.05)
    pytest.fail("the store stayed unavailable")


def _executing(results: list[Decided]) -> list[str]:
    return [v.target for r in results for v in r.verdicts if v.outcome == EXECUTING]


async def test_one_episode_sent_to_two_replicas_at_once_is_claimed_once(
    pair: tuple[Store, Store],
) -> None:
    pol = policy()
    same = [alert(1)]
    results = await asyncio.gather(*(_decide(pair[i % 2], same, pol) for i in range(40)))
    assert _executing(results) == ["web-1"]
    outcomes = Counter(str(v.outcome) for r in results for v in r.verdicts)
    assert outcomes == {EXECUTING: 1, Outcome.DEDUPLICATED: 39}
    for store in pair:
        async with store.transaction() as tx:
            assert (
                await tx.count_actions(utcnow() - timedelta(hours=1), policy=None, dry_run=None)
                == 1
            )


async def test_a_rate_limit_of_two_holds_across_replicas(pair: tuple[Store, Store]) -> None:
    pol = policy("guards: {rate_limit: 2/1h}\n")
    results = await asyncio.gather(*(_decide(pair[n % 2], [alert(n)], pol) for n in range(30)))
    assert len(_executing(results)) == 2
    outcomes = [v.outcome for r in results for v in r.verdicts]
    assert outcomes.count(Outcome.RATE_LIMITED) == 28


async def test_a_cooldown_of_one_target_holds_across_replicas(pair: tuple[Store, Store]) -> None:
    pol = policy("guards: {cooldown: 1h}\n")
    # Different episodes (alerts), one target: one action, the rest in cooldown.
    alerts = [
        replace(alert(n), labels={"alertname": "Down", "container": "web-1"}) for n in range(20)
    ]
    results = await asyncio.gather(*(_decide(pair[n % 2], [a], pol) for n, a in enumerate(alerts)))
    assert _executing(results) == ["web-1"]
    outcomes = [v.outcome for r in results for v in r.verdicts]
    assert outcomes.count(Outcome.COOLDOWN) == 19


async def test_a_pause_through_one_replica_holds_the_other(pair: tuple[Store, Store]) -> None:
    first, second = pair
    await first.set_flag("paused", "1")
    async with second.transaction() as tx:
        assert ("paused", "1") in await tx.flags()


# --- PostgreSQL down and back ---------------------------------------------------------------


async def test_postgres_down_is_a_store_error_and_back_up_recovers_by_itself(
    postgres_factory: Callable[[], Postgres],
) -> None:
    server = postgres_factory()
    store = PostgresStore(server.database(), max_size=4)
    await store.open()
    try:
        pol = policy()
        await _decide(store, [alert(1)], pol)
        await asyncio.to_thread(server.stop)
        with pytest.raises(StoreError, match="state store unavailable"):
            await store.ping()
        with pytest.raises(StoreError, match="state store unavailable"):
            async with store.transaction() as tx:
                await decide([alert(2)], [pol], tx, utcnow(), Gates(), SETTINGS)
        with pytest.raises(StoreError):
            await store.decisions(10)
        await asyncio.to_thread(server.start)
        await store.ping()  # the pool reconnects: no reopen, no restart
        decided = await _decide(store, [alert(2)], pol)
        assert _executing([decided]) == ["web-2"]
        assert len(await store.decisions(10)) == 2  # alert 2 of the outage never committed
    finally:
        await store.close()
