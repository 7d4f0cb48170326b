"""POST /-/reload against the daemon's web app in-process, over a real store: a valid change
applies to the next webhook (and reports what needs a restart), an invalid one is refused with
every problem while the old set goes on deciding, a webhook in flight keeps the set it started
with, and the endpoint's auth and body rules hold."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from remediator.checks.prometheus import PrometheusChecker
from remediator.core.audit import EventQuery, OperatorEvent
from tests.fixtures.held_prometheus import HeldPrometheus
from tests.integration.conftest import API, Harness, HarnessFactory
from tests.integration.test_webhook_http import body

GUARDED = """
match: {matchers: ['alertname="ContainerDown"']}
action:
  type: docker.restart
  params: {container: "{{ labels.container }}"}
  allow_targets: ["web-*"]
guards: {dry_run: true%s}
"""


def policy(name: str, guards: str = "", extra: str = "") -> str:
    return f"---\nname: {name}" + GUARDED % guards + extra


def write_policies(h: Harness, text: str) -> None:
    (h.folder / "policies" / "p.yaml").write_text(text)


def write_config(h: Harness, extra: str) -> None:
    path = h.folder / "remediator.yaml"
    path.write_text(path.read_text() + extra)


async def reload(h: Harness, **kwargs: Any) -> tuple[int, Any]:
    return await h.api("/-/reload", **kwargs)


def policies_of(answer: dict[str, Any]) -> list[str]:
    return [d["policy"] for d in answer["decisions"]]


async def eventually(probe: Callable[[], Any], what: str, within: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        found = probe()
        if found:
            return found
        await asyncio.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


async def test_a_valid_change_applies_from_the_next_webhook_on(harness: HarnessFactory) -> None:
    h = await harness(policy("restart-web"))
    before = h.metric("remediator_config_last_reload_success_timestamp_seconds")
    assert before > 0 and h.metric("remediator_config_last_reload_successful") == 1
    assert policies_of((await h.post(body("web-1")))[1]) == ["restart-web"]

    write_policies(h, policy("restart-web") + policy("restart-web-too"))
    write_config(h, "limits: {approval_ttl: 5m}\nmax_body_bytes: 4096\n")
    status, answer = await reload(h)

    assert status == 200, answer
    assert answer == {
        "status": "applied",
        "policies": 2,
        "added": ["restart-web-too"],
        "removed": [],
        "restart_required": ["max_body_bytes"],
        "cancelled_approvals": [],
    }
    assert policies_of((await h.post(body("web-2")))[1]) == ["restart-web", "restart-web-too"]
    # The episode decided before the reload is still known: its repeat is deduplicated.
    repeat = (await h.post(body("web-1")))[1]["decisions"]
    assert [(d["policy"], d["outcome"]) for d in repeat] == [
        ("restart-web", "deduplicated"),
        ("restart-web-too", "dry_run"),
    ]
    assert h.metric("remediator_policies_loaded") == 2
    assert h.metric("remediator_config_last_reload_successful") == 1
    assert h.metric("remediator_config_last_reload_success_timestamp_seconds") > before
    registry = h.daemon.metrics.registry
    for outcome in ("executed", "failed", "cancelled", "deduplicated"):
        labels = {"policy": "restart-web-too", "outcome": outcome}
        assert registry.get_sample_value("remediator_decisions_total", labels) is not None
    assert (await (await h.client.get("/readyz")).json())["policies"] == 2


INVALID = [
    pytest.param(
        policy("restart-web", extra="flavour: vanilla\n")
        + "---\nname: broken\nmatch: {matchers: ['alertname=~\"(\"']}\n"
        "action: {type: docker.restart, params: {container: web-1}, allow_targets: [web-1]}\n",
        "",
        ["policy restart-web: flavour", "policy broken: match.matchers"],
        id="two-bad-policies",
    ),
    pytest.param(policy("restart-web"), "listne: 1\n", ["listne"], id="unknown-config-key"),
    pytest.param(
        policy("restart-web") + "---\nname: hook\nmatch: {matchers: ['alertname=\"X\"']}\naction:\n"
        "  type: http.request\n  allow_targets: ['https://ci.example.com/job/*']\n"
        "  params: {url: 'https://ci.example.com/job/a', headers: {A: '${secret:nope}'}}\n",
        "",
        ["${secret:nope} is not configured"],
        id="missing-secret",
    ),
    pytest.param(
        policy("restart-web") + "---\nname: tell\nmatch: {matchers: ['alertname=\"X\"']}\n"
        "action: {type: notify, params: {text: hi}}\n",
        "",
        ["policies tell use notify, but slack is not configured"],
        id="executor-not-buildable",
    ),
    pytest.param(
        policy("restart-web", ", cooldown: 3h"),
        "retention: 2h\n",
        ["policy restart-web: guards.cooldown: 3h is longer than retention (2h)"],
        id="window-longer-than-retention",
    ),
    pytest.param(
        policy("restart-web"),
        "slack: {channel: C1}\n",
        ["slack: set bot_token, signing_secret and channel together"],
        id="incomplete-slack",
    ),
]


@pytest.mark.parametrize(("policies", "config", "problems"), INVALID)
async def test_an_invalid_change_is_refused_with_every_problem_and_the_old_set_decides(
    harness: HarnessFactory, policies: str, config: str, problems: list[str]
) -> None:
    h = await harness(policy("restart-web"))
    write_policies(h, policies)
    write_config(h, config)

    status, answer = await reload(h)

    assert status == 400, answer
    assert answer["error"] == "reload refused; the running config stays"
    for problem in problems:
        assert any(problem in line for line in answer["problems"]), (problem, answer)
    assert len(answer["problems"]) == len(problems), answer
    assert policies_of((await h.post(body("web-1")))[1]) == ["restart-web"]
    assert h.metric("remediator_config_last_reload_successful") == 0
    assert h.metric("remediator_policies_loaded") == 1


async def test_a_refused_reload_then_a_fixed_one(harness: HarnessFactory) -> None:
    h = await harness(policy("restart-web"))
    stamp = h.metric("remediator_config_last_reload_success_timestamp_seconds")
    write_policies(h, "name: Not_A_Name\n")
    assert (await reload(h))[0] == 400
    assert h.metric("remediator_config_last_reload_success_timestamp_seconds") == stamp

    write_policies(h, policy("restart-app"))
    status, answer = await reload(h)
    assert status == 200, answer
    assert (answer["added"], answer["removed"]) == (["restart-app"], ["restart-web"])
    assert h.metric("remediator_config_last_reload_successful") == 1
    assert policies_of((await h.post(body("web-1")))[1]) == ["restart-app"]


CONDITION = "condition: {prometheus: {query: 'up', above: 0.5, for: 1m}}\n"


async def test_a_webhook_in_flight_is_decided_by_the_set_it_started_with(
    harness: HarnessFactory, held_prometheus: HeldPrometheus
) -> None:
    h = await harness(
        policy("slow-v1", extra=CONDITION), checker=PrometheusChecker(held_prometheus.url)
    )
    first = asyncio.create_task(h.post(body("web-1")))
    await eventually(lambda: held_prometheus.conditions, "the first webhook's condition query")

    write_policies(h, policy("slow-v2"))
    status, answer = await reload(h)
    assert status == 200 and answer["removed"] == ["slow-v1"], answer
    _, second = await h.post(body("web-2"))
    assert [(d["policy"], d["outcome"]) for d in second["decisions"]] == [("slow-v2", "dry_run")]
    assert not first.done()  # the reload did not wait for it, nor decide it

    held_prometheus.release.set()
    status, late = await first
    assert status == 200
    assert [(d["policy"], d["outcome"]) for d in late["decisions"]] == [("slow-v1", "dry_run")]
    assert sorted((d["policy"], d["target"]) for d in await h.decisions()) == [
        ("slow-v1", "web-1"),
        ("slow-v2", "web-2"),
    ]


async def test_webhooks_queued_for_one_transaction_across_a_reload_are_not_decided_together(
    harness: HarnessFactory,
) -> None:
    """Webhooks that wait for the same next transaction (group commit) but arrived under two
    rule sets are decided each by its own: the group splits where the rule set changes."""
    h = await harness(policy("v1"))
    commits = h.daemon.intake._commits  # where webhooks wait, read as the test's clock
    writer = sqlite3.connect(h.db_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # the store's write lock: the next transaction waits
    try:
        first = asyncio.create_task(h.post(body("web-1")))
        await eventually(lambda: commits._task and not commits._queue, "web-1 in a transaction")
        before = asyncio.create_task(h.post(body("web-2")))
        await eventually(lambda: len(commits._queue) == 1, "web-2 waiting")
        # Nothing removed: the reload needs no store (its one connection waits on the lock).
        write_policies(h, policy("v1") + policy("v2"))
        assert (await reload(h))[0] == 200
        after = asyncio.create_task(h.post(body("web-3")))
        await eventually(lambda: len(commits._queue) == 2, "web-3 waiting")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    answers = [(await task)[1] for task in (first, before, after)]
    assert [policies_of(answer) for answer in answers] == [["v1"], ["v1"], ["v1", "v2"]]


async def test_reload_needs_the_api_token_and_a_json_body(harness: HarnessFactory) -> None:
    h = await harness(policy("restart-web"))
    no_token = await h.client.post("/-/reload")
    assert no_token.status == 401
    wrong = await h.client.post("/-/reload", headers={"Authorization": "Bearer nope-nope"})
    assert wrong.status == 401
    text = await h.client.post(
        "/-/reload", data=b"reload please", headers={**API, "Content-Type": "text/plain"}
    )
    assert text.status == 415
    bad = await h.client.post(
        "/-/reload", data=b'{"a": ', headers={**API, "Content-Type": "application/json"}
    )
    assert bad.status == 400
    assert h.metric("remediator_config_last_reload_successful") == 1  # none of them reloaded
    assert (await reload(h, body={}))[0] == 200
    assert (await reload(h))[0] == 200  # no body at all


async def test_every_reload_is_in_the_operator_journal_with_who_asked(
    harness: HarnessFactory,
) -> None:
    h = await harness(policy("restart-web"))
    write_policies(h, "name: [not a policy")
    assert (await reload(h, who="alice"))[0] == 400
    write_policies(h, policy("restart-web") + policy("restart-web-too"))
    assert (await reload(h, who="bob"))[0] == 200

    async def journal() -> list[dict[str, Any]]:
        resp = await h.client.get("/api/v1/operator-events?act=reload")
        events: list[dict[str, Any]] = (await resp.json())["events"]
        return events

    found: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + 15
    while len(found) < 2:  # written in the background: wait for both, with a deadline
        assert asyncio.get_running_loop().time() < deadline, found
        found = await journal()
        await asyncio.sleep(0.05)
    assert [(e["who"], e["detail"].split(":")[0]) for e in found] == [
        ("api:bob", "applied"),
        ("api:alice", "refused"),
    ]


async def test_a_stop_right_after_a_reload_still_records_who_reloaded(
    harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = await harness(policy("restart-web"))
    store = h.daemon.store
    write = store.add_operator_event
    writing = asyncio.Event()

    async def busy_store(event: OperatorEvent) -> None:
        writing.set()
        await asyncio.sleep(0.5)  # the store is busy: the record is still on its way at the stop
        await write(event)

    monkeypatch.setattr(store, "add_operator_event", busy_store)
    assert (await reload(h, who="bob"))[0] == 200
    await asyncio.wait_for(writing.wait(), 15)
    await h.daemon.stop(timedelta(seconds=5))  # as SIGTERM does, before the store closes
    events = await store.operator_events(EventQuery(act="reload"))
    assert [e.who for e in events] == ["api:bob"]
