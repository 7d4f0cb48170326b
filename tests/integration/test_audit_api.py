"""The audit API through the whole daemon on SQLite and PostgreSQL: each filter of
`GET /api/v1/decisions` against what the store holds, the `before` cursor, one decision in
full (`GET /api/v1/decisions/{id}`: its action, approval history and events), and the
operator-events journal (who approved, denied, paused, resumed and reset)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from remediator.core.audit import DecisionQuery
from remediator.store.audit import decision_page
from remediator.store.dialect import POSTGRES
from tests.fixtures.postgres import Postgres
from tests.fixtures.slack_api import SlackAPI
from tests.integration.conftest import (
    AM_TOKEN,
    API,
    PEOPLE,
    Harness,
    HarnessFactory,
    on_both_backends,
)
from tests.integration.test_guards_pipeline import Clock, alert, message, policy
from tests.integration.test_ladders import LADDER, Scripted, _executors, _settled
from tests.integration.test_slack_approvals import click, config, request_approval

pytestmark = on_both_backends

# Two policies (dry runs: no executor needed), so that policy, outcome and target differ.
TWO = (
    policy("restart-web", "dry_run: true, cooldown: 1h")
    + "---\n"
    + """
name: restart-worker
match: {matchers: ['alertname="WorkerDown"']}
action: {type: docker.restart, params: {container: "{{ labels.container }}"}, allow_targets: ["worker-*"]}
guards: {dry_run: true}
"""
)


def _worker(container: str, starts: str = "2026-11-22T10:00:00Z") -> dict[str, Any]:
    return alert(container, starts) | {
        "labels": {"alertname": "WorkerDown", "container": container}
    }


async def _history(h: Harness, clock: Clock) -> list[dict[str, Any]]:
    """Twenty-odd decisions a minute apart: dry runs, out of scope, repeats, cooldowns, for
    two policies and several targets. All of them, newest first."""
    for n in range(6):
        await h.post(message(alert(f"web-{n % 3}", f"2026-11-22T10:0{n}:00Z")))  # 3 cooldowns
        clock.advance(minutes=1)
        await h.post(message(_worker(f"worker-{n % 2}", f"2026-11-22T10:0{n}:00Z")))
        clock.advance(minutes=1)
        await h.post(message(alert(f"db-{n}")))  # out of scope
        clock.advance(minutes=1)
    await h.post(message(alert("web-0", "2026-11-22T10:00:00Z")))  # a repeat
    await h.daemon.intake.flush_repeats()
    status, body = await _get(h, "/api/v1/decisions?limit=1000")
    assert status == 200
    found: list[dict[str, Any]] = body["decisions"]
    assert {d["outcome"] for d in found} == {"dry_run", "out_of_scope", "cooldown", "deduplicated"}
    return found


async def _get(h: Harness, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    resp = await h.client.get(path, headers=headers)
    return resp.status, await resp.json()


async def _ids(h: Harness, query: str, limit: int = 1000) -> list[int]:
    status, body = await _get(h, f"/api/v1/decisions?limit={limit}&{query}")
    assert status == 200, body
    return [d["id"] for d in body["decisions"]]


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        ("policy=restart-worker", lambda d: d["policy"] == "restart-worker"),
        ("policy=restart-web", lambda d: d["policy"] == "restart-web"),
        ("policy=gone-policy", lambda d: False),
        ("outcome=cooldown", lambda d: d["outcome"] == "cooldown"),
        ("outcome=out_of_scope", lambda d: d["outcome"] == "out_of_scope"),
        ("outcome=deduplicated", lambda d: d["outcome"] == "deduplicated"),
        ("outcome=executed", lambda d: False),
        ("target=web-1", lambda d: d["target"] == "web-1"),
        ("target=worker-0", lambda d: d["target"] == "worker-0"),
        (
            "policy=restart-web&outcome=dry_run",
            lambda d: d["policy"] == "restart-web" and d["outcome"] == "dry_run",
        ),
        (
            "policy=restart-web&target=web-0",
            lambda d: d["policy"] == "restart-web" and d["target"] == "web-0",
        ),
    ],
)
async def test_each_filter_returns_exactly_the_matching_decisions_newest_first(
    harness: HarnessFactory, query: str, wanted: Any
) -> None:
    clock = Clock()
    h = await harness(TWO, clock=clock)
    everything = await _history(h, clock)
    expected = [d["id"] for d in everything if wanted(d)]
    assert await _ids(h, query) == expected
    assert expected == sorted(expected, reverse=True)


async def test_since_keeps_the_decisions_at_or_after_a_time(harness: HarnessFactory) -> None:
    clock = Clock()
    h = await harness(TWO, clock=clock)
    everything = await _history(h, clock)

    def since(moment: datetime) -> list[int]:
        return [d["id"] for d in everything if datetime.fromisoformat(d["time"]) >= moment]

    middle = everything[len(everything) // 2]
    cut = middle["time"]
    expected = since(datetime.fromisoformat(cut))
    assert middle["id"] in expected and 0 < len(expected) < len(everything)
    for written in (cut.replace("+", "%2B"), cut.replace("+00:00", "Z"), cut):
        # the last: `+00:00` unencoded in a query string arrives as a space (`+` decoded)
        assert await _ids(h, f"since={written}") == expected, written
    # The same instant in another zone.
    zoned = (clock.now - timedelta(minutes=10)).astimezone(timezone(timedelta(hours=-5)))
    assert await _ids(h, f"since={zoned.isoformat()}") == since(zoned)
    assert 0 < len(since(zoned)) < len(everything)
    # With another filter.
    workers = set(await _ids(h, "policy=restart-worker"))
    both = [i for i in expected if i in workers]
    assert both and await _ids(h, f"since={cut.replace('+', '%2B')}&policy=restart-worker") == both
    assert await _ids(h, "since=2099-01-01T00:00:00Z") == []


async def test_the_before_cursor_pages_through_every_decision_exactly_once(
    harness: HarnessFactory,
) -> None:
    clock = Clock()
    h = await harness(TWO, clock=clock)
    everything = await _history(h, clock)
    for query, expected in (
        ("", [d["id"] for d in everything]),
        ("&outcome=out_of_scope", [d["id"] for d in everything if d["outcome"] == "out_of_scope"]),
    ):
        paged: list[int] = []
        before = ""
        for _ in range(len(everything) + 1):
            page = await _ids(h, f"{query}{before}", limit=4)
            assert len(page) <= 4
            if not page:
                break
            paged += page
            before = f"&before={page[-1]}"
        assert paged == expected  # all of them, each once, newest first
    # a cursor is an id: the page after it, whether or not that decision matches the filters
    third = everything[2]["id"]
    assert await _ids(h, f"before={third}") == [d["id"] for d in everything[3:]]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("polcy=restart-web", "polcy"),
        ("state=executed", "state"),
        ("outcome=exploded", "outcome"),
        ("outcome=", "outcome"),
        ("since=yesterday", "since"),
        ("since=2026-11-22T10:00:00", "since"),  # RFC 3339 needs an offset
        ("since=2026-13-22T10:00:00Z", "since"),
        ("before=abc", "before"),
        ("before=0", "before"),
        ("before=-5", "before"),
        ("before=99999999999999999999999", "before"),
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("policy=a&policy=b", "policy"),
        ("target=", "target"),
        ("target=%00", "target"),
    ],
)
async def test_an_unknown_filter_or_a_malformed_value_is_400_naming_it(
    harness: HarnessFactory, query: str, param: str
) -> None:
    h = await harness(TWO)
    status, body = await _get(h, f"/api/v1/decisions?{query}")
    assert status == 400, body
    assert body["param"] == param and body["error"].startswith(f"{param}: ")


# 30,000 decisions a minute apart before the test's own (October 2026): each policy 1 in 400,
# target 1 in 700, outcome `interrupted` 1 in 100; then ANALYZE, so that each planner
# chooses as it would on a store with a history. A rare value is what a scan would look for
# through the whole history; for a common one PostgreSQL may rightly walk the primary key
# and stop at `limit` matches (limit / frequency rows, however long the history).
_SQLITE_HISTORY = """
BEGIN IMMEDIATE;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000)
INSERT INTO decisions (time, policy, source, alertname, fingerprint, episode, action, target,
  outcome, reason, repeats)
