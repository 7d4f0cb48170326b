"""The Store contract, run against both backends: SQLite and a real PostgreSQL.

Every test takes `store` (one store) or `pair` (two store objects on one database, as two
replicas have), parametrized over both backends, so neither can drift from the other.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from remediator import log
from remediator.core.alert import Alert
from remediator.core.approval import Approval, ApprovalRefused, ApprovalState
from remediator.core.audit import EventQuery, OperatorEvent
from remediator.core.dedup import Claim
from remediator.core.durations import parse_rate
from remediator.core.outcomes import EXECUTING, Outcome
from remediator.core.policy import Policy, parse_policies
from remediator.core.records import NewAction, NewDecision
from remediator.errors import StoreError
from remediator.pipeline import Decided, Gates, Settings, decide
from remediator.store import postgres_schema
from remediator.store import prune as prune_module
from remediator.store.postgres import PostgresStore
from remediator.store.roles.approvals import ApprovalConflictError
from remediator.store.roles.decisionlog import ClaimConflictError
from remediator.store.roles.store import SCHEMA_VERSION, Store
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
        await tx.put_claim("p", "e1", settled._replace(dedup_decision_id=3))

    async def overwrite() -> None:
        async with store.transaction() as tx:
            await tx.add_decision(decision(alert()))
            await tx.put_claim("p", "e1", Claim(9, "executed", False, "docker.restart", "web-1"))

    with pytest.raises(ClaimConflictError):
        await overwrite()
    async with store.transaction() as tx:
        assert await tx.claim("p", "e1") == settled._replace(dedup_decision_id=3)
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


@pytest.mark.parametrize("path", ["batch", "one by one"])
async def test_window_counts_are_exact_at_every_edge_of_the_minute_counters(
    store: Store, path: str
) -> None:
    """Counts read whole minutes from the counters and the edge minute from the rows: the
    sum is what a scan of the rows would say, for any `since`, however the rows came."""
    t0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    made = [  # (seconds after t0, policy, dry_run)
        (10, "p", False),
        (50, "p", True),
        (50.5, "q", False),
        (65, "p", False),
        (179.9, "q", True),
        (3600, "p", False),
    ]
    async with store.transaction() as tx:
        d = await tx.add_decision(decision(alert()))
        if path == "one by one":
            for seconds, policy, dry in made:
                when = t0 + timedelta(seconds=seconds)
                await tx.add_action(d, policy, "docker.restart", "w", {}, dry_run=dry, now=when)
        else:
            ids = await tx.reserve_ids(0, len(made))
            rows = [
                NewAction(
                    next(ids.actions),
                    d,
                    p,
                    "docker.restart",
                    "w",
                    {},
                    dry,
                    t0 + timedelta(seconds=s),
                )
                for s, p, dry in made
            ]
            await tx.write(Decided(actions=rows), t0)
    for since in (-1, 0, 10, 30, 50, 50.5, 59.999, 60, 64, 65, 120, 179.9, 180, 3599, 3600):
        moment = t0 + timedelta(seconds=since)
        for who in (None, "p", "q"):
            for kind in (None, True, False):
                expected = sum(
                    1 for s, p, dr in made if s > since and who in (None, p) and kind in (None, dr)
                )
                async with store.transaction() as tx:
                    got = await tx.count_actions(moment, policy=who, dry_run=kind)
                    capped = await tx.count_actions(moment, policy=who, dry_run=kind, limit=1)
                assert (got, capped) == (expected, min(expected, 1)), (since, who, kind)


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
        assert await tx.approval_params(request.id) == ({"container": "web-1"}, None)
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
        alert(n)._replace(labels={"alertname": "Down", "container": "web-1"}) for n in range(20)
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


# --- guarded state changes ------------------------------------------------------------------


async def test_an_action_is_started_finished_and_drained_only_by_its_owner(
    pair: tuple[Store, Store],
) -> None:
    owner, other = pair
    d, a = await _pending_action(owner)
    assert await other.start_action(a, utcnow()) is False  # another replica's action
    assert await other.interrupt_actions([a], utcnow(), "their drain") == []
    assert await owner.start_action(a, utcnow()) is True
    assert await other.finish_action(a, "executed", "not mine", utcnow()) is False
    assert await owner.finish_action(a, "failed", "exit 1", utcnow()) is True
    assert await owner.finish_action(a, "executed", "again", utcnow()) is False  # settled
    [record] = await other.decisions(10)
    assert (record.id, record.outcome, record.reason) == (d, "failed", "exit 1")


async def test_a_finish_after_another_replica_recorded_interrupted(
    pair: tuple[Store, Store],
) -> None:
    """Only the owner's own late result replaces `interrupted`; nobody else's, and nothing
    replaces a result once recorded."""
    owner, other = pair
    d, a = await _pending_action(owner)
    assert await owner.start_action(a, utcnow()) is True
    [found] = await other.interrupt_stale(utcnow(), None)  # owner's lease lapsed, say
    assert found.action_id == a
    assert await other.finish_action(a, "executed", "a stranger's result", utcnow()) is False
    [record] = await owner.decisions(10)
    assert record.outcome == "interrupted"
    # The one exception (README "A replica that dies mid-action"): the owner ran it, so its
    # real result is what happened.
    assert await owner.finish_action(a, "executed", "restarted in 2s", utcnow()) is True
    [record] = await other.decisions(10)
    assert (record.id, record.outcome, record.reason) == (d, "executed", "restarted in 2s")
    assert await owner.finish_action(a, "failed", "late duplicate", utcnow()) is False
    assert await other.interrupt_stale(utcnow(), None) == []


async def test_an_action_interrupted_before_it_started_takes_no_result(store: Store) -> None:
    _, a = await _pending_action(store)
    [found] = await store.interrupt_actions([a], utcnow(), "drain timed out")
    assert found.action_id == a
    assert await store.start_action(a, utcnow()) is False
    assert await store.finish_action(a, "executed", "never ran", utcnow()) is False
    [record] = await store.decisions(10)
    assert (record.outcome, record.reason) == ("interrupted", "drain timed out")


async def test_an_approval_changes_only_while_pending(store: Store) -> None:
    async with store.transaction() as tx:
        d = await tx.add_decision(decision(alert(), "awaiting_approval"))
        request = replace(approval(d), required=2)
        await tx.add_approval(request, "am:fp1:1", {})
        one = replace(request, approved_by=("U1",))
        await tx.save_approval(one)  # one of two approvers: still pending
        await tx.save_approval(replace(one, state=ApprovalState.DENIED, decided_by="U2"))

    async def late(state: ApprovalState, approval_id: str = request.id) -> None:
        async with store.transaction() as tx:
            await tx.add_decision(decision(alert(2)))
            await tx.save_approval(replace(request, id=approval_id, state=state, decided_by="U9"))

    for state in (ApprovalState.APPROVED, ApprovalState.EXPIRED, ApprovalState.PENDING):
        with pytest.raises(ApprovalConflictError, match="is already denied") as caught:
            await late(state)
        assert isinstance(caught.value, StoreError)
        assert isinstance(caught.value, ApprovalRefused) and caught.value.conflict  # API: 409
    with pytest.raises(ApprovalConflictError, match="does not exist"):
        await late(ApprovalState.APPROVED, "no-such-id")
    stored = await store.approval(request.id)
    assert stored is not None
    assert (stored.state, stored.approved_by, stored.decided_by) == (
        ApprovalState.DENIED,
        ("U1",),
        "U2",
    )
    assert [r.id for r in await store.decisions(10)] == [d]  # the refused ones rolled back


async def test_an_outcome_changes_only_while_it_may(store: Store) -> None:
    async with store.transaction() as tx:
        waiting = await tx.add_decision(decision(alert(1), "awaiting_approval"))
        held = await tx.add_decision(decision(alert(2), "paused"))
        settled = await tx.add_decision(decision(alert(3), "executed"))
        assert await tx.set_outcome(waiting, "denied", "denied by U1") is True
        assert await tx.set_outcome(waiting, "executing", "a late approval") is False
        assert await tx.set_outcome(held, "condition_not_met", "re-decided") is True
        assert await tx.set_outcome(held, "executing", "approved") is True  # no action yet
        assert await tx.set_outcome(settled, "failed", "rewritten") is False
        assert await tx.set_outcome(10**9, "failed", "unknown") is False
    d, a = await _pending_action(store)
    async with store.transaction() as tx:  # executing with an unfinished action: the runner's
        assert await tx.set_outcome(d, "expired", "stale writer") is False
    assert await store.start_action(a, utcnow()) is True
    assert await store.finish_action(a, "executed", "ok", utcnow()) is True
    async with store.transaction() as tx:
        assert await tx.set_outcome(d, "failed", "stale writer") is False
        assert await tx.set_outcome(held, "dry_run", "approved; dry run") is True
    outcomes = {r.id: (r.outcome, r.reason) for r in await store.decisions(10)}
    assert outcomes == {
        waiting: ("denied", "denied by U1"),
        held: ("dry_run", "approved; dry run"),
        settled: ("executed", "r"),
        d: ("executed", "ok"),
    }


# --- reasons are stored redacted ------------------------------------------------------------

SECRET = "s3cr3t-t0ken-9f8e7d"
LEAKY = f"POST https://deploy:hunter2@ci.example/rollback?token={SECRET} answered 500"
CLEAN = "POST https://***@ci.example/rollback?token=*** answered 500"


@pytest.fixture
def secrets_registered() -> Iterator[None]:
    log.register_secrets([SECRET])
    try:
        yield
    finally:
        log.register_secrets([])


@pytest.mark.usefixtures("secrets_registered")
async def test_every_reason_and_detail_is_stored_redacted(store: Store) -> None:
    leaky_alert = alert(9)._replace(annotations={"summary": LEAKY})
    async with store.transaction() as tx:
        first = await tx.add_decision(decision(alert(1))._replace(reason=LEAKY))
        second = await tx.add_decision(decision(alert(2), "awaiting_approval"))
        assert await tx.set_outcome(second, "denied", LEAKY)
        request = approval(second)
        await tx.add_approval(request, "am:fp2:1", {}, {"summary": LEAKY, "labels": [LEAKY]})
        third = await tx.add_decision(decision(leaky_alert, "awaiting_approval"))
    finished_decision, finished = await _pending_action(store)
    await store.start_action(finished, utcnow())
    assert await store.finish_action(finished, "failed", LEAKY, utcnow())
    drained_decision, drained = await _pending_action(store)
    [interrupted] = await store.interrupt_actions([drained], utcnow(), LEAKY)
    assert interrupted.reason == CLEAN  # what the log and metrics get, too
    await store.add_approval_event(request.id, "U9", "refused", LEAKY, utcnow())
    reasons = {r.id: r.reason for r in await store.decisions(10)}
    assert reasons[first] == reasons[second] == CLEAN
    assert reasons[finished_decision] == reasons[drained_decision] == CLEAN
    assert reasons[third] == "r"
    [event] = await store.approval_events(request.id)
    assert event["detail"] == CLEAN
    assert await store.approval_context(request.id) == {"summary": CLEAN, "labels": [CLEAN]}
    everything = json.dumps(
        [r.to_api() for r in await store.decisions(10)] + [event], default=str
    ) + json.dumps(await store.approval_context(request.id))
    assert SECRET not in everything and "hunter2" not in everything


# --- retention ------------------------------------------------------------------------------

DAY = timedelta(days=1)


def _at(a: Alert, when: datetime, outcome: str = "executed", **kw: object) -> NewDecision:
    return decision(a, outcome)._replace(time=when, **kw)  # type: ignore[arg-type]


async def _decided(
    store: Store, a: Alert, when: datetime, outcome: str = "executed", policy: str = "p"
) -> int:
    """An episode seen at `when` and decided then, with its claim, as the pipeline writes it."""
    async with store.transaction() as tx:
        await tx.note_episode(a, when)
        d = await tx.add_decision(_at(a, when, outcome)._replace(policy=policy))
        await tx.put_claim(policy, a.episode, Claim(d, outcome, False, "docker.restart", "web-1"))
    return d


async def _claimed(store: Store, a: Alert, policy: str = "p") -> Claim | None:
    async with store.transaction() as tx:
        return await tx.claim(policy, a.episode)


async def test_prune_deletes_old_history_but_never_what_is_pending_or_needed(
    store: Store,
) -> None:
    now = utcnow()
    old, recent, before = now - 60 * DAY, now - DAY, now - 30 * DAY
    # Old and settled: an executed action with its approval, events and claim. All of it goes.
    gone_alert = alert(1)
    gone = await _decided(store, gone_alert, old, "executed")
    async with store.transaction() as tx:
        action = await tx.add_action(
            gone, "p", "docker.restart", "web-1", {}, dry_run=False, now=old
        )
        done = replace(approval(gone), requested_at=old, expires_at=old + DAY)
        await tx.add_approval(done, gone_alert.episode, {})
        await tx.save_approval(replace(done, state=ApprovalState.APPROVED, decided_by="U1"))
    await store.start_action(action, old)
    await store.finish_action(action, "executed", "ok", old)
    await store.add_approval_event(done.id, "U1", "approved", "", old)
    await store.add_approval_event(done.id, "U9", "refused", "not an approver", old)
    # The operator-events journal: an old act goes, yesterday's stays.
    await store.add_operator_event(OperatorEvent(old, "api:alice", "pause"))
    await store.add_operator_event(OperatorEvent(recent, "api:bob", "resume"))
    # A long-firing alert: first decided 60 days ago, re-sent by Alertmanager yesterday.
    firing = alert(2)
    first = await _decided(store, firing, old)
    async with store.transaction() as tx:
        repeat = await tx.add_decision(_at(firing, old + timedelta(minutes=5), "deduplicated"))
        await tx.put_claim(
            "p", firing.episode, Claim(first, "executed", False, "docker.restart", "web-1", repeat)
        )
        await tx.note_episode(firing, recent)
    # Another, whose re-sends were answered from memory and only counted.
    counted = alert(3)
    counted_first = await _decided(store, counted, old)
    await store.add_repeats({counted_first: 40}, recent)
    # Old but still waiting for a human, and old but still unfinished.
    waiting_alert = alert(4)
    waiting = await _decided(store, waiting_alert, old, "awaiting_approval")
    async with store.transaction() as tx:
        pending = replace(approval(waiting), requested_at=old, expires_at=now + DAY)
        await tx.add_approval(pending, waiting_alert.episode, {})
    running_alert = alert(5)
    running = await _decided(store, running_alert, old, EXECUTING)
    async with store.transaction() as tx:
        unfinished = await tx.add_action(
            running, "p", "docker.restart", "web-5", {}, dry_run=False, now=old
        )
    # Recent: untouched.
    fresh_alert = alert(6)
    fresh = await _decided(store, fresh_alert, recent)
    # Datadog cycles: one group unseen for the window goes, one seen yesterday stays.
    async with store.transaction() as tx:
        for group, when in (("dd:old", old), ("dd:live", recent)):
            for cycle in ("start", "end", "start"):
                episode = await tx.episode_cycle(group, cycle)
            await tx.note_episode(alert(7)._replace(episode=episode), when)

    counts = await store.prune(before)

    assert counts == {
        "claims": 1,
        "decisions": 1,
        "actions": 1,
        "approvals": 1,
        "approval_events": 2,
        "operator_events": 1,
        "episodes": 2,  # gone_alert's and dd:old:2
        "cycles": 1,
    }
    kept = {r.id for r in await store.decisions(100)}
    assert kept == {first, repeat, counted_first, waiting, running, fresh}
    assert await _claimed(store, gone_alert) is None
    for needed in (firing, counted, waiting_alert, running_alert, fresh_alert):
        assert await _claimed(store, needed) is not None
    assert await store.approval(done.id) is None
    assert await store.approval_events(done.id) == []
    [kept_act] = await store.operator_events(EventQuery())
    assert (kept_act.who, kept_act.act) == ("api:bob", "resume")
    assert await store.approval(pending.id) == pending
    assert await store.prune(before) == dict.fromkeys(counts, 0)  # nothing more to do
    assert await store.start_action(unfinished, now) is True  # still there, still pending
    async with store.transaction() as tx:
        assert await tx.episode_cycle("dd:live", "repeat") == "dd:live:2"
        assert await tx.episode_cycle("dd:old", "repeat") == "dd:old:1"  # numbered afresh


@pytest.mark.parametrize(
    ("batch", "scan", "transactions"),
    [
        # At most two deleted per batch: claims, decisions and episodes take 2+2+2+1 and a
        # last look that finds no rows left; every other step only that look.
        (2, 2000, 3 * 5 + 5),
        # At most three rows looked at per batch (eight rows: the seven old and a fresh
        # one): 3+3+2 and the last look, likewise.
        (500, 3, 3 * 4 + 5),
    ],
)
async def test_prune_works_in_short_bounded_batches(
    store: Store, monkeypatch: pytest.MonkeyPatch, batch: int, scan: int, transactions: int
) -> None:
    now = utcnow()
    old = now - 60 * DAY
    for n in range(7):
        await _decided(store, alert(n), old)
    fresh = await _decided(store, alert(99), now)
    monkeypatch.setattr(prune_module, "PRUNE_BATCH", batch)
    monkeypatch.setattr(prune_module, "PRUNE_SCAN", scan)
    seen = 0
    real = store.transaction

    def counting(*, commit: bool = True) -> Any:
        nonlocal seen
        seen += 1
        return real(commit=commit)

    monkeypatch.setattr(store, "transaction", counting)
    counts = await store.prune(now - 30 * DAY)
    assert (counts["claims"], counts["decisions"], counts["episodes"]) == (7, 7, 7)
    assert [d.id for d in await store.decisions(10)] == [fresh]
    # Each batch is its own transaction, so the writer (or the decision lock) is let go
    # between them, and none looks at more rows than PRUNE_SCAN or deletes more than
    # PRUNE_BATCH.
    assert seen == transactions


async def test_a_postgres_v4_store_is_migrated_and_its_episodes_count_as_seen_now(
    postgres: Postgres,
) -> None:
    url = postgres.database()
    old = utcnow() - 60 * DAY
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(postgres_schema.SCHEMA)
        await conn.execute("INSERT INTO remediator_schema (version) VALUES (4)")
        await conn.execute(
            "INSERT INTO episodes (episode, source, fingerprint, alertname, labels, starts_at, "
            "first_seen) VALUES ('am:fp1:1', 'alertmanager', 'fp1', 'Down', '{}', $1, $1)",
            old,
        )
        await conn.execute(
            "INSERT INTO claims VALUES ('p', 'am:fp1:1', 1, 'executed', false, 'x', 'web-1')"
        )
    finally:
        await conn.close()
    store = PostgresStore(url)
    await store.open()
    try:
        # Its re-sends before the upgrade were never stamped: it keeps its claim a whole
        # window from the upgrade instead of losing it at the first prune.
        assert (await store.prune(utcnow() - 30 * DAY))["claims"] == 0
        assert await _claimed(store, alert(1)) is not None
    finally:
        await store.close()
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT version FROM remediator_schema") == SCHEMA_VERSION
        assert await conn.fetchval("SELECT last_seen FROM episodes") > utcnow() - DAY
    finally:
        await conn.close()