SELECT strftime('%Y-%m-%dT%H:%M:%S', '2026-10-01', '+' || i || ' minutes') || '.000000Z',
  'p' || (i % 400), 'alertmanager', 'A', 'fp', 'old:' || i, 'docker.restart', 'web-' || (i % 700),
  CASE WHEN i % 100 = 0 THEN 'interrupted' ELSE 'dry_run' END, '', 0 FROM n;
COMMIT;
ANALYZE;
"""
_PG_HISTORY = """
INSERT INTO decisions (time, policy, source, alertname, fingerprint, episode, action, target,
  outcome, reason, repeats)
SELECT timestamptz '2026-10-01 00:00:00+00' + i * interval '1 minute', 'p' || (i % 400),
  'alertmanager', 'A', 'fp', 'old:' || i, 'docker.restart', 'web-' || (i % 700),
  CASE WHEN i % 100 = 0 THEN 'interrupted' ELSE 'dry_run' END, '', 0
FROM generate_series(1, 30000) AS i;
ANALYZE decisions;
"""


def _write_sqlite_history(path: Path) -> None:
    with sqlite3.connect(path, timeout=30, isolation_level=None) as db:
        db.executescript(_SQLITE_HISTORY)


async def _plan(
    h: Harness, backend: str, server: Postgres | None, query: DecisionQuery
) -> list[str]:
    text, args = decision_page(h.daemon.store.dialect, query)  # type: ignore[attr-defined]
    if backend == "sqlite":

        def explain() -> list[str]:
            with sqlite3.connect(h.db_path, timeout=30) as db:
                rows = db.execute(f"EXPLAIN QUERY PLAN {text}", args).fetchall()
            return [str(row[3]) for row in rows]

        return await asyncio.to_thread(explain)
    assert server is not None
    conn = await asyncpg.connect(server.url(server.databases[-1]))
    try:
        rows = await conn.fetch(f"EXPLAIN {POSTGRES.sql(text)}", *args)
    finally:
        await conn.close()
    return [str(row[0]) for row in rows]


async def test_every_filter_is_an_index_range_on_both_backends(
    harness: HarnessFactory, store_backend: str, request: pytest.FixtureRequest
) -> None:
    clock = Clock()
    h = await harness(TWO, clock=clock)
    await _history(h, clock)
    server: Postgres | None = None
    if store_backend == "sqlite":
        # Beside the running daemon, whose loop is this one: in a thread, so that a write of
        # its that holds the lock can finish while BEGIN IMMEDIATE waits (busy timeout) for it.
        await asyncio.to_thread(_write_sqlite_history, h.db_path)
    else:
        server = request.getfixturevalue("postgres")
        assert server is not None
        conn = await asyncpg.connect(server.url(server.databases[-1]))
        try:
            await conn.execute(_PG_HISTORY)
        finally:
            await conn.close()
    since = clock.now - timedelta(minutes=5)
    queries = [
        DecisionQuery(policy="p7"),
        DecisionQuery(outcome="interrupted"),
        DecisionQuery(target="web-3"),
        DecisionQuery(since=since),
        DecisionQuery(policy="restart-web", since=since),
        DecisionQuery(outcome="interrupted", since=since),
        DecisionQuery(outcome="interrupted", before=20_000),
        DecisionQuery(before=20_000),
    ]
    for query in queries:
        plan = await _plan(h, store_backend, server, query)
        if store_backend == "sqlite":
            # SEARCH is an index range; SCAN (of the table or a whole index) is not.
            assert all(not line.startswith("SCAN") for line in plan), (query, plan)
            assert not any("TEMP B-TREE" in line for line in plan), (query, plan)
            continue
        # No table scan: each filter is an index condition (a sort, if any, is then of the
        # rows the index found, never of the history).
        assert not any("Seq Scan" in line for line in plan), (query, plan)
        for column in ("policy", "outcome", "target"):
            if getattr(query, column) is not None and query.since is None:
                assert any("Index Cond" in x and column in x for x in plan), (query, plan)
        if query.since is not None:
            assert any("Index Cond" in x and "time" in x for x in plan), (query, plan)
    # And the pages are still right with the history there.
    assert len(await _ids(h, "outcome=interrupted")) == 300
    assert len(await _ids(h, "policy=p7", limit=10_000)) == 75


async def test_one_ladder_step_in_full_with_its_action_and_result(
    harness: HarnessFactory,
) -> None:
    restart, recreate, notify = Scripted(False), Scripted(True), Scripted()
    h = await harness(LADDER, executors=_executors(restart, recreate, notify))
    await h.post(message(alert("web-1")))
    first, second = await _settled(h, 2)
    status, detail = await _get(h, f"/api/v1/decisions/{second['id']}")
    assert status == 200, detail
    assert (detail["id"], detail["step"], detail["outcome"]) == (second["id"], 2, "executed")
    assert detail["policy"] == "web-down" and detail["target"] == "web-1"
    action = detail["action"]
    assert (action["type"], action["target"], action["step"]) == ("docker.recreate", "web-1", 2)
    assert action["state"] == "executed" and action["reason"] == "docker.recreate web-1: verified"
    assert action["params"] == {"container": "web-1"} and action["dry_run"] is False
    assert action["started_at"] <= action["finished_at"]
    assert {"result", "verify", "created_at", "id"} <= set(action)
    assert detail["approval"] is None
    events = [(e["who"], e["event"]) for e in detail["events"]]
    assert events == [
        ("remediator", "decided"),
        ("remediator", "action_started"),
        ("remediator", "action_finished"),
    ]
    assert detail["events"][-1]["detail"] == "executed: docker.recreate web-1: verified"
    status, step_one = await _get(h, f"/api/v1/decisions/{first['id']}")
    assert (step_one["step"], step_one["action"]["state"]) == (1, "failed")
    assert step_one["action"]["reason"] == "docker.restart web-1: still down"


async def test_a_decision_that_took_no_action_shows_what_it_would_have_done(
    harness: HarnessFactory,
) -> None:
    h = await harness(TWO)
    [decision] = (await h.post(message(alert("db-1"))))[1]["decisions"]
    status, detail = await _get(h, f"/api/v1/decisions/{decision['id']}")
    assert status == 200 and detail["outcome"] == "out_of_scope"
    assert detail["action"]["type"] == "docker.restart" and detail["action"]["state"] is None
    assert [e["event"] for e in detail["events"]] == ["decided"]
    assert detail["events"][0]["detail"].startswith("out_of_scope: ")


async def test_unknown_and_malformed_decision_ids(harness: HarnessFactory) -> None:
    h = await harness(TWO)
    assert (await _get(h, "/api/v1/decisions/12345"))[0] == 404
    for bad in ("abc", "0", "-1", "1.5", "99999999999999999999999", "%C2%B2"):
        status, body = await _get(h, f"/api/v1/decisions/{bad}")
        assert (status, body["param"]) == (400, "id"), bad


TWO_PERSON = policy(
    "restart-web",
    "approval: always, approvers: ['api:alice', 'api:bob'], approvals_required: 2",
)


async def test_an_approved_decision_keeps_its_whole_history(harness: HarnessFactory) -> None:
    restart = Scripted(True)
    h = await harness(TWO_PERSON, executors={"docker.restart": restart})
    [decision] = (await h.post(message(alert("web-1"))))[1]["decisions"]
    approval = decision["approval_id"]
    path = f"/api/v1/approvals/{approval}/approve"
    assert (await h.api(path, {"by": "looked at the graphs"}, who="alice"))[0] == 200
    assert (await h.api(path, {"by": "agreed"}, who="bob"))[0] == 200
    await h.wait_outcome(decision["id"], {"executed"})
    status, detail = await _get(h, f"/api/v1/decisions/{decision['id']}")
    assert status == 200
    shown = detail["approval"]
    assert (shown["id"], shown["state"], shown["decided_by"]) == (approval, "approved", "api:bob")
    assert shown["approved_by"] == ["api:alice", "api:bob"]
    history = [(e["who"], e["event"], e["detail"]) for e in shown["history"]]
    assert history == [
        ("api:alice", "approved", "looked at the graphs"),
        ("api:bob", "approved", "agreed"),
    ]
    assert [(e["who"], e["event"]) for e in detail["events"]] == [
        ("remediator", "decided"),
        ("api:alice", "approved"),
        ("api:bob", "approved"),
        ("remediator", "action_started"),
        ("remediator", "action_finished"),
    ]
    assert detail["events"][0]["detail"] == "awaiting_approval"
    assert detail["action"]["state"] == "executed" and restart.calls == [(None, "web-1")]
    # The journal has both acts, each naming what it changed.
    status, body = await _get(h, "/api/v1/operator-events?act=approve")
    assert status == 200
    acts = [(e["who"], e["decision_id"], e["approval_id"], e["detail"]) for e in body["events"]]
    assert acts == [
        ("api:bob", decision["id"], approval, "agreed"),
        ("api:alice", decision["id"], approval, "looked at the graphs"),
    ]


async def test_a_denied_decision_records_its_denier(harness: HarnessFactory) -> None:
    restart = Scripted(True)
    h = await harness(TWO_PERSON, executors={"docker.restart": restart})
    [decision] = (await h.post(message(alert("web-1"))))[1]["decisions"]
    approval = decision["approval_id"]
    refused, _ = await h.api(f"/api/v1/approvals/{approval}/deny", {"by": "x"}, who="mallory")
    assert refused == 403  # not an approver: changes nothing, but is kept in the history
    assert (await h.api(f"/api/v1/approvals/{approval}/approve", {}, who="alice"))[0] == 200
    status, _ = await h.api(f"/api/v1/approvals/{approval}/deny", {"by": "not now"}, who="bob")
    assert status == 200
    status, detail = await _get(h, f"/api/v1/decisions/{decision['id']}")
    assert status == 200 and detail["outcome"] == "denied"
    shown = detail["approval"]
    assert (shown["state"], shown["decided_by"], shown["approved_by"]) == (
        "denied",
        "api:bob",
        ["api:alice"],
    )
    assert [(e["who"], e["event"], e["detail"]) for e in shown["history"]] == [
        ("api:mallory", "refused", "api:mallory is not an approver of policy restart-web"),
        ("api:alice", "approved", ""),
        ("api:bob", "denied", "not now"),
    ]
    assert detail["action"]["state"] is None and restart.calls == []
    status, body = await _get(h, "/api/v1/operator-events?who=api:bob")
    assert [(e["act"], e["decision_id"]) for e in body["events"]] == [("deny", decision["id"])]


async def test_expiry_and_cancellation_are_in_the_history_as_remediator(
    harness: HarnessFactory,
) -> None:
    clock = Clock()
    h = await harness(TWO_PERSON, "limits: {approval_ttl: 5m}\n", clock=clock)
    [expiring] = (await h.post(message(alert("web-1"))))[1]["decisions"]
    [resolving] = (await h.post(message(alert("web-2"))))[1]["decisions"]
    await h.post(message(alert("web-2", status="resolved")))
    clock.advance(minutes=6)
    await h.daemon.approvals.expire_approvals()
    for decision, event in ((expiring, "expired"), (resolving, "cancelled")):
        detail = (await _get(h, f"/api/v1/decisions/{decision['id']}"))[1]
        assert detail["outcome"] == event
        [entry] = detail["approval"]["history"]
        assert (entry["who"], entry["event"]) == ("remediator", event)
    # Nobody acted: the operators' journal stays empty.
    assert (await _get(h, "/api/v1/operator-events"))[1]["events"] == []


async def test_pause_resume_and_reset_record_who_did_them(harness: HarnessFactory) -> None:
    clock = Clock()
    h = await harness(TWO, clock=clock)
    alice = {"Authorization": f"Bearer {PEOPLE['alice']}"}
    bob = {"Authorization": f"Bearer {PEOPLE['bob']}"}
    assert (await h.api("/api/v1/pause", headers=alice)) == (
        200,
        {"paused": True, "by": "api:alice"},
    )
    clock.advance(minutes=1)
    assert (await h.api("/api/v1/resume", headers=bob))[1]["by"] == "api:bob"
    clock.advance(minutes=1)
    status, answer = await h.api("/api/v1/policies/restart-worker/reset", headers=alice)
    assert (status, answer["by"]) == (200, "api:alice")
    assert (await h.api("/api/v1/policies/nope/reset", headers=alice))[0] == 404
    assert (await h.api("/api/v1/pause", headers={"Authorization": "Bearer nope"}))[0] == 401
    status, body = await _get(h, "/api/v1/operator-events")
    assert status == 200
    journal = [(e["who"], e["act"], e["policy"]) for e in body["events"]]
    assert journal == [
        ("api:alice", "reset", "restart-worker"),
        ("api:bob", "resume", None),
        ("api:alice", "pause", None),
    ]  # newest first; a refused or failed act is not one
    times = [e["time"] for e in body["events"]]
    assert times == sorted(times, reverse=True) and len(set(times)) == 3
    assert [
        e["act"] for e in (await _get(h, "/api/v1/operator-events?who=api:alice"))[1]["events"]
    ] == ["reset", "pause"]
    assert [
        e["who"] for e in (await _get(h, "/api/v1/operator-events?act=resume"))[1]["events"]
    ] == ["api:bob"]
    first = body["events"][-1]["id"]
    paged = (await _get(h, f"/api/v1/operator-events?before={body['events'][0]['id']}&limit=1"))[1]
    assert [e["act"] for e in paged["events"]] == ["resume"]
    assert (await _get(h, f"/api/v1/operator-events?before={first}"))[1]["events"] == []
    status, body = await _get(h, "/api/v1/operator-events?act=explode")
    assert (status, body["param"]) == (400, "act")
    status, body = await _get(h, "/api/v1/operator-events?outcome=executed")
    assert (status, body["param"]) == (400, "outcome")


async def test_a_slack_click_is_recorded_under_the_slack_user(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    h = await harness(policy("restart-web", "approval: always"), config(slack_api))
    decision, posted = await request_approval(h, slack_api)
    assert await click(h, posted, "U222", "deny") == 200
    await h.wait_outcome(decision["id"], {"denied"})

    async def journal() -> list[dict[str, Any]]:
        return list((await _get(h, "/api/v1/operator-events", API))[1]["events"])

    entries = await journal()
    assert [(e["who"], e["act"], e["decision_id"]) for e in entries] == [
        ("U222", "deny", decision["id"])
    ]
    detail = (await _get(h, f"/api/v1/decisions/{decision['id']}", API))[1]
    assert [(e["who"], e["event"]) for e in detail["approval"]["history"]] == [("U222", "denied")]
    assert detail["approval"]["decided_by"] == "U222"


async def test_read_auth_covers_the_new_endpoints(harness: HarnessFactory) -> None:
    tokens = ", ".join(f"{name}: {token}" for name, token in PEOPLE.items())
    h = await harness(
        TWO,
        f"auth: {{alertmanager: {{bearer_token: {AM_TOKEN}}}, "
        f"api: {{tokens: {{{tokens}}}, read: true}}}}\n",
    )
    [decision] = (await h.post(message(alert("web-1"))))[1]["decisions"]
    alice = {"Authorization": f"Bearer {PEOPLE['alice']}"}
    for path in (
        "/api/v1/decisions?policy=restart-web",
        f"/api/v1/decisions/{decision['id']}",
        "/api/v1/operator-events",
    ):
        assert (await h.client.get(path)).status == 401, path
        assert (await h.client.get(path, headers={"Authorization": "Bearer no"})).status == 401
        assert (await h.client.get(path, headers=alice)).status == 200, path
